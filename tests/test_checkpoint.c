/* test_checkpoint.c: safetensors checkpoints. Round trips that are
 * bit-exact, training resumed from a checkpoint that matches training
 * straight through, every kind of damaged file refused with its offset and
 * the model untouched, saves killed mid-write that never leave a broken
 * file, and the file read back by tools/read_checkpoint.py. */
#include "harness.h"

#include "../runtime/graph/model.h"
#include "../runtime/graph/safetensors.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum { B = 4, IN = 5, HID = 8, OUT = 3 };

/* ---- Contexts ---- */

/* The harness's logger, less the errors of vkt_model_load/save that these
 * tests provoke by the thousand (each is checked where it is provoked). */
static void quiet_log(vkt_log_level level, const char *message, void *user) {
    (void)user;
    if (level >= VKT_LOG_WARNING && strncmp(message, "vkt_model_load:", 15) != 0 &&
        strncmp(message, "vkt_model_save:", 15) != 0)
        fprintf(stderr, "vktrain: %s\n", message);
}

static vkt_context *quiet_context(vkt_backend backend) {
    vkt_context *ctx = NULL;
    vkt_result r = vkt_context_create(
        &(vkt_context_desc){
            .backend = backend, .validation = backend == VKT_BACKEND_VULKAN, .log = quiet_log},
        &ctx);
    cr_assert_eq(r, VKT_OK, "context: %s", vkt_last_error());
    return ctx;
}

static vkt_context *cpu(void) { return quiet_context(VKT_BACKEND_CPU); }
static vkt_context *vulkan(void) { return quiet_context(VKT_BACKEND_VULKAN); }

/* ---- A small MLP and its data ---- */

typedef struct net {
    vkt_graph *g;
    vkt_var x, y, loss;
} net;

/* x (B, IN) -> fc1 -> relu -> dropout -> fc2 -> cross-entropy. Dropout
 * makes the step count matter beyond the optimizer: its mask depends on it. */
static void net_build(vkt_context *ctx, net *n, int64_t hidden) {
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 7}, &n->g), VKT_OK);
    n->x = vkt_graph_input(n->g, "x", 2, (int64_t[]){B, IN});
    n->y = vkt_graph_input(n->g, "y", 1, (int64_t[]){B});
    vkt_var h = vkt_graph_relu(n->g, vkt_graph_linear(n->g, n->x, hidden, "fc1"));
    h = vkt_graph_dropout(n->g, h, 0.25f);
    n->loss = vkt_graph_softmax_cross_entropy(n->g, vkt_graph_linear(n->g, h, OUT, "fc2"), n->y);
    cr_assert_eq(vkt_graph_status(n->g), VKT_OK, "%s", vkt_graph_last_error(n->g));
}

static vkt_model *net_model(const net *n, vkt_optimizer_desc opt) {
    vkt_model *m;
    vkt_result r = vkt_model_create(n->g, &(vkt_model_desc){.loss = n->loss, .optimizer = opt}, &m);
    cr_assert_eq(r, VKT_OK, "%s", vkt_context_last_error(n->g->ctx));
    return m;
}

/* Adam with a cosine schedule: the learning rate and both bias corrections
 * change with every step. */
static const vkt_optimizer_desc adam = {.type = VKT_OPTIMIZER_ADAM,
                                        .lr = 0.02f,
                                        .schedule = VKT_SCHEDULE_COSINE,
                                        .warmup_steps = 2,
                                        .total_steps = 8};

/* One training step on data that depends on the step number t. */
static float train_step(vkt_model *m, const net *n, uint64_t t) {
    float xs[B * IN], labels[B], loss;
    h_random(xs, B * IN, 100 + t, -2, 2);
    for (int b = 0; b < B; b++)
        labels[b] = (float)((b + t) % OUT);
    vkt_feed feeds[2] = {{n->x, xs, B * IN}, {n->y, labels, B}};
    cr_assert_eq(vkt_model_step(m, feeds, 2, &loss), VKT_OK, "%s", vkt_model_last_error(m));
    return loss;
}

/* ---- Snapshots of everything a checkpoint holds ---- */

typedef struct snapshot {
    float *values; /* every parameter and state tensor, in graph order */
    size_t count;
    uint64_t step;
} snapshot;

static bool saved(const vkt_model *m, uint32_t v) {
    var_kind k = m->g->vars[v].kind;
    return (k == VAR_PARAMETER || k == VAR_STATE) && (vkt_var)v != m->g->hyper;
}

static snapshot snap(vkt_model *m) {
    snapshot s = {.step = m->step};
    for (uint32_t v = 1; v < m->g->var_count; v++)
        if (saved(m, v))
            s.count += (size_t)vkt_shape_numel(&m->g->vars[v].shape);
    s.values = h_alloc_floats(s.count);
    size_t at = 0;
    for (uint32_t v = 1; v < m->g->var_count; v++) {
        if (!saved(m, v))
            continue;
        size_t n = (size_t)vkt_shape_numel(&m->g->vars[v].shape);
        cr_assert_eq(vkt_model_read(m, (vkt_var)v, s.values + at, n), VKT_OK);
        at += n;
    }
    return s;
}

static void snap_expect_equal(const snapshot *a, const snapshot *b, const char *what) {
    cr_assert_eq(a->count, b->count, "%s: %zu vs %zu values", what, a->count, b->count);
    for (size_t i = 0; i < a->count; i++)
        cr_assert(memcmp(&a->values[i], &b->values[i], sizeof(float)) == 0,
                  "%s: value %zu differs: %.9g vs %.9g", what, i, a->values[i], b->values[i]);
    cr_assert_eq(a->step, b->step, "%s: step %llu vs %llu", what, (unsigned long long)a->step,
                 (unsigned long long)b->step);
}

