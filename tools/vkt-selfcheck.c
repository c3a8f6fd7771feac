/* vkt-selfcheck: runs every public eager kernel on the Vulkan device and on
 * the CPU reference backend with the same random data, at shapes chosen to
 * miss every tile and workgroup size, and prints how far they disagree.
 *
 * It is the quick answer to "does vktrain compute correctly on this
 * machine's driver?" without the test suite's dependencies, and it drives
 * the kernels only through the public API (vktrain.h), as a user would.
 *
 * Exit status: 0 all PASS; 1 any FAIL, any error or any validation-layer
 * message; 2 bad arguments or an unusable setup; 77 no Vulkan device (there
 * is nothing to compare the CPU backend against). */
#include "vktrain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef VKT_VERSION
#define VKT_VERSION "unknown"
#endif

#define EXIT_NO_DEVICE 77

typedef enum check_op {
    CHECK_MATMUL,
    CHECK_BIAS_ADD,
    CHECK_COLUMN_SUM,
    CHECK_ADD,
    CHECK_SUB,
    CHECK_MUL,
    CHECK_SCALE,
    CHECK_FILL,
    CHECK_RELU,
    CHECK_RELU_BWD,
} check_op;

typedef struct dims {
    int32_t ndim;
    int64_t d[VKT_MAX_DIMS];
} dims;

/* One row of the table: an eager call, its operand shapes, and the bound
 * |gpu - cpu| <= atol + rtol * |cpu| that every output element must meet. */
typedef struct check_case {
    char label[48];
    char shape[48];
    check_op op;
    int nin;
    dims in[2];
    dims out;
    vkt_matmul_desc matmul;
    bool accumulate; /* column_sum */
    float scalar;    /* scale, fill */
    int alias;       /* -1, or the input the output is written over */
    double atol, rtol;
} check_case;

#define MAX_CASES 96

