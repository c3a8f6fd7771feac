/* test_api.c: the public API as a user sees it. The eager kernels give the
 * same results on the Vulkan and CPU backends; every kind of bad input comes
 * back as an error code plus a message that names the problem; queries and
 * result strings say what they promise. */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails unless `got` is `want` and `message` contains every needle (a
 * NULL-terminated list). */
static void expect_error(const char *call, vkt_result got, vkt_result want, const char *message,
                         ...) {
    cr_assert_eq(got, want, "%s returned %s, expected %s (message: '%s')", call,
                 vkt_result_string(got), vkt_result_string(want), message);
    cr_assert_not_null(message, "%s: NULL message", call);
    va_list needles;
    va_start(needles, message);
    for (const char *n = va_arg(needles, const char *); n; n = va_arg(needles, const char *))
        cr_assert(strstr(message, n), "%s: message '%s' does not contain '%s'", call, message, n);
    va_end(needles);
}

/* The message is read after the call: EXPECT(ctx, call, code, needles...),
 * with ctx NULL for calls whose message goes to vkt_last_error(). */
#define EXPECT(ctx, call, code, ...)                                                           \
    do {                                                                                       \
        vkt_result expect_r_ = (call);                                                         \
        expect_error(#call, expect_r_, (code),                                                 \
                     (ctx) ? vkt_context_last_error(ctx) : vkt_last_error(), __VA_ARGS__,       \
                     (const char *)NULL);                                                      \
    } while (0)