static uint64_t snap_hash(const snapshot *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    const unsigned char *p = (const unsigned char *)s->values;
    for (size_t i = 0; i < s->count * sizeof(float); i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* ---- Files ---- */

typedef struct tmpdir {
    char dir[64];
    char path[128]; /* dir/ckpt.safetensors */
} tmpdir;

static void tmpdir_make(tmpdir *t) {
    snprintf(t->dir, sizeof t->dir, "/tmp/vkt-ckpt-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/ckpt.safetensors", t->dir);
}

static int tmpdir_file_count(const tmpdir *t) {
    DIR *d = opendir(t->dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Removes the files whose names start with prefix; returns how many. */
static int tmpdir_remove_prefixed(const tmpdir *t, const char *prefix) {
    DIR *d = opendir(t->dir);
    cr_assert_not_null(d);
    int n = 0;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        n += remove(p) == 0;
    }
    closedir(d);
    return n;
}

static void tmpdir_remove(tmpdir *t) {
    DIR *d = opendir(t->dir);
    if (!d)
        return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(t->dir);
}

static unsigned char *file_read(const char *path, size_t *out_size) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *data = malloc((size_t)n + 1);
    cr_assert_not_null(data);
    cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *out_size = (size_t)n;
    return data;
}

static void file_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    cr_assert_eq(fclose(f), 0);
}

/* ---- Round trips ---- */

static void round_trip(vkt_context *ctx, vkt_optimizer_desc opt) {
    net n;
    net_build(ctx, &n, HID);
    vkt_model *a = net_model(&n, opt);
    for (uint64_t t = 0; t < 3; t++)
        train_step(a, &n, t);
    tmpdir d;
    tmpdir_make(&d);
    vkt_checkpoint_entry meta[] = {{"batcher", "seed=1 epoch=2 position=64"},
                                   {"optimizer", "adam"},
                                   {"quote\"and\\slash\n", "ünïcödé \t"}};
    vkt_result r = vkt_model_save(
        a, d.path, &(vkt_checkpoint_desc){.epoch = 2, .metadata = meta, .metadata_count = 3});
    cr_assert_eq(r, VKT_OK, "%s", vkt_model_last_error(a));
    cr_assert_eq(tmpdir_file_count(&d), 1, "the temporary file was left behind");

    vkt_model *b = net_model(&n, opt);
    snapshot sa = snap(a), fresh = snap(b);
    cr_assert(memcmp(sa.values, fresh.values, sa.count * sizeof(float)) != 0,
              "a fresh model should differ from a trained one");
    vkt_checkpoint_info info;
    r = vkt_model_load(b, d.path, &info);
    cr_assert_eq(r, VKT_OK, "%s", vkt_model_last_error(b));
    snapshot sb = snap(b);
    snap_expect_equal(&sa, &sb, "after load");
    cr_assert_eq(info.step, 3);
    cr_assert_eq(info.epoch, 2);
    cr_assert_eq(info.metadata_count, 6);
    cr_assert_eq(info.metadata_skipped, 0);
    cr_assert_str_eq(vkt_checkpoint_info_find(&info, "format"), "vktrain");
    cr_assert_str_eq(vkt_checkpoint_info_find(&info, "step"), "3");
    cr_assert_str_eq(vkt_checkpoint_info_find(&info, "batcher"), "seed=1 epoch=2 position=64");
    cr_assert_str_eq(vkt_checkpoint_info_find(&info, "quote\"and\\slash\n"), "ünïcödé \t");
    cr_assert_null(vkt_checkpoint_info_find(&info, "absent"));

    /* The file names every tensor as the graph does, F32, data 8-aligned. */
    size_t size;
    unsigned char *file = file_read(d.path, &size);
    st_header h;
    st_error err;
    cr_assert_eq(st_parse_memory(file, size, &h, &err), VKT_OK, "%s", err.message);
    cr_assert_eq(h.data_start % 8, 0);
    cr_assert_eq(info.tensor_count, h.tensor_count);
    uint32_t expected = 0;
    for (uint32_t v = 1; v < a->g->var_count; v++) {
        if (!saved(a, v))
            continue;
        expected++;
        const st_tensor *t = st_find(&h, a->g->vars[v].name);
        cr_assert_not_null(t, "'%s' is not in the file", a->g->vars[v].name);
        cr_assert_str_eq(t->dtype, "F32");
    }
    cr_assert_eq(h.tensor_count, expected);
    cr_assert_not_null(st_find(&h, "fc1.weight"));
    cr_assert_null(st_find(&h, "hyper"), "the per-step hyper buffer is not state");
    st_header_free(&h);
    free(file);

    free(sa.values);
    free(sb.values);
    free(fresh.values);
    vkt_model_destroy(a);
    vkt_model_destroy(b);
    vkt_graph_destroy(n.g);
    tmpdir_remove(&d);
}

static void round_trips(vkt_context *ctx) {
    round_trip(ctx, adam);
    round_trip(ctx, (vkt_optimizer_desc){.type = VKT_OPTIMIZER_ADAMW, .lr = 0.01f});
    round_trip(ctx,
               (vkt_optimizer_desc){.type = VKT_OPTIMIZER_SGD, .momentum = 0.9f, .nesterov = true});
}

Test(checkpoint, round_trip_is_bit_exact_cpu) {
    vkt_context *ctx = cpu();
    round_trips(ctx);
    h_finish(ctx);
}

Test(checkpoint, round_trip_is_bit_exact_vulkan, .timeout = 300) {
    vkt_context *ctx = vulkan();
    round_trips(ctx);
    h_finish(ctx);
}

/* ---- Resuming ---- */

static void resume_matches_straight_run(vkt_context *ctx) {
    net n;
    net_build(ctx, &n, HID);
    float straight[6], resumed[6];
    vkt_model *a = net_model(&n, adam);
    for (uint64_t t = 0; t < 6; t++)
        straight[t] = train_step(a, &n, t);

    tmpdir d;
    tmpdir_make(&d);
    vkt_model *b = net_model(&n, adam);
    for (uint64_t t = 0; t < 3; t++)
        resumed[t] = train_step(b, &n, t);
    cr_assert_eq(vkt_model_save(b, d.path, NULL), VKT_OK, "%s", vkt_model_last_error(b));
    vkt_model_destroy(b);

    vkt_model *c = net_model(&n, adam);
    cr_assert_eq(vkt_model_load(c, d.path, NULL), VKT_OK, "%s", vkt_model_last_error(c));
    cr_assert_eq(c->step, 3);
    for (uint64_t t = 3; t < 6; t++)
        resumed[t] = train_step(c, &n, t);
    for (int t = 0; t < 6; t++)
        cr_assert(memcmp(&straight[t], &resumed[t], sizeof(float)) == 0,
                  "step %d: loss %.9g straight, %.9g resumed", t + 1, straight[t], resumed[t]);
    snapshot sa = snap(a), sc = snap(c);
    snap_expect_equal(&sa, &sc, "after 6 steps");

    /* The step count is what makes it exact: the same tensors with the step
     * count forgotten continue differently. */
    vkt_model *e = net_model(&n, adam);
    cr_assert_eq(vkt_model_load(e, d.path, NULL), VKT_OK);
    e->step = 0;
    float wrong = train_step(e, &n, 3);
    cr_assert(memcmp(&wrong, &straight[3], sizeof(float)) != 0,
              "a forgotten step count should change the continuation");
    vkt_model_destroy(e);

    free(sa.values);
    free(sc.values);
    vkt_model_destroy(a);
    vkt_model_destroy(c);
    vkt_graph_destroy(n.g);
    tmpdir_remove(&d);
}

Test(checkpoint, resumed_training_matches_a_straight_run_cpu) {
    vkt_context *ctx = cpu();
    resume_matches_straight_run(ctx);
    h_finish(ctx);
}

Test(checkpoint, resumed_training_matches_a_straight_run_vulkan, .timeout = 300) {
    vkt_context *ctx = vulkan();
    resume_matches_straight_run(ctx);
    h_finish(ctx);
}

/* ---- Damaged files ---- */

/* Loads `path` into m, which must refuse it with `want` (and the byte
 * offset `offset` unless negative, and `needle` in the message unless NULL)
 * and leave every value and the step count as `before`. */
static void expect_refused(vkt_model *m, const snapshot *before, const char *path, vkt_result want,
                           long long offset, const char *needle, const char *what) {
    vkt_checkpoint_info info;
    memset(&info, 0xab, sizeof info);
    vkt_result r = vkt_model_load(m, path, &info);
    const char *msg = vkt_model_last_error(m);
    cr_assert_eq(r, want, "%s: %s, expected %s; message: %s", what, vkt_result_string(r),
                 vkt_result_string(want), msg);
    cr_assert(strstr(msg, path), "%s: the message does not name the file: %s", what, msg);
    if (want == VKT_ERROR_CORRUPT_DATA)
        cr_assert(strstr(msg, "byte offset"), "%s: no byte offset in: %s", what, msg);
    if (offset >= 0) {
        char at[48];
        snprintf(at, sizeof at, "byte offset %lld:", offset);
        cr_assert(strstr(msg, at), "%s: expected '%s' in: %s", what, at, msg);
    }
    if (needle)
        cr_assert(strstr(msg, needle), "%s: expected '%s' in: %s", what, needle, msg);
    unsigned char junk[sizeof info];
    memset(junk, 0xab, sizeof junk);
    cr_assert(memcmp(&info, junk, sizeof info) == 0, "%s: out_info written on failure", what);
    snapshot after = snap(m);
    snap_expect_equal(before, &after, what);
    free(after.values);
}

/* Cuts the file at every length: each is refused as truncated, naming the
 * length it was cut to. `stride` thins out the cuts inside the data. */
static void truncations(vkt_model *m, const snapshot *before, const tmpdir *d,
                        const unsigned char *file, size_t size, size_t data_start, size_t stride) {
    char path[160], what[64];
    snprintf(path, sizeof path, "%s/cut.safetensors", d->dir);
    for (size_t cut = 0; cut < size; cut += cut < data_start + 8 ? 1 : stride) {
        file_write(path, file, cut);
        snprintf(what, sizeof what, "cut at %zu of %zu", cut, size);
        expect_refused(m, before, path, VKT_ERROR_CORRUPT_DATA, (long long)cut, "truncated", what);
    }
}

/* Flips the top bit of every header byte. The header is ASCII, so each
 * flip makes the JSON invalid exactly there, and the error must say so. */
static void header_flips(vkt_model *m, const snapshot *before, const tmpdir *d,
                         const unsigned char *file, size_t size, size_t data_start) {
    char path[160], what[64];
    snprintf(path, sizeof path, "%s/flip.safetensors", d->dir);
    unsigned char *copy = malloc(size);
    cr_assert_not_null(copy);
    for (size_t i = 0; i < data_start; i++) {
        memcpy(copy, file, size);
        copy[i] ^= 0x80;
        file_write(path, copy, size);
        snprintf(what, sizeof what, "byte %zu flipped", i);
        /* a flipped length byte moves the header's end: any offset */
        expect_refused(m, before, path, VKT_ERROR_CORRUPT_DATA, i < 8 ? -1 : (long long)i, NULL,
                       what);
    }
    free(copy);
}

/* Replaces the first occurrence of `from` in the header by `to` (same
 * length, so the header length stays right) and writes the result. */
static void write_patched(const char *path, const unsigned char *file, size_t size,
                          size_t data_start, const char *from, const char *to) {
    size_t n = strlen(from);
    cr_assert_eq(strlen(to), n);
    unsigned char *copy = malloc(size);
    cr_assert_not_null(copy);
    memcpy(copy, file, size);
    bool done = false;
    for (size_t i = 8; !done && i + n <= data_start; i++)
        if (memcmp(copy + i, from, n) == 0) {
            memcpy(copy + i, to, n);
            done = true;
        }
    cr_assert(done, "'%s' is not in the header", from);
    file_write(path, copy, size);
    free(copy);
}

static void header_lengths(vkt_model *m, const snapshot *before, const tmpdir *d,
                           const unsigned char *file, size_t size) {
    char path[160];
    snprintf(path, sizeof path, "%s/length.safetensors", d->dir);
    const uint64_t lengths[] = {UINT64_MAX, 1ull << 63, ST_MAX_HEADER_SIZE + 1, size - 7, 0, 1};
    unsigned char *copy = malloc(size);
    cr_assert_not_null(copy);
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        memcpy(copy, file, size);
        st_put_u64le(copy, lengths[k]);
        file_write(path, copy, size);
        char what[64];
        snprintf(what, sizeof what, "header length %llu", (unsigned long long)lengths[k]);
        long long at = lengths[k] == size - 7 ? (long long)size : 0;
        expect_refused(m, before, path, VKT_ERROR_CORRUPT_DATA, at, NULL, what);
    }
    free(copy);
}

