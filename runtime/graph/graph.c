/* graph.c: building a graph: variables, nodes, shape checks, and the layer
 * functions of the public API. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vkt_var graph_fail(vkt_graph *g, vkt_result r, const char *fmt, ...) {
    if (g->status == VKT_OK) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, args);
        va_end(args);
        g->status = r;
        vkt_log(g->ctx, VKT_LOG_ERROR, "%s", g->error);
    }
    return 0;
}

bool graph_var_valid(const vkt_graph *g, vkt_var v) { return v > 0 && (uint32_t)v < g->var_count; }

vkt_var graph_root(const vkt_graph *g, vkt_var v) {
    while (g->vars[v].kind == VAR_ALIAS)
        v = g->vars[v].alias_of;
    return v;
}

static bool grow(void **items, uint32_t *capacity, uint32_t count, size_t size) {
    if (count < *capacity)
        return true;
    uint32_t cap = *capacity ? *capacity * 2 : 32;
    void *p = realloc(*items, cap * size);
    if (!p)
        return false;
    *items = p;
    *capacity = cap;
    return true;
}

vkt_var graph_add_var(vkt_graph *g, var_kind kind, const char *name, vkt_shape shape) {
    if (!grow((void **)&g->vars, &g->var_capacity, g->var_count, sizeof *g->vars))
        return graph_fail(g, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory adding '%s'", name);
    graph_var *v = &g->vars[g->var_count];
    *v = (graph_var){.kind = kind, .shape = shape, .producer = -1};
    snprintf(v->name, sizeof v->name, "%s", name ? name : "");
    v->requires_grad = kind == VAR_PARAMETER;
    v->persistent = kind != VAR_TEMP && kind != VAR_ALIAS;
    return (vkt_var)g->var_count++;
}

int32_t graph_add_node(vkt_graph *g, vkt_op op, const vkt_op_params *p, const char *name,
                       node_phase phase, uint32_t nin, const vkt_var *in, uint32_t nout,
                       vkt_var *out) {
    const vkt_op_def *def = vkt_op_get(op);
    VKT_ASSERT(def && nin == def->nin && nout == def->nout);
    vkt_value values[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    vkt_node node = {.op = op, .nin = nin, .nout = nout, .name = name};
    if (p)
        node.p = *p;
    for (uint32_t i = 0; i < nin; i++) {
        values[i] = (vkt_value){.shape = g->vars[in[i]].shape, .name = g->vars[in[i]].name};
        node.in[i] = &values[i];
    }
    for (uint32_t o = 0; o < nout; o++) {
        values[nin + o] = (vkt_value){.shape = out[o] ? g->vars[out[o]].shape : (vkt_shape){0}};
        node.out[o] = &values[nin + o];
    }
    vkt_shape shapes[VKT_NODE_MAX_OUT];
    char err[256] = "";
    if (def->infer(&node, shapes, err, sizeof err) != VKT_OK) {
        graph_fail(g, VKT_ERROR_SHAPE, "node '%s' (%s): %s", name, def->name, err);
        return -1;
    }
    if (!grow((void **)&g->nodes, &g->node_capacity, g->node_count, sizeof *g->nodes)) {
        graph_fail(g, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory adding node '%s'", name);
        return -1;
    }
    int32_t index = (int32_t)g->node_count;
    bool requires_grad = false;
    for (uint32_t i = 0; i < nin; i++)
        requires_grad = requires_grad || g->vars[in[i]].requires_grad;
    for (uint32_t o = 0; o < nout; o++) {
        if (out[o])
            continue;
        char out_name[80];
        if (o == 0)
            snprintf(out_name, sizeof out_name, "%s", name);
        else
            snprintf(out_name, sizeof out_name, "%s:%u", name, o);
        out[o] = graph_add_var(g, VAR_TEMP, out_name, shapes[o]);
        if (!out[o])
            return -1;
        g->vars[out[o]].producer = index;
        g->vars[out[o]].requires_grad = requires_grad && phase == PHASE_FORWARD;
    }
    graph_node *n = &g->nodes[g->node_count++];
    *n = (graph_node){.op = op, .nin = nin, .nout = nout, .phase = phase};
    if (p)
        n->p = *p;
    snprintf(n->name, sizeof n->name, "%s", name);
    memcpy(n->in, in, nin * sizeof *in);
    memcpy(n->out, out, nout * sizeof *out);
    return index;
}

vkt_var graph_hyper(vkt_graph *g) {
    if (!g->hyper)
        g->hyper = graph_add_var(g, VAR_STATE, "hyper", (vkt_shape){1, {VKT_HYPER_COUNT}});
    return g->hyper;
}

vkt_result vkt_graph_create(vkt_context *ctx, const vkt_graph_desc *desc, vkt_graph **out_graph) {
    if (!ctx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_graph_create: ctx is NULL");
    if (!out_graph)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "vkt_graph_create: out_graph is NULL");
    vkt_graph *g = calloc(1, sizeof *g);
    if (!g)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_graph_create: out of memory");
    g->ctx = ctx;
    g->seed = desc ? desc->seed : 0;
    g->var_count = 1; /* var 0 is "none" */
    g->vars = calloc(32, sizeof *g->vars);
    g->var_capacity = 32;
    if (!g->vars) {
        free(g);
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_graph_create: out of memory");
    }
    *out_graph = g;
    return VKT_OK;
}