#define OK(ctx, call)                                                                          \
    cr_assert_eq((call), VKT_OK, "%s: %s", #call, vkt_context_last_error(ctx))

static vkt_tensor *make(vkt_context *ctx, const char *name, int32_t ndim, const int64_t *dims) {
    vkt_tensor_desc desc = {.ndim = ndim, .name = name};
    memcpy(desc.dims, dims, (size_t)ndim * sizeof *dims);
    vkt_tensor *t = NULL;
    OK(ctx, vkt_tensor_create(ctx, &desc, &t));
    return t;
}
#define MAKE(ctx, name, ...)                                                                   \
    make((ctx), (name), (int32_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),         \
         (int64_t[]){__VA_ARGS__})

static size_t numel(const vkt_tensor *t) {
    vkt_tensor_info info;
    cr_assert_eq(vkt_tensor_query(t, &info), VKT_OK);
    return (size_t)info.numel;
}

static float *download(const vkt_tensor *t) {
    size_t n = numel(t);
    float *data = h_alloc_floats(n);
    cr_assert_eq(vkt_tensor_download(t, data, n), VKT_OK, "%s", vkt_context_last_error(t->ctx));
    return data;
}

static void upload_random(vkt_tensor *t, uint64_t seed, float lo, float hi) {
    size_t n = numel(t);
    float *data = h_alloc_floats(n);
    h_random(data, n, seed, lo, hi);
    cr_assert_eq(vkt_tensor_upload(t, data, n), VKT_OK);
    free(data);
}

// ---- The same results on both backends

/* One tensor on each backend, with the same content. */
typedef struct pair {
    vkt_tensor *t[2];
} pair;

static vkt_context *ctxs[2]; /* Vulkan, CPU */

static void backends_setup(void) {
    ctxs[0] = h_vulkan();
    ctxs[1] = h_cpu();
}
static void backends_teardown(void) {
    h_finish(ctxs[0]);
    h_finish(ctxs[1]);
}

static pair pair_make(const char *name, int32_t ndim, const int64_t *dims, uint64_t seed) {
    pair p;
    for (int b = 0; b < 2; b++) {
        p.t[b] = make(ctxs[b], name, ndim, dims);
        upload_random(p.t[b], seed, -1, 1);
    }
    return p;
}
#define PAIR(name, seed, ...)                                                                  \
    pair_make((name), (int32_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),           \
              (int64_t[]){__VA_ARGS__}, (seed))

static void pair_destroy(pair *p) {
    vkt_tensor_destroy(p->t[0]);
    vkt_tensor_destroy(p->t[1]);
}

static void pair_check(const pair *p, double atol, const char *what) {
    float *gpu = download(p->t[0]), *cpu = download(p->t[1]);
    h_assert_close(gpu, cpu, numel(p->t[0]), atol, atol ? 1e-5 : 0, what);
    free(gpu);
    free(cpu);
}

/* Runs `expr` (which uses ctxs[be] and x.t[be]) on both backends. */
#define BOTH(expr)                                                                             \
    for (int be = 0; be < 2; be++)                                                             \
    cr_assert_eq((expr), VKT_OK, "%s on %s: %s", #expr, be ? "CPU" : "Vulkan",                 \
                 vkt_context_last_error(ctxs[be]))

TestSuite(api_backends, .init = backends_setup, .fini = backends_teardown, .timeout = 120);

Test(api_backends, matmul_known_answer) {
    const float a[] = {1, 2, 3, 4}, bm[] = {5, 6, 7, 8};
    const float ab[] = {19, 22, 43, 50}, atb[] = {26, 30, 38, 44}, abt[] = {17, 23, 39, 53};
    for (int b = 0; b < 2; b++) {
        vkt_tensor *ta = MAKE(ctxs[b], "a", 2, 2), *tb = MAKE(ctxs[b], "b", 2, 2);
        vkt_tensor *tc = MAKE(ctxs[b], "c", 2, 2);
        OK(ctxs[b], vkt_tensor_upload(ta, a, 4));
        OK(ctxs[b], vkt_tensor_upload(tb, bm, 4));
        const struct {
            vkt_matmul_desc desc;
            const float *want;
        } cases[] = {{{0}, ab}, {{.transpose_a = true}, atb}, {{.transpose_b = true}, abt}};
        for (int k = 0; k < 3; k++) {
            OK(ctxs[b], vkt_matmul(ctxs[b], tc, ta, tb, &cases[k].desc));
            float *got = download(tc);
            h_assert_close(got, cases[k].want, 4, 0, 0, b ? "CPU matmul" : "Vulkan matmul");
            free(got);
        }
        /* A NULL desc is the zero desc. */
        OK(ctxs[b], vkt_matmul(ctxs[b], tc, ta, tb, NULL));
        float *got = download(tc);
        h_assert_close(got, ab, 4, 0, 0, "matmul with NULL desc");
        free(got);
        vkt_tensor_destroy(ta);
        vkt_tensor_destroy(tb);
        vkt_tensor_destroy(tc);
    }
}

Test(api_backends, matmul_all_variants) {
    pair a = PAIR("a", 1, 7, 33), at = PAIR("at", 2, 33, 7), b = PAIR("b", 3, 33, 5);
    pair bt = PAIR("bt", 4, 5, 33), c = PAIR("c", 5, 7, 5), s = PAIR("s", 6, 7, 7);
    for (int t = 0; t < 4; t++) {
        vkt_matmul_desc d = {.transpose_a = t & 1, .transpose_b = t & 2};
        pair *op_a = t & 1 ? &at : &a, *op_b = t & 2 ? &bt : &b;
        BOTH(vkt_matmul(ctxs[be], c.t[be], op_a->t[be], op_b->t[be], &d));
        pair_check(&c, 1e-5 * 33, "matmul");
        d.accumulate = true;
        BOTH(vkt_matmul(ctxs[be], c.t[be], op_a->t[be], op_b->t[be], &d));
        pair_check(&c, 2e-5 * 33, "matmul accumulate");
    }
    /* Both inputs may be the same tensor: S = A A^T. */
    const vkt_matmul_desc abt = {.transpose_b = true};
    BOTH(vkt_matmul(ctxs[be], s.t[be], a.t[be], a.t[be], &abt));
    pair_check(&s, 1e-5 * 33, "matmul A A^T");
    pair_destroy(&a);
    pair_destroy(&at);
    pair_destroy(&b);
    pair_destroy(&bt);
    pair_destroy(&c);
    pair_destroy(&s);
}

Test(api_backends, bias_add_and_column_sum) {
    pair x = PAIR("x", 10, 2, 3, 5, 7), bias = PAIR("bias", 11, 7);
    pair out = PAIR("out", 12, 2, 3, 5, 7), sum = PAIR("sum", 13, 7);
    BOTH(vkt_bias_add(ctxs[be], out.t[be], x.t[be], bias.t[be]));
    pair_check(&out, 0, "bias_add");
    BOTH(vkt_bias_add(ctxs[be], x.t[be], x.t[be], bias.t[be])); /* in place */
    pair_check(&x, 0, "bias_add in place");
    BOTH(vkt_column_sum(ctxs[be], sum.t[be], x.t[be], false));
    pair_check(&sum, 1e-5, "column_sum");
    BOTH(vkt_column_sum(ctxs[be], sum.t[be], out.t[be], true));
    pair_check(&sum, 2e-5, "column_sum accumulate");
    pair_destroy(&x);
    pair_destroy(&bias);
    pair_destroy(&out);
    pair_destroy(&sum);
}

Test(api_backends, elementwise_in_place_and_not) {
    pair a = PAIR("a", 20, 129), b = PAIR("b", 21, 129), out = PAIR("out", 22, 129);
    BOTH(vkt_add(ctxs[be], out.t[be], a.t[be], b.t[be]));
    pair_check(&out, 0, "add");
    BOTH(vkt_sub(ctxs[be], out.t[be], a.t[be], b.t[be]));
    pair_check(&out, 0, "sub");
    BOTH(vkt_mul(ctxs[be], out.t[be], a.t[be], b.t[be]));
    pair_check(&out, 0, "mul");
    BOTH(vkt_add(ctxs[be], a.t[be], a.t[be], b.t[be])); /* out aliases a */
    pair_check(&a, 0, "add into a");
    BOTH(vkt_sub(ctxs[be], b.t[be], a.t[be], b.t[be])); /* out aliases b */
    pair_check(&b, 0, "sub into b");
    BOTH(vkt_mul(ctxs[be], a.t[be], a.t[be], a.t[be])); /* all three the same */
    pair_check(&a, 0, "mul a * a into a");
    BOTH(vkt_scale(ctxs[be], out.t[be], a.t[be], -0.3f));
    pair_check(&out, 0, "scale");
    BOTH(vkt_scale(ctxs[be], a.t[be], a.t[be], 1.7f));
    pair_check(&a, 0, "scale in place");
    BOTH(vkt_fill(ctxs[be], out.t[be], -4.5f));
    pair_check(&out, 0, "fill");
    float *filled = download(out.t[0]);
    for (size_t i = 0; i < 129; i++)
        cr_assert_eq(filled[i], -4.5f, "fill: element %zu is %g", i, filled[i]);
    free(filled);
    pair_destroy(&a);
    pair_destroy(&b);
    pair_destroy(&out);
}

/* Exact element-by-element comparison in which +0 equals -0: Vulkan does
 * not preserve the sign of zero unless a shader asks for it, so a driver
 * may turn `x > 0 ? x : 0` into max(x, 0) and return either zero. */
static void assert_values(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(got[i] == want[i], "%s: element %zu is %g, expected %g", what, i, got[i],
                  want[i]);
}

/* ReLU at exact zeros of both signs: the forward gives 0 and the gradient
 * at x == 0 is 0 (PyTorch's convention), on both backends. */
Test(api_backends, relu_and_backward_zero_convention) {
    const float x[] = {0.0f, -0.0f, -1.5f, 2.5f, 1e-30f, -1e-30f, 0.0f, 3.0f};
    const float dy[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float want_y[] = {0, 0, 0, 2.5f, 1e-30f, 0, 0, 3};
    const float want_dx[] = {0, 0, 0, 4, 5, 0, 0, 8};
    for (int b = 0; b < 2; b++) {
        vkt_tensor *tx = MAKE(ctxs[b], "x", 8), *ty = MAKE(ctxs[b], "y", 8);
        vkt_tensor *tdy = MAKE(ctxs[b], "dy", 8), *tdx = MAKE(ctxs[b], "dx", 8);
        OK(ctxs[b], vkt_tensor_upload(tx, x, 8));
        OK(ctxs[b], vkt_tensor_upload(tdy, dy, 8));
        OK(ctxs[b], vkt_relu(ctxs[b], ty, tx));
        OK(ctxs[b], vkt_relu_backward(ctxs[b], tdx, tdy, tx));
        float *y = download(ty), *dx = download(tdx);
        assert_values(y, want_y, 8, b ? "CPU relu" : "Vulkan relu");
        assert_values(dx, want_dx, 8, b ? "CPU relu_backward" : "Vulkan relu_backward");
        free(y);
        free(dx);
        /* In place: relu into x, then the gradient into dy. The gradient
         * reads the forward input, which is now relu(x): its positives are
         * where x was positive, so the mask is the same. */
        OK(ctxs[b], vkt_relu(ctxs[b], tx, tx));
        OK(ctxs[b], vkt_relu_backward(ctxs[b], tdy, tdy, tx));
        y = download(tx);
        dx = download(tdy);
        assert_values(y, want_y, 8, "relu in place");
        assert_values(dx, want_dx, 8, "relu_backward in place");
        free(y);
        free(dx);
        vkt_tensor_destroy(tx);
        vkt_tensor_destroy(ty);
        vkt_tensor_destroy(tdy);
        vkt_tensor_destroy(tdx);
    }
}

// ---- Errors: code and message

static vkt_context *ctx;
static void cpu_setup(void) { ctx = h_cpu(); }
static void cpu_teardown(void) { h_finish(ctx); }
TestSuite(api_errors, .init = cpu_setup, .fini = cpu_teardown, .timeout = 60);

Test(api_errors, null_context_and_out_pointers) {
    vkt_context *sentinel = (vkt_context *)&ctx;
    vkt_context *out = sentinel;
    EXPECT(NULL, vkt_context_create(NULL, &out), VKT_ERROR_INVALID_ARGUMENT, "desc is NULL");
    cr_assert_eq(out, sentinel, "out_ctx was written on failure");
    EXPECT(NULL, vkt_context_create(&(vkt_context_desc){0}, NULL), VKT_ERROR_INVALID_ARGUMENT,
           "out_ctx is NULL");
    EXPECT(NULL, vkt_context_query(NULL, &(vkt_context_info){0}), VKT_ERROR_INVALID_ARGUMENT,
           "vkt_context_query", "ctx is NULL");
    EXPECT(ctx, vkt_context_query(ctx, NULL), VKT_ERROR_INVALID_ARGUMENT, "out_info is NULL");
    EXPECT(NULL, vkt_context_wait_idle(NULL), VKT_ERROR_INVALID_ARGUMENT, "ctx is NULL");
    EXPECT(NULL, vkt_device_list(NULL, NULL, NULL), VKT_ERROR_INVALID_ARGUMENT,
           "inout_count is NULL");
    cr_assert_not_null(vkt_context_last_error(NULL));
    cr_assert_eq(vkt_context_validation_messages(NULL), 0);
    /* Destroy accepts NULL. */
    vkt_context_destroy(NULL);
    vkt_tensor_destroy(NULL);
}

Test(api_errors, null_tensor_arguments) {
    vkt_tensor *t = MAKE(ctx, "t", 3), *sentinel = (vkt_tensor *)&ctx, *out = sentinel;
    float data[3] = {1, 2, 3};
    EXPECT(NULL, vkt_tensor_create(NULL, &(vkt_tensor_desc){.ndim = 1, .dims = {3}}, &out),
           VKT_ERROR_INVALID_ARGUMENT, "vkt_tensor_create", "ctx is NULL");
    EXPECT(ctx, vkt_tensor_create(ctx, NULL, &out), VKT_ERROR_INVALID_ARGUMENT, "desc is NULL");
    EXPECT(ctx, vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 1, .dims = {3}}, NULL),
           VKT_ERROR_INVALID_ARGUMENT, "out_tensor is NULL");
    cr_assert_eq(out, sentinel, "out_tensor was written on failure");
    EXPECT(NULL, vkt_tensor_upload(NULL, data, 3), VKT_ERROR_INVALID_ARGUMENT,
           "vkt_tensor_upload", "tensor is NULL");
    EXPECT(NULL, vkt_tensor_download(NULL, data, 3), VKT_ERROR_INVALID_ARGUMENT,
           "vkt_tensor_download", "tensor is NULL");
    EXPECT(ctx, vkt_tensor_upload(t, NULL, 3), VKT_ERROR_INVALID_ARGUMENT, "data is NULL", "'t'");
    EXPECT(ctx, vkt_tensor_download(t, NULL, 3), VKT_ERROR_INVALID_ARGUMENT, "data is NULL");
    EXPECT(NULL, vkt_tensor_query(NULL, &(vkt_tensor_info){0}), VKT_ERROR_INVALID_ARGUMENT,
           "tensor is NULL");
    EXPECT(ctx, vkt_tensor_query(t, NULL), VKT_ERROR_INVALID_ARGUMENT, "out_info is NULL");
    vkt_tensor_destroy(t);
}