static void damaged_files(vkt_context *ctx, bool thorough) {
    net n;
    net_build(ctx, &n, HID);
    vkt_model *m = net_model(&n, adam);
    for (uint64_t t = 0; t < 2; t++)
        train_step(m, &n, t);
    tmpdir d;
    tmpdir_make(&d);
    cr_assert_eq(vkt_model_save(m, d.path, NULL), VKT_OK, "%s", vkt_model_last_error(m));
    /* m is then moved on, so a load that wrongly went through would show */
    train_step(m, &n, 2);
    snapshot before = snap(m);
    size_t size;
    unsigned char *file = file_read(d.path, &size);
    st_header h;
    st_error err;
    cr_assert_eq(st_parse_memory(file, size, &h, &err), VKT_OK);
    size_t data_start = (size_t)h.data_start;
    st_header_free(&h);

    truncations(m, &before, &d, file, size, data_start, thorough ? 5 : 97);
    if (thorough)
        header_flips(m, &before, &d, file, size, data_start);
    header_lengths(m, &before, &d, file, size);

    char path[160];
    snprintf(path, sizeof path, "%s/patched.safetensors", d.dir);
    write_patched(path, file, size, data_start, "\"F32\"", "\"I32\"");
    expect_refused(m, &before, path, VKT_ERROR_UNSUPPORTED, -1, "is I32", "dtype I32");
    write_patched(path, file, size, data_start, "\"F32\"", "\"F16\"");
    expect_refused(m, &before, path, VKT_ERROR_CORRUPT_DATA, -1, "F16", "dtype F16");
    write_patched(path, file, size, data_start, "\"F32\"", "\"Q32\"");
    expect_refused(m, &before, path, VKT_ERROR_UNSUPPORTED, -1, "Q32", "dtype Q32");
    write_patched(path, file, size, data_start, "\"shape\":[8,5]", "\"shape\":[5,8]");
    expect_refused(m, &before, path, VKT_ERROR_SHAPE, -1,
                   "'fc1.weight' has shape (5, 8) in the file but (8, 5) in the model",
                   "transposed shape");
    write_patched(path, file, size, data_start, "\"step\":\"2\"", "\"step\":\"x\"");
    expect_refused(m, &before, path, VKT_ERROR_CORRUPT_DATA, -1, "\"step\"", "bad step");
    write_patched(path, file, size, data_start, "\"step\":\"2\"", "\"step\": 2 ");
    expect_refused(m, &before, path, VKT_ERROR_CORRUPT_DATA, -1, "not a string", "numeric step");

    snprintf(path, sizeof path, "%s/missing.safetensors", d.dir);
    expect_refused(m, &before, path, VKT_ERROR_IO, -1, "No such file", "missing file");
    expect_refused(m, &before, d.dir, VKT_ERROR_IO, -1, "not a regular file", "a directory");

    free(file);
    free(before.values);
    vkt_model_destroy(m);
    vkt_graph_destroy(n.g);
    tmpdir_remove(&d);
}