void vkt_graph_destroy(vkt_graph *g) {
    if (!g)
        return;
    free(g->vars);
    free(g->nodes);
    free(g);
}

vkt_result graph_clone(const vkt_graph *src, vkt_graph **out) {
    vkt_graph *g = malloc(sizeof *g);
    if (!g)
        return VKT_ERROR_OUT_OF_HOST_MEMORY;
    *g = *src;
    g->vars = malloc(src->var_capacity * sizeof *g->vars);
    g->nodes = malloc((src->node_capacity ? src->node_capacity : 1) * sizeof *g->nodes);
    if (!g->vars || !g->nodes) {
        vkt_graph_destroy(g);
        return VKT_ERROR_OUT_OF_HOST_MEMORY;
    }
    memcpy(g->vars, src->vars, src->var_count * sizeof *g->vars);
    if (src->node_count)
        memcpy(g->nodes, src->nodes, src->node_count * sizeof *g->nodes);
    *out = g;
    return VKT_OK;
}

vkt_result vkt_graph_status(const vkt_graph *g) {
    return g ? g->status : VKT_ERROR_INVALID_ARGUMENT;
}

const char *vkt_graph_last_error(const vkt_graph *g) { return g ? g->error : "graph is NULL"; }

/* ---- Builder entry points ---- */

/* Checks the graph and the operand variables of a builder call; false (with
 * the graph's error set) when the call must not go on. */
static bool usable(vkt_graph *g, const char *fn, uint32_t count, const vkt_var *vars) {
    if (!g)
        return false;
    if (g->status != VKT_OK)
        return false; /* keep the first error */
    for (uint32_t i = 0; i < count; i++)
        if (!graph_var_valid(g, vars[i])) {
            graph_fail(g, VKT_ERROR_INVALID_ARGUMENT, "%s: operand %u is not a variable of this "
                       "graph (%d)", fn, i, (int)vars[i]);
            return false;
        }
    return true;
}

static void unique_name(vkt_graph *g, const char *base, char *out, size_t size) {
    snprintf(out, size, "%s%u", base, g->node_count);
}

static vkt_var add_simple(vkt_graph *g, const char *fn, vkt_op op, const vkt_op_params *p,
                          uint32_t nin, const vkt_var *in, const char *base) {
    if (!usable(g, fn, nin, in))
        return 0;
    char name[64];
    unique_name(g, base, name, sizeof name);
    vkt_var out[VKT_NODE_MAX_OUT] = {0};
    if (graph_add_node(g, op, p, name, PHASE_FORWARD, nin, in, vkt_op_get(op)->nout, out) < 0)
        return 0;
    return out[0];
}

static vkt_var add_leaf(vkt_graph *g, const char *fn, var_kind kind, const char *name,
                        int32_t ndim, const int64_t *dims, vkt_init init) {
    if (!usable(g, fn, 0, NULL))
        return 0;
    if (!name || !*name)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT, "%s: name is empty", fn);
    if (!dims)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT, "%s '%s': dims is NULL", fn, name);
    if (vkt_graph_find(g, name))
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT, "%s: the name '%s' is already used", fn,
                          name);
    char what[128];
    snprintf(what, sizeof what, "%s '%s'", fn, name);
    vkt_shape shape;
    vkt_result r = vkt_shape_from_desc(NULL, what, ndim, dims, &shape);
    if (r != VKT_OK)
        return graph_fail(g, r, "%s", vkt_last_error());
    vkt_var v = graph_add_var(g, kind, name, shape);
    if (v)
        g->vars[v].init = init;
    return v;
}