static int64_t numel(const dims *s) {
    int64_t n = 1;
    for (int32_t i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

static dims dims1(int64_t a) { return (dims){1, {a}}; }
static dims dims2(int64_t a, int64_t b) { return (dims){2, {a, b}}; }

static void format_dims(const dims *s, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < s->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? "x%lld" : "%lld", (long long)s->d[i]);
}

// ---- The cases

/* Matmul's error grows with K (a sum of K rounded products); 1e-5 per term
 * still fails a kernel that drops or repeats a single product (~0.25). */
static void add_matmul(check_case *cases, int *n, int64_t M, int64_t N, int64_t K, bool ta,
                       bool tb, bool acc) {
    check_case *c = &cases[(*n)++];
    *c = (check_case){.op = CHECK_MATMUL, .nin = 2, .alias = -1,
                      .matmul = {ta, tb, acc}, .atol = 1e-5 * (double)K, .rtol = 1e-5};
    c->in[0] = ta ? dims2(K, M) : dims2(M, K);
    c->in[1] = tb ? dims2(N, K) : dims2(K, N);
    c->out = dims2(M, N);
    snprintf(c->label, sizeof c->label, "matmul %s%s%s", ta ? "A^T" : "A", tb ? " B^T" : " B",
             acc ? " accumulate" : "");
    snprintf(c->shape, sizeof c->shape, "M=%lld N=%lld K=%lld", (long long)M, (long long)N,
             (long long)K);
}

/* Elementwise kernels do one rounding per element on both backends, so
 * they must agree to the last bit or nearly; the tolerance only allows for
 * a device that flushes denormals. */
static check_case *add_pointwise(check_case *cases, int *n, const char *label, check_op op,
                                 int nin, dims shape, int alias) {
    check_case *c = &cases[(*n)++];
    *c = (check_case){.op = op, .nin = nin, .out = shape, .alias = alias,
                      .atol = 1e-6, .rtol = 1e-6};
    for (int i = 0; i < nin; i++)
        c->in[i] = shape;
    snprintf(c->label, sizeof c->label, "%s", label);
    format_dims(&shape, c->shape, sizeof c->shape);
    return c;
}

static int build_cases(check_case *cases) {
    int n = 0;
    /* Prime-ish sizes: no dimension is a multiple of any tile, workgroup
     * or subgroup size, so every kernel takes its edge paths. */
    const int64_t mm[][3] = {{33, 7, 129}, {67, 130, 3}};
    for (size_t s = 0; s < sizeof mm / sizeof mm[0]; s++)
        for (int acc = 0; acc < 2; acc++)
            for (int t = 0; t < 4; t++)
                add_matmul(cases, &n, mm[s][0], mm[s][1], mm[s][2], t & 1, t & 2, acc);

    /* bias_add views x as (rows, cols); one 2-D and one 4-D x. */
    const dims bias_x[] = {dims2(37, 129), (dims){4, {2, 3, 5, 11}}};
    for (size_t s = 0; s < 2; s++) {
        for (int alias = -1; alias <= 0; alias++) {
            check_case *c = add_pointwise(cases, &n, alias < 0 ? "bias_add" : "bias_add in place",
                                          CHECK_BIAS_ADD, 2, bias_x[s], alias);
            c->in[1] = dims1(bias_x[s].d[bias_x[s].ndim - 1]);
        }
    }

    /* column_sum: long columns (a long fp32 sum) and many short ones. */
    const dims sum_x[] = {dims2(1000, 3), dims2(5, 1031)};
    for (size_t s = 0; s < 2; s++) {
        for (int acc = 0; acc < 2; acc++) {
            check_case *c = add_pointwise(cases, &n,
                                          acc ? "column_sum accumulate" : "column_sum",
                                          CHECK_COLUMN_SUM, 1, sum_x[s], -1);
            c->out = dims1(sum_x[s].d[1]);
            c->accumulate = acc;
            c->atol = 1e-6 * (double)sum_x[s].d[0];
            c->rtol = 1e-5;
        }
    }

    /* Pointwise ops: a small 3-D tensor, and one of 4.2M elements: with
     * 64-wide workgroups (CPU devices) that is more than the 65535
     * workgroups a grid may have along x, so the grid spills into y. */
    const dims pw[] = {(dims){3, {3, 5, 7}}, dims2(2053, 2049)};
    for (size_t s = 0; s < 2; s++) {
        add_pointwise(cases, &n, "add", CHECK_ADD, 2, pw[s], -1);
        add_pointwise(cases, &n, "sub", CHECK_SUB, 2, pw[s], -1);
        add_pointwise(cases, &n, "mul", CHECK_MUL, 2, pw[s], -1);
        add_pointwise(cases, &n, "scale", CHECK_SCALE, 1, pw[s], -1)->scalar = -0.7f;
        add_pointwise(cases, &n, "fill", CHECK_FILL, 0, pw[s], -1)->scalar = 3.25f;
        add_pointwise(cases, &n, "relu", CHECK_RELU, 1, pw[s], -1);
        add_pointwise(cases, &n, "relu_backward", CHECK_RELU_BWD, 2, pw[s], -1);
    }
    /* The documented in-place forms, once each. */
    add_pointwise(cases, &n, "add out=a", CHECK_ADD, 2, pw[0], 0);
    add_pointwise(cases, &n, "sub out=b", CHECK_SUB, 2, pw[0], 1);
    add_pointwise(cases, &n, "mul out=a", CHECK_MUL, 2, pw[0], 0);
    add_pointwise(cases, &n, "scale in place", CHECK_SCALE, 1, pw[0], 0)->scalar = 1.5f;
    add_pointwise(cases, &n, "relu in place", CHECK_RELU, 1, pw[0], 0);
    add_pointwise(cases, &n, "relu_backward dx=dy", CHECK_RELU_BWD, 2, pw[0], 0);
    return n;
}

// ---- Running a case on one backend

/* splitmix64: the same sequence on every platform, so a failure can be
 * reproduced with the seed the run printed. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_random(float *out, int64_t n, uint64_t *state) {
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)((double)(next_random(state) >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static vkt_result call_op(vkt_context *ctx, const check_case *c, vkt_tensor *out,
                          vkt_tensor *const *in) {
    switch (c->op) {
    case CHECK_MATMUL: return vkt_matmul(ctx, out, in[0], in[1], &c->matmul);
    case CHECK_BIAS_ADD: return vkt_bias_add(ctx, out, in[0], in[1]);
    case CHECK_COLUMN_SUM: return vkt_column_sum(ctx, out, in[0], c->accumulate);
    case CHECK_ADD: return vkt_add(ctx, out, in[0], in[1]);
    case CHECK_SUB: return vkt_sub(ctx, out, in[0], in[1]);
    case CHECK_MUL: return vkt_mul(ctx, out, in[0], in[1]);
    case CHECK_SCALE: return vkt_scale(ctx, out, in[0], c->scalar);
    case CHECK_FILL: return vkt_fill(ctx, out, c->scalar);
    case CHECK_RELU: return vkt_relu(ctx, out, in[0]);
    case CHECK_RELU_BWD: return vkt_relu_backward(ctx, out, in[0], in[1]);
    }
    return VKT_ERROR_INVALID_ARGUMENT;
}

static vkt_result make_tensor(vkt_context *ctx, const dims *s, const char *name, vkt_tensor **out) {
    vkt_tensor_desc desc = {.ndim = s->ndim, .name = name};
    memcpy(desc.dims, s->d, sizeof desc.dims);
    return vkt_tensor_create(ctx, &desc, out);
}

/* Runs c on ctx with the given inputs and initial output (accumulating ops
 * read it) and downloads the output into result. On failure writes the
 * context's message to err. */
static vkt_result run_case(vkt_context *ctx, const check_case *c, float *const *inputs,
                           const float *initial_out, float *result, char *err, size_t err_size) {
    static const char *const names[2] = {"in0", "in1"};
    vkt_tensor *in[2] = {NULL, NULL}, *out = NULL;
    vkt_result r = VKT_OK;
    for (int i = 0; i < c->nin && r == VKT_OK; i++) {
        r = make_tensor(ctx, &c->in[i], names[i], &in[i]);
        if (r == VKT_OK)
            r = vkt_tensor_upload(in[i], inputs[i], (size_t)numel(&c->in[i]));
    }
    if (r == VKT_OK && c->alias < 0) {
        r = make_tensor(ctx, &c->out, "out", &out);
        if (r == VKT_OK)
            r = vkt_tensor_upload(out, initial_out, (size_t)numel(&c->out));
    }
    vkt_tensor *target = c->alias >= 0 ? in[c->alias] : out;
    if (r == VKT_OK)
        r = call_op(ctx, c, target, in);
    if (r == VKT_OK)
        r = vkt_tensor_download(target, result, (size_t)numel(&c->out));
    if (r != VKT_OK)
        snprintf(err, err_size, "%s", vkt_context_last_error(ctx));
    vkt_tensor_destroy(out);
    vkt_tensor_destroy(in[0]);
    vkt_tensor_destroy(in[1]);
    return r;
}

// ---- Comparing

typedef struct comparison {
    double max_abs, max_rel;
    int64_t worst; /* index of the element furthest outside the bound, -1 if none */
    int64_t bad;   /* elements outside the bound or non-finite */
} comparison;

/* Relative error is reported only where |cpu| >= REL_FLOOR: near zero it
 * says nothing (a 1e-8 difference on a 1e-9 value), and the pass bound's
 * atol covers those elements. */
#define REL_FLOOR 1e-3

static comparison compare(const float *gpu, const float *cpu, int64_t n, double atol,
                          double rtol) {
    comparison cmp = {0, 0, -1, 0};
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = gpu[i], r = cpu[i], diff = fabs(g - r);
        if (!isfinite(g) || !isfinite(r)) {
            /* Only the same NaN or infinity on both sides agrees. */
            if ((isnan(g) && isnan(r)) || g == r)
                continue;
            cmp.bad++;
            cmp.max_abs = INFINITY;
            if (worst_excess < INFINITY) {
                worst_excess = INFINITY;
                cmp.worst = i;
            }
            continue;
        }
        if (diff > cmp.max_abs)
            cmp.max_abs = diff;
        if (fabs(r) >= REL_FLOOR && diff / fabs(r) > cmp.max_rel)
            cmp.max_rel = diff / fabs(r);
        double excess = diff - (atol + rtol * fabs(r));
        if (excess > 0) {
            cmp.bad++;
            if (excess > worst_excess) {
                worst_excess = excess;
                cmp.worst = i;
            }
        }
    }
    return cmp;
}