/* Every eager function with a NULL context and with each tensor NULL in
 * turn: the message names the function and the argument. */
Test(api_errors, eager_null_arguments) {
    vkt_tensor *m = MAKE(ctx, "m", 4, 4), *v = MAKE(ctx, "v", 4);
    EXPECT(NULL, vkt_matmul(NULL, m, m, m, NULL), VKT_ERROR_INVALID_ARGUMENT, "vkt_matmul",
           "ctx is NULL");
    EXPECT(ctx, vkt_matmul(ctx, NULL, m, m, NULL), VKT_ERROR_INVALID_ARGUMENT, "vkt_matmul",
           "c is NULL");
    EXPECT(ctx, vkt_matmul(ctx, m, NULL, m, NULL), VKT_ERROR_INVALID_ARGUMENT, "a is NULL");
    EXPECT(ctx, vkt_matmul(ctx, m, m, NULL, NULL), VKT_ERROR_INVALID_ARGUMENT, "b is NULL");
    EXPECT(NULL, vkt_bias_add(NULL, m, m, v), VKT_ERROR_INVALID_ARGUMENT, "vkt_bias_add",
           "ctx is NULL");
    EXPECT(ctx, vkt_bias_add(ctx, NULL, m, v), VKT_ERROR_INVALID_ARGUMENT, "out is NULL");
    EXPECT(ctx, vkt_bias_add(ctx, m, NULL, v), VKT_ERROR_INVALID_ARGUMENT, "x is NULL");
    EXPECT(ctx, vkt_bias_add(ctx, m, m, NULL), VKT_ERROR_INVALID_ARGUMENT, "bias is NULL");
    EXPECT(NULL, vkt_column_sum(NULL, v, m, false), VKT_ERROR_INVALID_ARGUMENT,
           "vkt_column_sum", "ctx is NULL");
    EXPECT(ctx, vkt_column_sum(ctx, NULL, m, false), VKT_ERROR_INVALID_ARGUMENT, "out is NULL");
    EXPECT(ctx, vkt_column_sum(ctx, v, NULL, true), VKT_ERROR_INVALID_ARGUMENT, "x is NULL");
    vkt_result (*binary[])(vkt_context *, vkt_tensor *, const vkt_tensor *,
                           const vkt_tensor *) = {vkt_add, vkt_sub, vkt_mul};
    const char *names[] = {"vkt_add", "vkt_sub", "vkt_mul"};
    for (int i = 0; i < 3; i++) {
        EXPECT(NULL, binary[i](NULL, v, v, v), VKT_ERROR_INVALID_ARGUMENT, names[i],
               "ctx is NULL");
        EXPECT(ctx, binary[i](ctx, NULL, v, v), VKT_ERROR_INVALID_ARGUMENT, names[i],
               "out is NULL");
        EXPECT(ctx, binary[i](ctx, v, NULL, v), VKT_ERROR_INVALID_ARGUMENT, "a is NULL");
        EXPECT(ctx, binary[i](ctx, v, v, NULL), VKT_ERROR_INVALID_ARGUMENT, "b is NULL");
    }
    EXPECT(NULL, vkt_scale(NULL, v, v, 2), VKT_ERROR_INVALID_ARGUMENT, "vkt_scale",
           "ctx is NULL");
    EXPECT(ctx, vkt_scale(ctx, NULL, v, 2), VKT_ERROR_INVALID_ARGUMENT, "out is NULL");
    EXPECT(ctx, vkt_scale(ctx, v, NULL, 2), VKT_ERROR_INVALID_ARGUMENT, "x is NULL");
    EXPECT(NULL, vkt_fill(NULL, v, 2), VKT_ERROR_INVALID_ARGUMENT, "vkt_fill", "ctx is NULL");
    EXPECT(ctx, vkt_fill(ctx, NULL, 2), VKT_ERROR_INVALID_ARGUMENT, "vkt_fill", "out is NULL");
    EXPECT(NULL, vkt_relu(NULL, v, v), VKT_ERROR_INVALID_ARGUMENT, "vkt_relu", "ctx is NULL");
    EXPECT(ctx, vkt_relu(ctx, NULL, v), VKT_ERROR_INVALID_ARGUMENT, "out is NULL");
    EXPECT(ctx, vkt_relu(ctx, v, NULL), VKT_ERROR_INVALID_ARGUMENT, "x is NULL");
    EXPECT(NULL, vkt_relu_backward(NULL, v, v, v), VKT_ERROR_INVALID_ARGUMENT,
           "vkt_relu_backward", "ctx is NULL");
    EXPECT(ctx, vkt_relu_backward(ctx, NULL, v, v), VKT_ERROR_INVALID_ARGUMENT, "dx is NULL");
    EXPECT(ctx, vkt_relu_backward(ctx, v, NULL, v), VKT_ERROR_INVALID_ARGUMENT, "dy is NULL");
    EXPECT(ctx, vkt_relu_backward(ctx, v, v, NULL), VKT_ERROR_INVALID_ARGUMENT, "x is NULL");
    vkt_tensor_destroy(m);
    vkt_tensor_destroy(v);
}