vkt_var vkt_graph_input(vkt_graph *g, const char *name, int32_t ndim, const int64_t *dims) {
    return add_leaf(g, "vkt_graph_input", VAR_INPUT, name, ndim, dims, VKT_INIT_ZEROS);
}

vkt_var vkt_graph_parameter(vkt_graph *g, const char *name, int32_t ndim, const int64_t *dims,
                            vkt_init init) {
    return add_leaf(g, "vkt_graph_parameter", VAR_PARAMETER, name, ndim, dims, init);
}

vkt_var vkt_graph_linear(vkt_graph *g, vkt_var x, int64_t out_features, const char *name) {
    return vkt_graph_linear_init(g, x, out_features, VKT_INIT_DEFAULT, name);
}

vkt_var vkt_graph_linear_init(vkt_graph *g, vkt_var x, int64_t out_features, vkt_init init,
                              const char *name) {
    if (!usable(g, "vkt_graph_linear", 1, &x))
        return 0;
    if (!name || !*name)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT, "vkt_graph_linear: name is empty");
    if (out_features < 1)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT,
                          "vkt_graph_linear '%s': out_features = %lld, must be >= 1", name,
                          (long long)out_features);
    if (g->vars[x].shape.ndim > 2)
        x = vkt_graph_flatten(g, x);
    if (!x)
        return 0;
    const vkt_shape *xs = &g->vars[x].shape;
    int64_t in_features = xs->ndim == 2 ? xs->dims[1] : xs->dims[0];
    char wname[80], bname[80];
    snprintf(wname, sizeof wname, "%s.weight", name);
    snprintf(bname, sizeof bname, "%s.bias", name);
    vkt_var w = vkt_graph_parameter(g, wname, 2, (int64_t[]){out_features, in_features}, init);
    vkt_var b = vkt_graph_parameter(g, bname, 1, (int64_t[]){out_features},
                                    init == VKT_INIT_ZEROS || init == VKT_INIT_ONES
                                        ? init
                                        : VKT_INIT_DEFAULT);
    if (!w || !b)
        return 0;
    g->vars[b].fan_in = in_features;
    if (xs->ndim == 1) /* a single sample: (in) -> (1, in) */
        x = vkt_graph_reshape(g, x, 2, (int64_t[]){1, in_features});
    vkt_op_params mp = {.matmul = {false, true, false}};
    char mname[80];
    snprintf(mname, sizeof mname, "%s.matmul", name);
    vkt_var mm[VKT_NODE_MAX_OUT] = {0};
    if (graph_add_node(g, VKT_OP_MATMUL, &mp, mname, PHASE_FORWARD, 2, (vkt_var[]){x, w}, 1, mm) < 0)
        return 0;
    vkt_var y[VKT_NODE_MAX_OUT] = {0};
    if (graph_add_node(g, VKT_OP_BIAS_ADD, NULL, name, PHASE_FORWARD, 2, (vkt_var[]){mm[0], b}, 1,
                       y) < 0)
        return 0;
    return y[0];
}

vkt_var vkt_graph_matmul(vkt_graph *g, vkt_var a, vkt_var b, bool transpose_a, bool transpose_b) {
    vkt_op_params p = {.matmul = {transpose_a, transpose_b, false}};
    return add_simple(g, "vkt_graph_matmul", VKT_OP_MATMUL, &p, 2, (vkt_var[]){a, b}, "matmul");
}

vkt_var vkt_graph_add(vkt_graph *g, vkt_var a, vkt_var b) {
    return add_simple(g, "vkt_graph_add", VKT_OP_ADD, NULL, 2, (vkt_var[]){a, b}, "add");
}

vkt_var vkt_graph_relu(vkt_graph *g, vkt_var x) {
    return add_simple(g, "vkt_graph_relu", VKT_OP_RELU, NULL, 1, &x, "relu");
}

vkt_var vkt_graph_leaky_relu(vkt_graph *g, vkt_var x, float negative_slope) {
    vkt_op_params p = {.leaky_relu = {negative_slope}};
    return add_simple(g, "vkt_graph_leaky_relu", VKT_OP_LEAKY_RELU, &p, 1, &x, "leaky_relu");
}

vkt_var vkt_graph_sigmoid(vkt_graph *g, vkt_var x) {
    return add_simple(g, "vkt_graph_sigmoid", VKT_OP_SIGMOID, NULL, 1, &x, "sigmoid");
}