Test(checkpoint, damaged_files_are_refused_and_change_nothing_cpu, .timeout = 300) {
    vkt_context *ctx = cpu();
    damaged_files(ctx, true);
    h_finish(ctx);
}

Test(checkpoint, damaged_files_are_refused_and_change_nothing_vulkan, .timeout = 300) {
    vkt_context *ctx = vulkan();
    damaged_files(ctx, false);
    h_finish(ctx);
}

/* ---- Hand-written files ----
 * A tiny model, fc (2, 3) + bias (2) with SGD momentum, whose files are
 * short enough to write out by hand: 64 data bytes in four tensors. */

/* The file texts read best laid out by hand. */
// clang-format off
#define T(name, dtype, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":[" shape "],\"data_offsets\":[" #b "," #e "]}"
#define W(b, e) T("fc.weight", "F32", "2,3", b, e)
#define BI(b, e) T("fc.bias", "F32", "2", b, e)
#define WM(b, e) T("fc.weight.momentum", "F32", "2,3", b, e)
#define BM(b, e) T("fc.bias.momentum", "F32", "2", b, e)
#define VALID W(0, 24) "," BI(24, 32) "," WM(32, 56) "," BM(56, 64)

typedef struct tiny {
    vkt_graph *g;
    vkt_model *m;
} tiny;

static void tiny_make(vkt_context *ctx, tiny *t) {
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 3}, &t->g), VKT_OK);
    vkt_var x = vkt_graph_input(t->g, "x", 2, (int64_t[]){1, 3});
    vkt_var y = vkt_graph_input(t->g, "t", 2, (int64_t[]){1, 2});
    vkt_var loss = vkt_graph_mse(t->g, vkt_graph_linear(t->g, x, 2, "fc"), y);
    cr_assert_eq(vkt_model_create(
                     t->g,
                     &(vkt_model_desc){.loss = loss,
                                       .optimizer = {.type = VKT_OPTIMIZER_SGD, .momentum = 0.9f}},
                     &t->m),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
}

static void tiny_free(tiny *t) {
    vkt_model_destroy(t->m);
    vkt_graph_destroy(t->g);
}