/* Shape errors for every eager op, on both backends: the message names the
 * function, the operand and both shapes, and the output is left alone. */
static void shape_errors(vkt_context *c) {
    vkt_tensor *a34 = MAKE(c, "a", 3, 4), *b56 = MAKE(c, "b", 5, 6), *b45 = MAKE(c, "b", 4, 5);
    vkt_tensor *c35 = MAKE(c, "c", 3, 5), *c36 = MAKE(c, "c", 3, 6), *v4 = MAKE(c, "v", 4);
    vkt_tensor *v5 = MAKE(c, "bias", 5), *v12 = MAKE(c, "flat", 12), *m26 = MAKE(c, "m26", 2, 6);
    vkt_tensor *m43 = MAKE(c, "m43", 4, 3), *bias2d = MAKE(c, "bias2d", 1, 4);
    OK(c, vkt_fill(c, c36, 7.0f));

    /* matmul */
    EXPECT(c, vkt_matmul(c, c36, a34, b56, NULL), VKT_ERROR_SHAPE, "vkt_matmul",
           "inner dimensions", "(3, 4)", "(5, 6)");
    EXPECT(c, vkt_matmul(c, c35, a34, b45, &(vkt_matmul_desc){.transpose_a = true}),
           VKT_ERROR_SHAPE, "inner dimensions", "transposed");
    EXPECT(c, vkt_matmul(c, c35, a34, b45, &(vkt_matmul_desc){.transpose_b = true}),
           VKT_ERROR_SHAPE, "inner dimensions", "transposed");
    EXPECT(c, vkt_matmul(c, c36, a34, b45, NULL), VKT_ERROR_SHAPE, "vkt_matmul", "'c'",
           "(3, 6)", "expected (3, 5)");
    EXPECT(c, vkt_matmul(c, c35, v4, b45, NULL), VKT_ERROR_SHAPE, "2-D");
    EXPECT(c, vkt_matmul(c, c35, a34, v4, NULL), VKT_ERROR_SHAPE, "2-D");
    /* bias_add */
    EXPECT(c, vkt_bias_add(c, a34, a34, v5), VKT_ERROR_SHAPE, "vkt_bias_add", "bias (5)",
           "(3, 4)");
    EXPECT(c, vkt_bias_add(c, a34, a34, bias2d), VKT_ERROR_SHAPE, "vkt_bias_add", "1-D");
    EXPECT(c, vkt_bias_add(c, c36, a34, v4), VKT_ERROR_SHAPE, "'c'", "expected (3, 4)");
    EXPECT(c, vkt_bias_add(c, v12, a34, v4), VKT_ERROR_SHAPE, "'flat'", "(12)");
    /* column_sum */
    EXPECT(c, vkt_column_sum(c, v5, a34, false), VKT_ERROR_SHAPE, "vkt_column_sum", "'bias'",
           "(5)", "expected (4)");
    EXPECT(c, vkt_column_sum(c, a34, a34, true), VKT_ERROR_SHAPE, "vkt_column_sum",
           "expected (4)");
    /* add, sub, mul: same element count is not the same shape */
    vkt_result (*binary[])(vkt_context *, vkt_tensor *, const vkt_tensor *,
                           const vkt_tensor *) = {vkt_add, vkt_sub, vkt_mul};
    const char *names[] = {"vkt_add", "vkt_sub", "vkt_mul"};
    for (int i = 0; i < 3; i++) {
        EXPECT(c, binary[i](c, a34, a34, m26), VKT_ERROR_SHAPE, names[i], "same shape",
               "(3, 4)", "(2, 6)");
        EXPECT(c, binary[i](c, a34, v12, a34), VKT_ERROR_SHAPE, names[i], "(12)");
        EXPECT(c, binary[i](c, m43, a34, a34), VKT_ERROR_SHAPE, names[i], "'m43'",
               "expected (3, 4)");
    }
    /* scale, relu, relu_backward */
    EXPECT(c, vkt_scale(c, m43, a34, 2), VKT_ERROR_SHAPE, "vkt_scale", "'m43'", "(4, 3)");
    EXPECT(c, vkt_relu(c, v12, a34), VKT_ERROR_SHAPE, "vkt_relu", "'flat'", "expected (3, 4)");
    EXPECT(c, vkt_relu_backward(c, a34, a34, m43), VKT_ERROR_SHAPE, "vkt_relu_backward",
           "dy (3, 4)", "x (4, 3)");
    EXPECT(c, vkt_relu_backward(c, m26, a34, a34), VKT_ERROR_SHAPE, "vkt_relu_backward",
           "'m26'", "expected (3, 4)");

    /* Nothing ran: the output still holds what fill wrote. */
    float *kept = download(c36);
    for (int i = 0; i < 18; i++)
        cr_assert_eq(kept[i], 7.0f, "a failed call wrote its output (element %d)", i);
    free(kept);
    /* A good call afterwards succeeds and clears the message. */
    OK(c, vkt_matmul(c, c35, a34, b45, NULL));
    cr_assert_str_empty(vkt_context_last_error(c));

    vkt_tensor *all[] = {a34, b56, b45, c35, c36, v4, v5, v12, m26, m43, bias2d};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        vkt_tensor_destroy(all[i]);
}