vkt_var vkt_graph_tanh(vkt_graph *g, vkt_var x) {
    return add_simple(g, "vkt_graph_tanh", VKT_OP_TANH, NULL, 1, &x, "tanh");
}

vkt_var vkt_graph_gelu(vkt_graph *g, vkt_var x) {
    return add_simple(g, "vkt_graph_gelu", VKT_OP_GELU, NULL, 1, &x, "gelu");
}

vkt_var vkt_graph_softmax(vkt_graph *g, vkt_var x) {
    return add_simple(g, "vkt_graph_softmax", VKT_OP_SOFTMAX, NULL, 1, &x, "softmax");
}

/* Each dropout layer gets its own mask stream derived from the graph seed. */
static vkt_op_params dropout_params(vkt_graph *g, float rate) {
    uint64_t z = g->seed + 0x9E3779B97F4A7C15ull * (++g->dropout_count);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    vkt_op_params p = {.dropout = {rate, (uint32_t)(z ^ (z >> 31))}};
    return p;
}

vkt_var vkt_graph_dropout(vkt_graph *g, vkt_var x, float rate) {
    if (!usable(g, "vkt_graph_dropout", 1, &x))
        return 0;
    if (!(rate >= 0.0f && rate < 1.0f))
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT,
                          "vkt_graph_dropout: rate = %g, must be in [0, 1)", (double)rate);
    vkt_op_params p = dropout_params(g, rate);
    vkt_var hyper = graph_hyper(g);
    return add_simple(g, "vkt_graph_dropout", VKT_OP_DROPOUT, &p, 2, (vkt_var[]){x, hyper},
                      "dropout");
}

vkt_var vkt_graph_reshape(vkt_graph *g, vkt_var x, int32_t ndim, const int64_t *dims) {
    if (!usable(g, "vkt_graph_reshape", 1, &x))
        return 0;
    if (!dims)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT, "vkt_graph_reshape: dims is NULL");
    vkt_shape shape;
    vkt_result r = vkt_shape_from_desc(NULL, "vkt_graph_reshape", ndim, dims, &shape);
    if (r != VKT_OK)
        return graph_fail(g, r, "%s", vkt_last_error());
    if (vkt_shape_numel(&shape) != vkt_shape_numel(&g->vars[x].shape)) {
        char a[64], b[64];
        return graph_fail(g, VKT_ERROR_SHAPE, "vkt_graph_reshape: '%s' %s has %lld elements, "
                          "the new shape %s has %lld", g->vars[x].name,
                          vkt_shape_format(&g->vars[x].shape, a, 64),
                          (long long)vkt_shape_numel(&g->vars[x].shape),
                          vkt_shape_format(&shape, b, 64), (long long)vkt_shape_numel(&shape));
    }
    char name[80];
    snprintf(name, sizeof name, "%s.reshape", g->vars[x].name);
    vkt_var v = graph_add_var(g, VAR_ALIAS, name, shape);
    if (v) {
        g->vars[v].alias_of = x;
        g->vars[v].requires_grad = g->vars[x].requires_grad;
    }
    return v;
}

vkt_var vkt_graph_flatten(vkt_graph *g, vkt_var x) {
    if (!usable(g, "vkt_graph_flatten", 1, &x))
        return 0;
    const vkt_shape *s = &g->vars[x].shape;
    return vkt_graph_reshape(g, x, 2, (int64_t[]){s->dims[0], vkt_shape_numel(s) / s->dims[0]});
}

vkt_var vkt_graph_conv2d(vkt_graph *g, vkt_var x, int64_t out_channels, int32_t kernel,
                         int32_t stride, int32_t padding, const char *name) {
    if (!usable(g, "vkt_graph_conv2d", 1, &x))
        return 0;
    const vkt_shape *xs = &g->vars[x].shape;
    if (!name || !*name || xs->ndim != 4 || out_channels < 1 || kernel < 1 || stride < 1 ||
        padding < 0) {
        char s[64];
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT,
                          "vkt_graph_conv2d '%s': needs a name, x of 4 dims (B, C, H, W) (got "
                          "%s), out_channels >= 1, kernel >= 1, stride >= 1, padding >= 0",
                          name ? name : "", vkt_shape_format(xs, s, sizeof s));
    }
    int64_t c = xs->dims[1];
    char wname[80], bname[80];
    snprintf(wname, sizeof wname, "%s.weight", name);
    snprintf(bname, sizeof bname, "%s.bias", name);
    vkt_var w = vkt_graph_parameter(g, wname, 4, (int64_t[]){out_channels, c, kernel, kernel},
                                    VKT_INIT_DEFAULT);
    vkt_var b = vkt_graph_parameter(g, bname, 1, (int64_t[]){out_channels}, VKT_INIT_DEFAULT);
    if (!w || !b)
        return 0;
    g->vars[b].fan_in = c * kernel * kernel;
    vkt_op_params p = {.conv = {.stride = (uint32_t)stride, .pad = (uint32_t)padding,
                                .kernel_h = (uint32_t)kernel, .kernel_w = (uint32_t)kernel,
                                .in_h = (uint32_t)g->vars[x].shape.dims[2],
                                .in_w = (uint32_t)g->vars[x].shape.dims[3]}};
    vkt_var y[VKT_NODE_MAX_OUT] = {0};
    if (graph_add_node(g, VKT_OP_CONV2D, &p, name, PHASE_FORWARD, 3, (vkt_var[]){x, w, b}, 1, y) <
        0)
        return 0;
    return y[0];
}