/* A file of the given header text and data_bytes of data (float i / 4). */
static void write_crafted(const char *path, const char *header, size_t data_bytes) {
    size_t n = strlen(header);
    unsigned char *file = calloc(8 + n + data_bytes + 4, 1);
    cr_assert_not_null(file);
    st_put_u64le(file, n);
    memcpy(file + 8, header, n);
    for (size_t i = 0; i < data_bytes / 4; i++) {
        float v = (float)i / 4;
        memcpy(file + 8 + n + 4 * i, &v, 4);
    }
    file_write(path, file, 8 + n + data_bytes);
    free(file);
}

typedef struct crafted {
    const char *what;
    const char *header;
    size_t data_bytes;
    vkt_result want;
    const char *needle; /* in the message */
} crafted;

static const crafted bad_files[] = {
    {"overlap", "{" W(0, 24) "," BI(20, 28) "," WM(28, 52) "," BM(52, 60) "}", 60,
     VKT_ERROR_CORRUPT_DATA, "they overlap"},
    {"gap", "{" W(0, 24) "," BI(28, 36) "," WM(36, 60) "," BM(60, 68) "}", 68,
     VKT_ERROR_CORRUPT_DATA, "a gap"},
    {"data cut short", "{" VALID "}", 63, VKT_ERROR_CORRUPT_DATA, "truncated"},
    {"bytes after the last tensor", "{" VALID "}", 68, VKT_ERROR_CORRUPT_DATA,
     "4 bytes after the end"},
    {"size against shape", "{" W(0, 20) "," BI(20, 28) "," WM(28, 52) "," BM(52, 60) "}", 60,
     VKT_ERROR_CORRUPT_DATA, "hold 20 bytes but F32 (2, 3) needs 24"},
    {"end before begin", "{" W(24, 0) "," BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}", 64,
     VKT_ERROR_CORRUPT_DATA, "end before they begin"},
    {"offset of 2^64 - 1",
     "{" W(0, 18446744073709551615) "," BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}", 64,
     VKT_ERROR_CORRUPT_DATA, "needs 24"},
    {"offset of 2^64",
     "{" W(0, 18446744073709551616) "," BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}", 64,
     VKT_ERROR_CORRUPT_DATA, "too large"},
    {"negative offset", "{" W(-1, 24) "," BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}", 64,
     VKT_ERROR_CORRUPT_DATA, "negative"},
    {"fractional offset", "{" W(0, 24.0) "," BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}", 64,
     VKT_ERROR_CORRUPT_DATA, "fraction"},
    {"three offsets",
     "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24,"
     "24]}," BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}",
     64, VKT_ERROR_CORRUPT_DATA, "']'"},
    {"shape overflow",
     "{" T("fc.weight", "F32", "4294967296,4294967296,4294967296", 0, 24) ","
     BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}",
     64, VKT_ERROR_CORRUPT_DATA, "overflows"},
    {"tensor twice", "{" W(0, 24) "," W(24, 48) "," BI(48, 56) "," WM(56, 80) "," BM(80, 88) "}",
     88, VKT_ERROR_CORRUPT_DATA, "appears twice"},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}," VALID "}", 64,
     VKT_ERROR_CORRUPT_DATA, "twice"},
    {"metadata key twice", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}," VALID "}", 64,
     VKT_ERROR_CORRUPT_DATA, "'a' appears twice"},
    {"metadata value a number", "{\"__metadata__\":{\"epoch\":3}," VALID "}", 64,
     VKT_ERROR_CORRUPT_DATA, "not a string"},
    {"step of 2^64", "{\"__metadata__\":{\"step\":\"18446744073709551616\"}," VALID "}", 64,
     VKT_ERROR_CORRUPT_DATA, "not a whole number"},
    {"step negative", "{\"__metadata__\":{\"step\":\"-1\"}," VALID "}", 64, VKT_ERROR_CORRUPT_DATA,
     "not a whole number"},
    {"no dtype",
     "{\"fc.weight\":{\"shape\":[2,3],\"data_offsets\":[0,24]},"
     BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}",
     64, VKT_ERROR_CORRUPT_DATA, "lacks \"dtype\""},
    {"unknown field",
     "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24],"
     "\"x\":1}," BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}",
     64, VKT_ERROR_CORRUPT_DATA, "unknown field 'x'"},
    {"trailing comma", "{" VALID ",}", 64, VKT_ERROR_CORRUPT_DATA, "expected a string"},
    {"not an object", "[" VALID "]", 64, VKT_ERROR_CORRUPT_DATA, "does not start with '{'"},
    {"unclosed object", "{" VALID "    ", 64, VKT_ERROR_CORRUPT_DATA, "expected '}'"},
    {"junk after the object", "{" VALID "} x", 64, VKT_ERROR_CORRUPT_DATA, "after the header"},
    {"invalid UTF-8 in a name",
     "{" W(0, 24) "," BI(24, 32) "," WM(32, 56) "," T("fc.bias.\xc3\x28", "F32", "2", 56, 64) "}",
     64, VKT_ERROR_CORRUPT_DATA, "UTF-8"},
    {"raw newline in a string", "{\"__metadata__\":{\"a\":\"x\ny\"}," VALID "}", 64,
     VKT_ERROR_CORRUPT_DATA, "control character"},
    {"lone surrogate", "{\"__metadata__\":{\"a\":\"\\udc00\"}," VALID "}", 64,
     VKT_ERROR_CORRUPT_DATA, "surrogate"},
    {"nine dimensions",
     "{" T("fc.weight", "F32", "1,1,1,1,1,1,1,2,3", 0, 24) ","
     BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}",
     64, VKT_ERROR_UNSUPPORTED, "more than 8"},
    {"a tensor missing", "{" W(0, 24) "," BI(24, 32) "," WM(32, 56) "}", 56, VKT_ERROR_SHAPE,
     "lacks the model's tensor 'fc.bias.momentum' (2)"},
    {"a tensor too many", "{" VALID "," T("extra", "F32", "1", 64, 68) "}", 68, VKT_ERROR_SHAPE,
     "tensor 'extra' is not a parameter or optimizer state"},
    {"a scalar for a vector",
     "{" W(0, 24) "," T("fc.bias", "F32", "", 24, 28) "," WM(28, 52) ","
     T("fc.bias.momentum", "F32", "2", 52, 60) "}",
     60, VKT_ERROR_SHAPE, "'fc.bias' has shape () in the file but (2) in the model"},
};