Test(api_errors, shape_mismatch_every_op_cpu) { shape_errors(ctx); }

Test(api_errors, shape_mismatch_every_op_vulkan) {
    vkt_context *gpu = h_vulkan();
    shape_errors(gpu);
    h_finish(gpu);
}

/* Bad dims, ndim and element counts; nothing is allocated on failure and
 * the out pointer is left alone. */
static void bad_desc(vkt_tensor_desc desc, const char *needle1, const char *needle2) {
    vkt_tensor *sentinel = (vkt_tensor *)&ctx, *out = sentinel;
    vkt_result r = vkt_tensor_create(ctx, &desc, &out);
    expect_error("vkt_tensor_create", r, VKT_ERROR_INVALID_ARGUMENT, vkt_context_last_error(ctx),
                 "vkt_tensor_create", needle1, needle2, (const char *)NULL);
    cr_assert_eq(out, sentinel, "out_tensor was written on failure");
}

Test(api_errors, bad_tensor_descs) {
    vkt_context_info before, after;
    OK(ctx, vkt_context_query(ctx, &before));
    bad_desc((vkt_tensor_desc){.ndim = 2, .dims = {3, 0}, .name = "w"}, "'w'", "dims[1] = 0");
    bad_desc((vkt_tensor_desc){.ndim = 2, .dims = {3, 0}}, "dims[1] = 0", ">= 1");
    bad_desc((vkt_tensor_desc){.ndim = 1, .dims = {-4}}, "dims[0] = -4", NULL);
    bad_desc((vkt_tensor_desc){.ndim = 4, .dims = {2, 3, 4, -1}}, "dims[3] = -1", NULL);
    bad_desc((vkt_tensor_desc){.ndim = 0, .dims = {3}}, "ndim = 0", "1 to 4");
    bad_desc((vkt_tensor_desc){.ndim = 5, .dims = {1, 1, 1, 1}}, "ndim = 5", NULL);
    bad_desc((vkt_tensor_desc){.ndim = -1, .dims = {1}}, "ndim = -1", NULL);
    bad_desc((vkt_tensor_desc){.ndim = 2, .dims = {(int64_t)1 << 16, (int64_t)1 << 16},
                               .name = "huge"},
             "'huge'", "2^31 elements");
    bad_desc((vkt_tensor_desc){.ndim = 4, .dims = {1 << 10, 1 << 10, 1 << 10, 1 << 10}},
             "2^31 elements", NULL);
    /* products that would wrap int64 if multiplied unchecked */
    bad_desc((vkt_tensor_desc){.ndim = 2, .dims = {INT64_MAX, 2}}, "2^31 elements", NULL);
    bad_desc((vkt_tensor_desc){.ndim = 3, .dims = {(int64_t)1 << 32, (int64_t)1 << 32, 4}},
             "2^31 elements", NULL);
    OK(ctx, vkt_context_query(ctx, &after));
    cr_assert_eq(after.bytes_in_use, before.bytes_in_use, "a failed create allocated memory");
}