// ---- Driver

typedef struct options {
    bool validation, verbose;
    uint64_t seed;
} options;

static void log_message(vkt_log_level level, const char *message, void *user_data) {
    const options *opt = user_data;
    if (level >= VKT_LOG_WARNING || opt->verbose)
        fprintf(stderr, "vktrain: %s\n", message);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkt-selfcheck [--validation] [--seed N] [--verbose]\n"
            "Runs every eager kernel on the Vulkan device and the CPU reference backend\n"
            "and compares them. --validation turns on the Khronos validation layer (also\n"
            "VKT_VALIDATION=1); any message it reports fails the check. VKT_DEVICE picks\n"
            "the device.\n");
}

static int parse_args(int argc, char **argv, options *opt) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--validation") == 0) {
            opt->validation = true;
        } else if (strcmp(argv[i], "--verbose") == 0) {
            opt->verbose = true;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            opt->seed = strtoull(argv[++i], &end, 0);
            if (*end) {
                fprintf(stderr, "vkt-selfcheck: --seed wants a number, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vkt-selfcheck: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* Creates both contexts and checks that each really is the backend asked
 * for: VKT_BACKEND overrides the desc, and a comparison of the CPU backend
 * with itself would prove nothing. */
static int open_contexts(options *opt, vkt_context **gpu, vkt_context **cpu) {
    vkt_context_desc desc = {.backend = VKT_BACKEND_VULKAN, .validation = opt->validation,
                             .log = log_message, .log_user_data = opt};
    vkt_result r = vkt_context_create(&desc, gpu);
    if (r == VKT_ERROR_NO_VULKAN || r == VKT_ERROR_NO_DEVICE) {
        printf("vkt-selfcheck: no Vulkan device to check (%s).\n"
               "Nothing to compare against; the CPU reference backend still works.\n",
               vkt_last_error());
        return EXIT_NO_DEVICE;
    }
    if (r != VKT_OK) {
        fprintf(stderr, "vkt-selfcheck: cannot create a Vulkan context: %s\n", vkt_last_error());
        return 2;
    }
    desc.backend = VKT_BACKEND_CPU;
    r = vkt_context_create(&desc, cpu);
    if (r != VKT_OK) {
        fprintf(stderr, "vkt-selfcheck: cannot create a CPU context: %s\n", vkt_last_error());
        return 2;
    }
    vkt_context_info gi, ci;
    if (vkt_context_query(*gpu, &gi) != VKT_OK || vkt_context_query(*cpu, &ci) != VKT_OK ||
        gi.backend != VKT_BACKEND_VULKAN || ci.backend != VKT_BACKEND_CPU) {
        fprintf(stderr, "vkt-selfcheck: VKT_BACKEND=%s forces one backend for both contexts; "
                        "unset it to compare Vulkan with the CPU reference\n",
                getenv("VKT_BACKEND") ? getenv("VKT_BACKEND") : "");
        return 2;
    }
    printf("vkt-selfcheck %s: Vulkan device %u '%s' (subgroup %u) against the CPU reference\n",
           VKT_VERSION, gi.device_index, gi.device_name, gi.subgroup_size);
    printf("validation layer %s, seed %llu\n\n", gi.validation ? "on" : "off",
           (unsigned long long)opt->seed);
    return -1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs one case on both backends and prints its row; returns true on PASS. */
static bool check_one(vkt_context *gpu, vkt_context *cpu, const check_case *c, uint64_t *rng) {
    int64_t out_n = numel(&c->out);
    float *inputs[2] = {NULL, NULL};
    float *initial = malloc((size_t)out_n * sizeof(float));
    float *got = malloc((size_t)out_n * sizeof(float));
    float *want = malloc((size_t)out_n * sizeof(float));
    bool ok = initial && got && want;
    for (int i = 0; i < c->nin && ok; i++) {
        inputs[i] = malloc((size_t)numel(&c->in[i]) * sizeof(float));
        ok = inputs[i] != NULL;
        if (ok)
            fill_random(inputs[i], numel(&c->in[i]), rng);
    }
    if (!ok) {
        printf("%-26s %-20s out of host memory\n", c->label, c->shape);
    } else {
        fill_random(initial, out_n, rng);
        char err[512] = "";
        vkt_result r = run_case(cpu, c, inputs, initial, want, err, sizeof err);
        const char *where = "CPU";
        if (r == VKT_OK) {
            where = "Vulkan";
            r = run_case(gpu, c, inputs, initial, got, err, sizeof err);
        }
        if (r != VKT_OK) {
            ok = false;
            printf("%-26s %-20s %-12s %-12s FAIL (%s: %s)\n", c->label, c->shape, "-", "-", where,
                   err);
        } else {
            comparison cmp = compare(got, want, out_n, c->atol, c->rtol);
            ok = cmp.bad == 0;
            printf("%-26s %-20s %-12.3g %-12.3g %s", c->label, c->shape, cmp.max_abs, cmp.max_rel,
                   ok ? "PASS" : "FAIL");
            if (!ok)
                printf(" (%lld of %lld elements outside %.1g + %.1g*|ref|; worst [%lld]: "
                       "vulkan %.9g, cpu %.9g)",
                       (long long)cmp.bad, (long long)out_n, c->atol, c->rtol,
                       (long long)cmp.worst, got[cmp.worst], want[cmp.worst]);
            printf("\n");
        }
    }
    fflush(stdout);
    free(inputs[0]);
    free(inputs[1]);
    free(initial);
    free(got);
    free(want);
    return ok;
}

int main(int argc, char **argv) {
    options opt = {.seed = 1};
    int status = parse_args(argc, argv, &opt);
    if (status >= 0)
        return status;
    vkt_context *gpu = NULL, *cpu = NULL;
    status = open_contexts(&opt, &gpu, &cpu);
    if (status >= 0) {
        vkt_context_destroy(cpu);
        vkt_context_destroy(gpu);
        return status;
    }

    static check_case cases[MAX_CASES];
    int count = build_cases(cases);
    printf("%-26s %-20s %-12s %-12s %s\n", "op", "shape", "max abs err", "max rel err", "result");
    printf("%-26s %-20s %-12s %-12s %s\n", "--------------------------", "--------------------",
           "------------", "------------", "------");
    double start = now_seconds();
    uint64_t rng = opt.seed;
    int failed = 0;
    for (int i = 0; i < count; i++)
        failed += !check_one(gpu, cpu, &cases[i], &rng);

    uint64_t messages = vkt_context_validation_messages(gpu) + vkt_context_validation_messages(cpu);
    printf("\n%d checks: %d passed, %d failed; %llu validation message%s; %.1f s\n", count,
           count - failed, failed, (unsigned long long)messages, messages == 1 ? "" : "s",
           now_seconds() - start);
    printf("(max rel err counts elements with |cpu| >= %g; smaller ones are judged by the "
           "absolute bound)\n", REL_FLOOR);
    vkt_context_destroy(cpu);
    vkt_context_destroy(gpu);
    if (failed || messages) {
        printf("vkt-selfcheck: FAILED\n");
        return 1;
    }
    printf("vkt-selfcheck: all kernels agree with the CPU reference\n");
    return 0;
}