// clang-format on

Test(checkpoint, hand_written_damage_is_refused_with_its_offset) {
    vkt_context *ctx = cpu();
    tiny t;
    tiny_make(ctx, &t);
    snapshot before = snap(t.m);
    tmpdir d;
    tmpdir_make(&d);
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        const crafted *c = &bad_files[i];
        write_crafted(d.path, c->header, c->data_bytes);
        expect_refused(t.m, &before, d.path, c->want, -1, c->needle, c->what);
        /* the offset is inside the file and, past the length prefix, in the
         * header for anything but truncation and trailing bytes */
        const char *at = strstr(vkt_model_last_error(t.m), "byte offset ");
        if (at) {
            unsigned long long off = strtoull(at + 12, NULL, 10);
            cr_assert_leq(off, 8 + strlen(c->header) + c->data_bytes, "%s: offset %llu", c->what,
                          off);
        }
    }
    free(before.values);
    tiny_free(&t);
    tmpdir_remove(&d);
    h_finish(ctx);
}

/* Files other writers could produce: whitespace, escapes, padding, no
 * metadata at all (step and epoch then 0), tensors in any order. */
Test(checkpoint, hand_written_valid_files_load) {
    // clang-format off
    static const char *const good[] = {
        "{" VALID "}",
        "{ \"__metadata__\" : { \"step\" : \"12\" , \"note\" : \"\\u00e9\\ud83d\\ude00\" } ,\n\t"
        VALID "\r\n}        ",
        "{" BM(56, 64) "," WM(32, 56) "," BI(24, 32) "," W(0, 24) "}",
        "{\"fc\\u002eweight\":{\"shape\":[2,3],\"data_offsets\":[0,24],\"dtype\":\"F32\"},"
        BI(24, 32) "," WM(32, 56) "," BM(56, 64) "}",
    };
    // clang-format on
    vkt_context *ctx = cpu();
    tiny t;
    tiny_make(ctx, &t);
    tmpdir d;
    tmpdir_make(&d);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        write_crafted(d.path, good[i], 64);
        t.m->step = 99;
        vkt_checkpoint_info info;
        cr_assert_eq(vkt_model_load(t.m, d.path, &info), VKT_OK, "file %zu: %s", i,
                     vkt_model_last_error(t.m));
        cr_assert_eq(t.m->step, i == 1 ? 12 : 0, "file %zu", i);
        cr_assert_eq(info.tensor_count, 4);
        float w[6], bm[2];
        cr_assert_eq(vkt_model_read(t.m, vkt_graph_find(t.g, "fc.weight"), w, 6), VKT_OK);
        cr_assert_eq(vkt_model_read(t.m, vkt_graph_find(t.m->g, "fc.bias.momentum"), bm, 2),
                     VKT_OK);
        for (int k = 0; k < 6; k++)
            cr_assert_eq(w[k], (float)k / 4, "file %zu: fc.weight[%d] = %g", i, k, w[k]);
        cr_assert(bm[0] == 14.0f / 4 && bm[1] == 15.0f / 4, "file %zu", i);
        if (i == 1)
            cr_assert_str_eq(vkt_checkpoint_info_find(&info, "note"), "\xc3\xa9\xf0\x9f\x98\x80");
    }
    tiny_free(&t);
    tmpdir_remove(&d);
    h_finish(ctx);
}

/* ---- Files of another model ---- */

Test(checkpoint, another_models_file_is_refused_naming_both_shapes) {
    vkt_context *ctx = cpu();
    net wide, narrow;
    net_build(ctx, &wide, HID);
    net_build(ctx, &narrow, HID - 1);
    vkt_model *a = net_model(&wide, adam);
    vkt_model *b = net_model(&narrow, adam);
    vkt_model *sgd = net_model(&wide, (vkt_optimizer_desc){.type = VKT_OPTIMIZER_SGD});
    tmpdir d;
    tmpdir_make(&d);
    cr_assert_eq(vkt_model_save(a, d.path, NULL), VKT_OK);
    snapshot sb = snap(b), ssgd = snap(sgd);
    expect_refused(b, &sb, d.path, VKT_ERROR_SHAPE, -1,
                   "tensor 'fc1.weight' has shape (8, 5) in the file but (7, 5) in the model",
                   "narrower model");
    expect_refused(sgd, &ssgd, d.path, VKT_ERROR_SHAPE, -1, "momentum", "Adam file, SGD model");
    free(sb.values);
    free(ssgd.values);
    vkt_model_destroy(a);
    vkt_model_destroy(b);
    vkt_model_destroy(sgd);
    vkt_graph_destroy(wide.g);
    vkt_graph_destroy(narrow.g);
    tmpdir_remove(&d);
    h_finish(ctx);
}

/* ---- Saving: arguments and file system errors ---- */