Test(api_errors, transfer_count_mismatch) {
    vkt_tensor *t = MAKE(ctx, "weights", 3, 4);
    float data[13] = {0};
    EXPECT(ctx, vkt_tensor_upload(t, data, 11), VKT_ERROR_INVALID_ARGUMENT, "vkt_tensor_upload",
           "'weights'", "count = 11", "12 elements");
    EXPECT(ctx, vkt_tensor_upload(t, data, 13), VKT_ERROR_INVALID_ARGUMENT, "count = 13");
    EXPECT(ctx, vkt_tensor_upload(t, data, 0), VKT_ERROR_INVALID_ARGUMENT, "count = 0");
    EXPECT(ctx, vkt_tensor_download(t, data, 11), VKT_ERROR_INVALID_ARGUMENT,
           "vkt_tensor_download", "'weights'", "count = 11");
    EXPECT(ctx, vkt_tensor_download(t, data, 13), VKT_ERROR_INVALID_ARGUMENT, "count = 13");
    OK(ctx, vkt_tensor_upload(t, data, 12));
    vkt_tensor_destroy(t);
}

/* Tensors of one context used on another: refused for every eager op, on
 * either side of a CPU/Vulkan pair and between two CPU contexts. */
static void foreign_tensors(vkt_context *home, vkt_context *away) {
    vkt_tensor *m = MAKE(home, "mine", 4, 4), *v = MAKE(home, "vec", 4);
    vkt_tensor *f = MAKE(away, "foreign", 4, 4), *fv = MAKE(away, "foreign_vec", 4);
    const vkt_result X = VKT_ERROR_BACKEND_MISMATCH;
    EXPECT(home, vkt_matmul(home, m, m, f, NULL), X, "vkt_matmul", "b 'foreign'",
           "another context");
    EXPECT(home, vkt_matmul(home, m, f, m, NULL), X, "a 'foreign'");
    EXPECT(home, vkt_matmul(home, f, m, m, NULL), X, "c 'foreign'");
    EXPECT(home, vkt_bias_add(home, m, m, fv), X, "vkt_bias_add", "bias 'foreign_vec'");
    EXPECT(home, vkt_column_sum(home, fv, m, false), X, "vkt_column_sum", "out 'foreign_vec'");
    EXPECT(home, vkt_add(home, m, m, f), X, "vkt_add", "'foreign'");
    EXPECT(home, vkt_sub(home, m, f, m), X, "vkt_sub", "'foreign'");
    EXPECT(home, vkt_mul(home, f, m, m), X, "vkt_mul", "'foreign'");
    EXPECT(home, vkt_scale(home, m, f, 2), X, "vkt_scale", "'foreign'");
    EXPECT(home, vkt_fill(home, f, 2), X, "vkt_fill", "'foreign'");
    EXPECT(home, vkt_relu(home, v, fv), X, "vkt_relu", "'foreign_vec'");
    EXPECT(home, vkt_relu_backward(home, v, v, fv), X, "vkt_relu_backward", "'foreign_vec'");
    /* The foreign context saw none of this. */
    cr_assert_str_empty(vkt_context_last_error(away));
    vkt_tensor_destroy(m);
    vkt_tensor_destroy(v);
    vkt_tensor_destroy(f);
    vkt_tensor_destroy(fv);
}

