/* graph.h: the symbolic graph shared by the builder, autodiff, the planner
 * and the model. Variables and nodes live in growing arrays; a vkt_var is an
 * index into vars (0 is reserved for "none"). */
#ifndef VKT_GRAPH_H
#define VKT_GRAPH_H

#include "../ops/op.h"

typedef enum var_kind {
    VAR_INPUT,     /* fed by the host every step */
    VAR_PARAMETER, /* trainable, persistent */
    VAR_STATE,     /* persistent non-trainable: optimizer state, hyper buffer */
    VAR_TEMP,      /* produced by a node; transient, placed by the planner */
    VAR_ALIAS      /* a reshape: the same memory as alias_of */
} var_kind;

typedef struct graph_var {
    var_kind kind;
    char name[64];
    vkt_shape shape;
    int32_t producer; /* node index, -1 if none */
    vkt_var alias_of;
    vkt_init init;
    int64_t fan_in; /* 0: from the shape; a bias gets its layer's */
    bool requires_grad;
    bool persistent; /* keep for the whole model lifetime (not planned) */
    bool fused_away; /* its producer and only reader became one node (fuse.c): no memory */
} graph_var;

typedef enum node_phase { PHASE_FORWARD, PHASE_BACKWARD, PHASE_OPTIMIZER } node_phase;

typedef struct graph_node {
    vkt_op op;
    vkt_op_params p;
    char name[64];
    uint32_t nin, nout;
    vkt_var in[VKT_NODE_MAX_IN];
    vkt_var out[VKT_NODE_MAX_OUT];
    node_phase phase;
} graph_node;

struct vkt_graph {
    vkt_context *ctx;
    uint64_t seed;
    graph_var *vars;
    uint32_t var_count, var_capacity;
    graph_node *nodes;
    uint32_t node_count, node_capacity;
    vkt_var hyper; /* the per-step hyperparameter buffer (created on demand) */
    uint32_t dropout_count;
    vkt_result status;
    char error[VKT_ERROR_MESSAGE_SIZE];
};

/* Records the graph's first error (later ones are dropped) and returns 0 so
 * builder calls can `return graph_fail(...)`. */
vkt_var graph_fail(vkt_graph *g, vkt_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool graph_var_valid(const vkt_graph *g, vkt_var v);
vkt_var graph_add_var(vkt_graph *g, var_kind kind, const char *name, vkt_shape shape);
/* Adds a node with inputs `in`; infers output shapes with the op's shape
 * rule (outputs listed in `out` that already exist keep theirs), creates the
 * missing outputs as temporaries named "<name>" / "<name>:k" and returns the
 * node index, or -1 after recording a shape error naming the node. */
int32_t graph_add_node(vkt_graph *g, vkt_op op, const vkt_op_params *p, const char *name,
                       node_phase phase, uint32_t nin, const vkt_var *in, uint32_t nout,
                       vkt_var *out);
/* The root of an alias chain. */
vkt_var graph_root(const vkt_graph *g, vkt_var v);
vkt_var graph_hyper(vkt_graph *g);

/* Deep copy (the model keeps its own graph; the user's may be destroyed). */
vkt_result graph_clone(const vkt_graph *src, vkt_graph **out);

/* fuse.c: joins matmul -> bias_add -> relu chains of the forward graph into
 * matmul_bias nodes where the tensors between them have no other reader. */
vkt_result graph_fuse(vkt_graph *g);

/* autodiff.c: appends backward nodes for d(loss)/d(every parameter) and
 * writes grads[param] (indexed by var, 0 where none). */
vkt_result graph_backward(vkt_graph *g, vkt_var loss, vkt_var *grads);

/* optimizer_nodes.c */
vkt_result graph_optimizer(vkt_graph *g, const vkt_optimizer_desc *desc, const vkt_var *grads);
void optimizer_desc_defaults(vkt_optimizer_desc *d);
/* Host-side values of the hyper buffer for step t (1-based). */
void optimizer_hyper_values(const vkt_optimizer_desc *d, uint64_t t, float *hyper);

/* init.c: seeded initial values for a parameter. */
void param_init_values(const graph_var *v, uint64_t seed, uint32_t index, float *out);

#endif