Test(checkpoint, save_refuses_bad_arguments_and_reports_io_errors) {
    vkt_context *ctx = cpu();
    tiny t;
    tiny_make(ctx, &t);
    tmpdir d;
    tmpdir_make(&d);
    cr_assert_eq(vkt_model_save(NULL, d.path, NULL), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_model_save(t.m, NULL, NULL), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_model_load(NULL, d.path, NULL), VKT_ERROR_INVALID_ARGUMENT);
    char long_value[VKT_CHECKPOINT_VALUE_SIZE + 1];
    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    const struct {
        vkt_checkpoint_entry e[2];
        uint32_t count;
        const char *needle;
    } bad[] = {
        {{{"step", "1"}}, 1, "reserved"},
        {{{"a", "1"}, {"a", "2"}}, 2, "used twice"},
        {{{"", "1"}}, 1, "empty"},
        {{{"a", NULL}}, 1, "NULL"},
        {{{"a", long_value}}, 1, "longer"},
        {{{"a", "\xff"}}, 1, "UTF-8"},
        {{{"a", "1"}}, VKT_CHECKPOINT_MAX_METADATA, "at most"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vkt_result r = vkt_model_save(
            t.m, d.path,
            &(vkt_checkpoint_desc){.metadata = bad[i].e, .metadata_count = bad[i].count});
        cr_assert_eq(r, VKT_ERROR_INVALID_ARGUMENT, "case %zu", i);
        cr_assert(strstr(vkt_model_last_error(t.m), bad[i].needle), "case %zu: %s", i,
                  vkt_model_last_error(t.m));
    }
    cr_assert_eq(tmpdir_file_count(&d), 0);

    char path[200];
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", d.dir);
    cr_assert_eq(vkt_model_save(t.m, path, NULL), VKT_ERROR_IO);
    cr_assert(strstr(vkt_model_last_error(t.m), "No such file or directory"), "%s",
              vkt_model_last_error(t.m));
    cr_assert(strstr(vkt_model_last_error(t.m), path), "%s", vkt_model_last_error(t.m));
    /* renaming over a directory fails after the data is written: the
     * temporary file must not be left behind */
    snprintf(path, sizeof path, "%s/sub", d.dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(vkt_model_save(t.m, path, NULL), VKT_ERROR_IO);
    cr_assert(strstr(vkt_model_last_error(t.m), "renaming"), "%s", vkt_model_last_error(t.m));
    cr_assert_eq(tmpdir_file_count(&d), 1, "only the directory should remain");
    /* a relative path (the directory to sync is then ".") */
    char cwd[512];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(d.dir), 0);
    cr_assert_eq(vkt_model_save(t.m, "rel.safetensors", NULL), VKT_OK, "%s",
                 vkt_model_last_error(t.m));
    cr_assert_eq(vkt_model_load(t.m, "rel.safetensors", NULL), VKT_OK);
    cr_assert_eq(chdir(cwd), 0);
    tiny_free(&t);
    tmpdir_remove(&d);
    h_finish(ctx);
}

/* Names are cut at 63 bytes, so the optimizer states of a parameter with a
 * long name can end up with one name: such a model cannot be saved. */
Test(checkpoint, colliding_names_are_refused) {
    vkt_context *ctx = cpu();
    vkt_graph *g;
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){0}, &g), VKT_OK);
    char name[56];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){1, 3});
    vkt_var y = vkt_graph_input(g, "t", 2, (int64_t[]){1, 2});
    vkt_var loss = vkt_graph_mse(g, vkt_graph_linear(g, x, 2, name), y);
    vkt_model *m;
    cr_assert_eq(vkt_model_create(g, &(vkt_model_desc){.loss = loss}, &m), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    tmpdir d;
    tmpdir_make(&d);
    cr_assert_eq(vkt_model_save(m, d.path, NULL), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(vkt_model_last_error(m), "both named"), "%s", vkt_model_last_error(m));
    cr_assert_eq(vkt_model_load(m, d.path, NULL), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(tmpdir_file_count(&d), 0);
    vkt_model_destroy(m);
    vkt_graph_destroy(g);
    tmpdir_remove(&d);
    h_finish(ctx);
}

/* ---- Atomicity ----
 * A child process trains and saves over the checkpoint in a loop, each file
 * carrying a hash of its own tensors in the metadata; the parent kills it
 * with SIGKILL after a few milliseconds. Whatever moment the kill hit, the
 * file must load, and hold a consistent state: the tensors whose hash it
 * carries. CPU only: a Vulkan device does not survive fork. */

static void child_save_forever(vkt_model *m, const net *n, const char *path, uint64_t seed) {
    for (uint64_t t = seed;; t++) {
        float xs[B * IN], labels[B];
        h_random(xs, B * IN, t, -2, 2);
        for (int b = 0; b < B; b++)
            labels[b] = (float)((b + t) % OUT);
        vkt_feed feeds[2] = {{n->x, xs, B * IN}, {n->y, labels, B}};
        if (vkt_model_step(m, feeds, 2, NULL) != VKT_OK)
            _exit(2);
        snapshot s = {.step = m->step};
        /* the hash covers what the file will hold */
        size_t total = 0;
        for (uint32_t v = 1; v < m->g->var_count; v++)
            if (saved(m, v))
                total += (size_t)vkt_shape_numel(&m->g->vars[v].shape);
        float *values = malloc(total * sizeof *values);
        if (!values)
            _exit(3);
        size_t at = 0;
        for (uint32_t v = 1; v < m->g->var_count; v++) {
            if (!saved(m, v))
                continue;
            size_t k = (size_t)vkt_shape_numel(&m->g->vars[v].shape);
            if (vkt_model_read(m, (vkt_var)v, values + at, k) != VKT_OK)
                _exit(4);
            at += k;
        }
        s.values = values;
        s.count = total;
        char hash[32];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)snap_hash(&s));
        free(values);
        vkt_checkpoint_entry e = {"hash", hash};
        if (vkt_model_save(m, path, &(vkt_checkpoint_desc){.metadata = &e, .metadata_count = 1}) !=
            VKT_OK)
            _exit(5);
    }
}