Test(api_errors, tensors_from_another_context) {
    vkt_context *other = h_cpu(), *gpu = h_vulkan();
    foreign_tensors(ctx, other);
    foreign_tensors(ctx, gpu);
    foreign_tensors(gpu, ctx);
    h_finish(gpu);
    h_finish(other);
}

Test(api_errors, matmul_output_may_not_alias_an_input) {
    vkt_tensor *a = MAKE(ctx, "a", 3, 3), *b = MAKE(ctx, "b", 3, 3), *v = MAKE(ctx, "v", 3);
    upload_random(a, 1, -1, 1);
    upload_random(b, 2, -1, 1);
    float *before = download(a);
    EXPECT(ctx, vkt_matmul(ctx, a, a, b, NULL), VKT_ERROR_INVALID_ARGUMENT, "vkt_matmul",
           "c 'a'", "may not be the same tensor as a");
    EXPECT(ctx, vkt_matmul(ctx, b, a, b, &(vkt_matmul_desc){.accumulate = true}),
           VKT_ERROR_INVALID_ARGUMENT, "c 'b'", "as b");
    /* column_sum reads a column after writing it: no aliasing either. */
    EXPECT(ctx, vkt_column_sum(ctx, v, v, false), VKT_ERROR_INVALID_ARGUMENT, "vkt_column_sum",
           "out 'v'", "as x");
    float *after = download(a);
    h_assert_close(after, before, 9, 0, 0, "a after refused calls");
    free(before);
    free(after);
    vkt_tensor_destroy(a);
    vkt_tensor_destroy(b);
    vkt_tensor_destroy(v);
}

Test(api_errors, bad_backend_enum) {
    unsetenv("VKT_BACKEND");
    vkt_context *sentinel = (vkt_context *)&ctx, *out = sentinel;
    EXPECT(NULL, vkt_context_create(&(vkt_context_desc){.backend = (vkt_backend)42}, &out),
           VKT_ERROR_INVALID_ARGUMENT, "desc->backend = 42");
    cr_assert_eq(out, sentinel);
}

static int logged_errors;
static char logged[VKT_ERROR_MESSAGE_SIZE];
static void capture(vkt_log_level level, const char *message, void *user) {
    cr_assert_eq(user, &logged_errors);
    if (level == VKT_LOG_ERROR) {
        logged_errors++;
        snprintf(logged, sizeof logged, "%s", message);
    }
}

/* Errors also reach the log callback, with the same text. */
Test(api_errors, errors_reach_the_log_callback) {
    vkt_context *c = NULL;
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU,
                                                        .log = capture,
                                                        .log_user_data = &logged_errors},
                                    &c),
                 VKT_OK, "%s", vkt_last_error());
    vkt_tensor *a = MAKE(c, "a", 2, 3);
    EXPECT(c, vkt_matmul(c, a, a, a, NULL), VKT_ERROR_SHAPE, "inner dimensions");
    cr_assert_eq(logged_errors, 1);
    cr_assert_str_eq(logged, vkt_context_last_error(c));
    vkt_tensor_destroy(a);
    vkt_context_destroy(c);
}

// ---- Queries and result strings

TestSuite(api_queries, .timeout = 60);

static void check_tensor_query(vkt_context *c) {
    vkt_tensor *t = MAKE(c, "activations", 2, 3, 5, 7), *u = NULL;
    vkt_tensor_info info;
    OK(c, vkt_tensor_query(t, &info));
    cr_assert_eq(info.ndim, 4);
    cr_assert_eq(info.dims[0], 2);
    cr_assert_eq(info.dims[1], 3);
    cr_assert_eq(info.dims[2], 5);
    cr_assert_eq(info.dims[3], 7);
    cr_assert_eq(info.numel, 210);
    cr_assert_str_eq(info.name, "activations");
    vkt_tensor_destroy(t);

    /* No name gives a placeholder; a long name is cut, not overflowed. The
     * desc's name is copied: the caller's buffer may go away. */
    OK(c, vkt_tensor_create(c, &(vkt_tensor_desc){.ndim = 1, .dims = {9}}, &u));
    OK(c, vkt_tensor_query(u, &info));
    cr_assert_eq(info.ndim, 1);
    cr_assert_eq(info.numel, 9);
    cr_assert_not_null(info.name);
    cr_assert_str_eq(info.name, "tensor");
    vkt_tensor_destroy(u);
    char long_name[200];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    OK(c, vkt_tensor_create(c, &(vkt_tensor_desc){.ndim = 1, .dims = {1}, .name = long_name}, &u));
    memset(long_name, 'x', 10);
    OK(c, vkt_tensor_query(u, &info));
    cr_assert_gt(strlen(info.name), 0);
    cr_assert_lt(strlen(info.name), sizeof long_name - 1);
    cr_assert_eq(info.name[0], 'n', "the tensor kept a pointer to the caller's name");
    vkt_tensor_destroy(u);
}

Test(api_queries, tensor_query_cpu) {
    vkt_context *c = h_cpu();
    check_tensor_query(c);
    h_finish(c);
}

Test(api_queries, tensor_query_vulkan) {
    vkt_context *c = h_vulkan();
    check_tensor_query(c);
    h_finish(c);
}