static vkt_var add_pool(vkt_graph *g, const char *fn, vkt_op op, vkt_var x, int32_t kernel,
                        int32_t stride, const char *base) {
    if (!usable(g, fn, 1, &x))
        return 0;
    if (g->vars[x].shape.ndim != 4 || kernel < 1 || stride < 0)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT,
                          "%s: needs x of 4 dims (B, C, H, W), kernel >= 1 and stride >= 0", fn);
    vkt_op_params p = {.pool = {.kernel = (uint32_t)kernel,
                                .stride = (uint32_t)(stride ? stride : kernel),
                                .in_h = (uint32_t)g->vars[x].shape.dims[2],
                                .in_w = (uint32_t)g->vars[x].shape.dims[3]}};
    return add_simple(g, fn, op, &p, 1, &x, base);
}

vkt_var vkt_graph_max_pool2d(vkt_graph *g, vkt_var x, int32_t kernel, int32_t stride) {
    return add_pool(g, "vkt_graph_max_pool2d", VKT_OP_MAXPOOL2D, x, kernel, stride, "max_pool");
}

vkt_var vkt_graph_avg_pool2d(vkt_graph *g, vkt_var x, int32_t kernel, int32_t stride) {
    return add_pool(g, "vkt_graph_avg_pool2d", VKT_OP_AVGPOOL2D, x, kernel, stride, "avg_pool");
}

static vkt_var add_loss(vkt_graph *g, const char *fn, vkt_op op, vkt_var a, vkt_var b,
                        const char *base) {
    if (!usable(g, fn, 2, (vkt_var[]){a, b}))
        return 0;
    if (g->vars[b].requires_grad)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT,
                          "%s: the target '%s' depends on parameters; targets must be data", fn,
                          g->vars[b].name);
    return add_simple(g, fn, op, NULL, 2, (vkt_var[]){a, b}, base);
}

vkt_var vkt_graph_softmax_cross_entropy(vkt_graph *g, vkt_var logits, vkt_var labels) {
    return add_loss(g, "vkt_graph_softmax_cross_entropy", VKT_OP_SOFTMAX_CE, logits, labels,
                    "cross_entropy");
}

vkt_var vkt_graph_mse(vkt_graph *g, vkt_var prediction, vkt_var target) {
    return add_loss(g, "vkt_graph_mse", VKT_OP_MSE, prediction, target, "mse");
}

vkt_var vkt_graph_bce_with_logits(vkt_graph *g, vkt_var logits, vkt_var target) {
    return add_loss(g, "vkt_graph_bce_with_logits", VKT_OP_BCE_LOGITS, logits, target, "bce");
}

vkt_result vkt_graph_query_var(const vkt_graph *g, vkt_var var, vkt_var_info *out_info) {
    if (!g || !out_info || !graph_var_valid(g, var))
        return VKT_ERROR_INVALID_ARGUMENT;
    const graph_var *v = &g->vars[var];
    vkt_var_info info = {.ndim = v->shape.ndim, .name = v->name,
                         .is_parameter = v->kind == VAR_PARAMETER,
                         .is_input = v->kind == VAR_INPUT};
    memcpy(info.dims, v->shape.dims, sizeof info.dims);
    *out_info = info;
    return VKT_OK;
}

vkt_var vkt_graph_find(const vkt_graph *g, const char *name) {
    if (!g || !name)
        return 0;
    for (uint32_t i = 1; i < g->var_count; i++)
        if (strcmp(g->vars[i].name, name) == 0)
            return (vkt_var)i;
    return 0;
}