Test(checkpoint, a_save_killed_at_any_moment_leaves_a_loadable_file, .timeout = 300) {
    vkt_context *ctx = cpu();
    net n;
    net_build(ctx, &n, HID);
    vkt_model *m = net_model(&n, adam);
    vkt_model *reader = net_model(&n, adam);
    train_step(m, &n, 0);
    tmpdir d;
    tmpdir_make(&d);
    snapshot s0 = snap(m);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)snap_hash(&s0));
    free(s0.values);
    vkt_checkpoint_entry e = {"hash", hash};
    cr_assert_eq(
        vkt_model_save(m, d.path, &(vkt_checkpoint_desc){.metadata = &e, .metadata_count = 1}),
        VKT_OK);
    int replaced = 0, interrupted = 0, kills = 24, k_done = 0;
    /* on a slow disk no save may finish in the first delays: go on with
     * longer ones until some child has replaced the file */
    for (int k = 0; k < kills || (replaced == 0 && k < 64); k++) {
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0)
            child_save_forever(m, &n, d.path, 1000 * (uint64_t)(k + 1));
        /* from 0.3 ms (mostly before the first save ends) to ~20 ms, then
         * 20 ms more each time */
        long ns = 300000L + 800000L * k + (k >= kills ? 20000000L * (k - kills + 1) : 0);
        struct timespec delay = {ns / 1000000000L, ns % 1000000000L};
        nanosleep(&delay, NULL);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "the child ended by itself (status %d)", status);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "ckpt.safetensors.tmp-%ld-", (long)pid);
        interrupted += tmpdir_remove_prefixed(&d, prefix); /* a killed writer's leftover */

        vkt_checkpoint_info info;
        cr_assert_eq(vkt_model_load(reader, d.path, &info), VKT_OK, "after kill %d: %s", k,
                     vkt_model_last_error(reader));
        snapshot s = snap(reader);
        char got[32];
        snprintf(got, sizeof got, "%016llx", (unsigned long long)snap_hash(&s));
        free(s.values);
        cr_assert_str_eq(got, vkt_checkpoint_info_find(&info, "hash"),
                         "after kill %d: the tensors do not match the file's own hash", k);
        replaced += info.step > 1;
        k_done++;
    }
    cr_log_info("of %d killed writers, %d had replaced the checkpoint, %d died mid-save", k_done,
                replaced, interrupted);
    cr_assert_gt(replaced, 0, "no child ever finished a save: the test proved nothing");
    cr_assert_eq(tmpdir_file_count(&d), 1);
    vkt_model_destroy(m);
    vkt_model_destroy(reader);
    vkt_graph_destroy(n.g);
    tmpdir_remove(&d);
    h_finish(ctx);
}

/* ---- Read by another program ---- */

/* tools/read_checkpoint.py, found from this file's path as compiled. */
static bool find_reader(char *out, size_t size) {
    const char *candidates[] = {"%.*s/../tools/read_checkpoint.py", "tools/read_checkpoint.py",
                                "../tools/read_checkpoint.py"};
    const char *slash = strrchr(__FILE__, '/');
    int dir_len = slash ? (int)(slash - __FILE__) : 1;
    const char *dir = slash ? __FILE__ : ".";
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (i == 0)
            snprintf(out, size, candidates[0], dir_len, dir);
        else
            snprintf(out, size, "%s", candidates[i]);
        if (access(out, R_OK) == 0)
            return true;
    }
    return false;
}

/* The first of these with numpy: PATH's python3 may be a separate install
 * (pyenv, venv) without the distribution's python3-numpy. */
static const char *find_python(void) {
    static const char *const pythons[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof pythons / sizeof pythons[0]; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "%s -c 'import numpy' >/dev/null 2>&1", pythons[i]);
        if (system(cmd) == 0)
            return pythons[i];
    }
    return NULL;
}

Test(checkpoint, python_reads_the_file) {
    const char *python = find_python();
    if (!python)
        cr_skip_test("no python3 with numpy is installed");
    char script[512];
    cr_assert(find_reader(script, sizeof script), "tools/read_checkpoint.py not found");
    vkt_context *ctx = cpu();
    net n;
    net_build(ctx, &n, HID);
    vkt_model *m = net_model(&n, adam);
    train_step(m, &n, 0);
    tmpdir d;
    tmpdir_make(&d);
    vkt_checkpoint_entry e = {"batcher", "epoch=1 position=32"};
    cr_assert_eq(
        vkt_model_save(m, d.path,
                       &(vkt_checkpoint_desc){.epoch = 1, .metadata = &e, .metadata_count = 1}),
        VKT_OK);
    char out[200], cmd[1024];
    snprintf(out, sizeof out, "%s/out.txt", d.dir);
    snprintf(cmd, sizeof cmd, "%s '%s' '%s' > '%s' 2>&1", python, script, d.path, out);
    int status = system(cmd);
    size_t size;
    unsigned char *text = file_read(out, &size);
    text[size] = '\0';
    cr_assert_eq(status, 0, "%s failed:\n%s", cmd, (char *)text);
    /* every tensor with its shape and the CRC-32 of its bytes */
    for (uint32_t v = 1; v < m->g->var_count; v++) {
        if (!saved(m, v))
            continue;
        const graph_var *gv = &m->g->vars[v];
        size_t count = (size_t)vkt_shape_numel(&gv->shape);
        float *values = h_alloc_floats(count);
        cr_assert_eq(vkt_model_read(m, (vkt_var)v, values, count), VKT_OK);
        uLong crc = crc32(0, (const Bytef *)values, (uInt)(count * sizeof(float)));
        free(values);
        char line[200], dims[64] = "[";
        for (int32_t k = 0; k < gv->shape.ndim; k++)
            snprintf(dims + strlen(dims), sizeof dims - strlen(dims), k ? ", %lld" : "%lld",
                     (long long)gv->shape.dims[k]);
        snprintf(line, sizeof line, "%s F32 %s] crc32=%08lx ", gv->name, dims, (unsigned long)crc);
        cr_assert(strstr((char *)text, line), "'%s' not in:\n%s", line, (char *)text);
    }
    cr_assert(strstr((char *)text, "meta format=vktrain\n"), "%s", (char *)text);
    cr_assert(strstr((char *)text, "meta step=1\n"), "%s", (char *)text);
    cr_assert(strstr((char *)text, "meta batcher=epoch=1 position=32\n"), "%s", (char *)text);
    free(text);
    vkt_model_destroy(m);
    vkt_graph_destroy(n.g);
    tmpdir_remove(&d);
    h_finish(ctx);
}