/* bytes_in_use follows tensors; bytes_reserved covers it. */
static void check_memory_accounting(vkt_context *c) {
    vkt_context_info info;
    OK(c, vkt_context_query(c, &info));
    uint64_t base = info.bytes_in_use;
    vkt_tensor *t = MAKE(c, "t", 1000);
    OK(c, vkt_context_query(c, &info));
    cr_assert_geq(info.bytes_in_use, base + 4000);
    cr_assert_geq(info.bytes_reserved, info.bytes_in_use);
    vkt_tensor_destroy(t);
    OK(c, vkt_context_query(c, &info));
    cr_assert_eq(info.bytes_in_use, base);
}

Test(api_queries, context_query_cpu) {
    vkt_context *c = h_cpu();
    vkt_context_info info, sentinel;
    memset(&sentinel, 0x5a, sizeof sentinel);
    memcpy(&info, &sentinel, sizeof info);
    OK(c, vkt_context_query(c, &info));
    cr_assert_eq(info.backend, VKT_BACKEND_CPU);
    cr_assert_str_eq(info.device_name, "CPU reference");
    cr_assert_not(info.validation);
    cr_assert_not(info.adopted);
    cr_assert_geq(info.subgroup_size, 1);
    cr_assert_eq(info.bytes_in_use, 0);
    check_memory_accounting(c);
    /* Failure leaves the output untouched. */
    memcpy(&info, &sentinel, sizeof info);
    cr_assert_neq(vkt_context_query(NULL, &info), VKT_OK);
    cr_assert(memcmp(&info, &sentinel, sizeof info) == 0);
    cr_assert_eq(vkt_context_validation_messages(c), 0);
    cr_assert_eq(vkt_context_wait_idle(c), VKT_OK);
    h_finish(c);
}

Test(api_queries, context_query_vulkan) {
    vkt_context *c = h_vulkan();
    vkt_context_info info;
    OK(c, vkt_context_query(c, &info));
    cr_assert_eq(info.backend, VKT_BACKEND_VULKAN);
    cr_assert(strstr(info.device_name, "llvmpipe"), "device '%s'", info.device_name);
    cr_assert(info.validation);
    cr_assert_not(info.adopted);
    cr_assert_geq(info.subgroup_size, 1);
    cr_assert_eq(info.bytes_in_use, 0);
    uint32_t count = 8;
    vkt_device_info devices[8];
    cr_assert_eq(vkt_device_list(&count, devices, NULL), VKT_OK, "%s", vkt_last_error());
    cr_assert_lt(info.device_index, count);
    cr_assert_str_eq(devices[info.device_index].name, info.device_name);
    cr_assert_eq(devices[info.device_index].subgroup_size, info.subgroup_size);
    check_memory_accounting(c);
    cr_assert_eq(vkt_context_wait_idle(c), VKT_OK);
    h_finish(c);
}

Test(api_queries, result_string_every_code) {
    const char *names[VKT_RESULT_COUNT] = {
        [VKT_OK] = "VKT_OK",
        [VKT_ERROR_INVALID_ARGUMENT] = "VKT_ERROR_INVALID_ARGUMENT",
        [VKT_ERROR_SHAPE] = "VKT_ERROR_SHAPE",
        [VKT_ERROR_OUT_OF_HOST_MEMORY] = "VKT_ERROR_OUT_OF_HOST_MEMORY",
        [VKT_ERROR_OUT_OF_DEVICE_MEMORY] = "VKT_ERROR_OUT_OF_DEVICE_MEMORY",
        [VKT_ERROR_DEVICE_LOST] = "VKT_ERROR_DEVICE_LOST",
        [VKT_ERROR_NO_VULKAN] = "VKT_ERROR_NO_VULKAN",
        [VKT_ERROR_NO_DEVICE] = "VKT_ERROR_NO_DEVICE",
        [VKT_ERROR_UNSUPPORTED] = "VKT_ERROR_UNSUPPORTED",
        [VKT_ERROR_VULKAN] = "VKT_ERROR_VULKAN",
        [VKT_ERROR_IO] = "VKT_ERROR_IO",
        [VKT_ERROR_CORRUPT_DATA] = "VKT_ERROR_CORRUPT_DATA",
        [VKT_ERROR_NON_FINITE] = "VKT_ERROR_NON_FINITE",
        [VKT_ERROR_BACKEND_MISMATCH] = "VKT_ERROR_BACKEND_MISMATCH",
        [VKT_ERROR_CHECK_FAILED] = "VKT_ERROR_CHECK_FAILED",
    };
    for (int r = 0; r < VKT_RESULT_COUNT; r++) {
        cr_assert_not_null(names[r], "result %d has no expected name in this test", r);
        const char *s = vkt_result_string((vkt_result)r);
        cr_assert_not_null(s);
        /* "NAME: explanation", the name exactly (not a prefix of another) */
        size_t len = strlen(names[r]);
        cr_assert(strncmp(s, names[r], len) == 0 && s[len] == ':' && strlen(s) > len + 2,
                  "vkt_result_string(%d) = '%s', expected '%s: ...'", r, s, names[r]);
        for (int q = 0; q < r; q++)
            cr_assert_str_neq(s, vkt_result_string((vkt_result)q));
    }
    const int unknown[] = {VKT_RESULT_COUNT, -1, 1000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = vkt_result_string((vkt_result)unknown[i]);
        cr_assert_not_null(s);
        cr_assert(strstr(s, "unknown"), "vkt_result_string(%d) = '%s'", unknown[i], s);
    }
}
