/* test_faults.c: injected Vulkan failures (runtime/vulkan/vk_fault.h).
 *
 * For every fault kind (device creation, memory allocation, pipeline and
 * shader-module creation, queue submission), every result (out of device
 * memory, device lost) and every call N = 1..K that an operation makes, the
 * Nth call fails and the test checks that
 *   - the API call returns the matching vkt_result with a message,
 *   - nothing is left behind: device memory in use is back to what it was,
 *     the validation layer (which reports undestroyed Vulkan objects) stays
 *     silent, and, in the sanitizer build, LeakSanitizer finds no leak;
 *   - after out-of-memory the context still works: the same operation then
 *     succeeds and a fresh model trains;
 *   - after device-lost every later call that would submit fails at once
 *     with VKT_ERROR_DEVICE_LOST, submits nothing, and the context can still
 *     be destroyed.
 * K is counted first by running the operation with the kind armed to count
 * only, so the sweep follows the code as it changes. (The sanitizer build
 * samples the longer sweeps: see sweep.)
 *
 * The suite non_finite at the end covers the other kind of failure a long
 * run meets: a NaN or Inf loss, and check mode naming where it began. */
#include "harness.h"

#include "../runtime/vulkan/vk_fault.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

enum { B = 8, IN = 4, HID = 8, OUT = 3 };

static const VkResult results[2] = {VK_ERROR_OUT_OF_DEVICE_MEMORY, VK_ERROR_DEVICE_LOST};

static vkt_result expected_result(VkResult vr) {
    return vr == VK_ERROR_DEVICE_LOST ? VKT_ERROR_DEVICE_LOST : VKT_ERROR_OUT_OF_DEVICE_MEMORY;
}

static const char *kind_name(vk_fault_kind kind) {
    static const char *const names[VK_FAULT_KIND_COUNT] = {"device", "allocation", "pipeline",
                                                            "submit"};
    return names[kind];
}

/* Only validation-layer messages are worth printing: the injected failures
 * log an error each, by design. */
static void quiet_log(vkt_log_level level, const char *message, void *user) {
    (void)user;
    if (level >= VKT_LOG_WARNING && strncmp(message, "validation:", 11) == 0)
        fprintf(stderr, "vktrain: %s\n", message);
}

static vkt_result context_create(vkt_context **out_ctx) {
    return vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN,
                                                  .validation = true, .log = quiet_log},
                              out_ctx);
}

static vkt_context *context(void) {
    vkt_context *ctx = NULL;
    cr_assert_eq(context_create(&ctx), VKT_OK, "%s", vkt_last_error());
    return ctx;
}

static vkt_context_info info_of(const vkt_context *ctx) {
    vkt_context_info info;
    cr_assert_eq(vkt_context_query(ctx, &info), VKT_OK);
    return info;
}

/* ---- What the operations under test work on -------------------------------- */

typedef struct fx {
    vkt_context *ctx;
    vkt_tensor *t[4];
    vkt_graph *g;
    vkt_model *m;
    vkt_var x, y, loss;
    float xs[B * IN], labels[B];
    unsigned char *saved; /* the checkpoint file's bytes before the fault */
    size_t saved_size;
} fx;

static void make_data(fx *f) {
    h_random(f->xs, B * IN, 7, -1, 1);
    /* Learnable labels: which third of [-1, 1] the first two features' sum falls in. */
    for (int b = 0; b < B; b++) {
        float s = f->xs[b * IN] + f->xs[b * IN + 1];
        f->labels[b] = s < -0.4f ? 0.0f : s < 0.4f ? 1.0f : 2.0f;
    }
}

static char checkpoint_dir[64], checkpoint_file[96];

static void release(fx *f) {
    if (f->saved) {
        remove(checkpoint_file);
        rmdir(checkpoint_dir);
        free(f->saved);
        f->saved = NULL;
    }
    vkt_model_destroy(f->m);
    vkt_graph_destroy(f->g);
    for (int i = 0; i < 4; i++)
        vkt_tensor_destroy(f->t[i]);
    f->m = NULL;
    f->g = NULL;
    memset(f->t, 0, sizeof f->t);
}

static vkt_result tensor_new(fx *f, int i, int64_t rows, int64_t cols, const char *name) {
    return vkt_tensor_create(f->ctx, &(vkt_tensor_desc){.ndim = 2, .dims = {rows, cols},
                                                        .name = name},
                             &f->t[i]);
}

/* Tensors: a new block, the staging buffer, an upload and a download. */
static vkt_result op_tensors(fx *f) {
    float in[64], out[64];
    h_random(in, 64, 3, -1, 1);
    vkt_result r = tensor_new(f, 0, 16, 4, "a");
    if (r == VKT_OK)
        r = tensor_new(f, 1, 4, 16, "b");
    if (r == VKT_OK)
        r = vkt_tensor_upload(f->t[0], in, 64);
    if (r == VKT_OK)
        r = vkt_tensor_upload(f->t[1], in, 64);
    if (r == VKT_OK)
        r = vkt_tensor_download(f->t[0], out, 64);
    if (r == VKT_OK)
        cr_assert(memcmp(in, out, sizeof in) == 0, "the round trip changed the data");
    return r;
}

static void setup_eager(fx *f) {
    cr_assert_eq(op_tensors(f), VKT_OK, "%s", vkt_context_last_error(f->ctx));
    cr_assert_eq(tensor_new(f, 2, 16, 16, "c"), VKT_OK);
    cr_assert_eq(tensor_new(f, 3, 16, 16, "d"), VKT_OK);
}

/* Eager kernels: first uses, so each makes its pipeline, and a download. */
static vkt_result op_eager(fx *f) {
    vkt_result r = vkt_matmul(f->ctx, f->t[2], f->t[0], f->t[1], &(vkt_matmul_desc){0});
    if (r == VKT_OK)
        r = vkt_relu(f->ctx, f->t[3], f->t[2]);
    if (r == VKT_OK)
        r = vkt_add(f->ctx, f->t[3], f->t[3], f->t[2]);
    if (r == VKT_OK)
        r = vkt_fill(f->ctx, f->t[2], 0.5f);
    float out[256];
    if (r == VKT_OK)
        r = vkt_tensor_download(f->t[3], out, 256);
    return r;
}

/* A small MLP graph and its model: memory placement, initial values
 * (uploads), pipelines and the recorded programs. */
static vkt_result op_model_create(fx *f) {
    vkt_result r = vkt_graph_create(f->ctx, &(vkt_graph_desc){.seed = 5}, &f->g);
    if (r != VKT_OK)
        return r;
    f->x = vkt_graph_input(f->g, "x", 2, (int64_t[]){B, IN});
    f->y = vkt_graph_input(f->g, "y", 1, (int64_t[]){B});
    vkt_var h = vkt_graph_relu(f->g, vkt_graph_linear(f->g, f->x, HID, "fc1"));
    f->loss = vkt_graph_softmax_cross_entropy(f->g, vkt_graph_linear(f->g, h, OUT, "fc2"), f->y);
    cr_assert_eq(vkt_graph_status(f->g), VKT_OK, "%s", vkt_graph_last_error(f->g));
    return vkt_model_create(f->g,
                            &(vkt_model_desc){.loss = f->loss, .optimizer = {.lr = 0.05f}},
                            &f->m);
}

static void setup_model(fx *f) {
    make_data(f);
    cr_assert_eq(op_model_create(f), VKT_OK, "%s", vkt_context_last_error(f->ctx));
}

/* Training steps and an evaluation of an existing model: replays only. */
static vkt_result op_steps(fx *f) {
    vkt_feed feeds[2] = {{f->x, f->xs, B * IN}, {f->y, f->labels, B}};
    vkt_result r = VKT_OK;
    for (int i = 0; i < 3 && r == VKT_OK; i++)
        r = vkt_model_step(f->m, feeds, 2, NULL);
    float loss;
    if (r == VKT_OK)
        r = vkt_model_evaluate(f->m, feeds, 2, &loss);
    return r;
}

/* A checkpoint of the model, saved before any fault. */
static void setup_checkpoint(fx *f) {
    setup_model(f);
    snprintf(checkpoint_dir, sizeof checkpoint_dir, "/tmp/vkt-test-faults-%d", (int)getpid());
    snprintf(checkpoint_file, sizeof checkpoint_file, "%s/run.safetensors", checkpoint_dir);
    cr_assert(mkdir(checkpoint_dir, 0700) == 0 || errno == EEXIST, "%s", checkpoint_dir);
    cr_assert_eq(vkt_model_save(f->m, checkpoint_file, NULL), VKT_OK, "%s",
                 vkt_context_last_error(f->ctx));
    FILE *file = fopen(checkpoint_file, "rb");
    cr_assert_not_null(file);
    fseek(file, 0, SEEK_END);
    f->saved_size = (size_t)ftell(file);
    rewind(file);
    f->saved = malloc(f->saved_size);
    cr_assert(f->saved && fread(f->saved, 1, f->saved_size, file) == f->saved_size);
    fclose(file);
}

/* Saving again reads every parameter back from the device. */
static vkt_result op_save(fx *f) { return vkt_model_save(f->m, checkpoint_file, NULL); }

/* Loading writes every parameter and optimizer state to the device. */
static vkt_result op_load(fx *f) { return vkt_model_load(f->m, checkpoint_file, NULL); }

/* A failed save leaves the last good checkpoint as it was, and no
 * temporary file beside it. */
static void checkpoint_intact(fx *f) {
    FILE *file = fopen(checkpoint_file, "rb");
    cr_assert_not_null(file, "the checkpoint is gone");
    unsigned char *now = malloc(f->saved_size + 1);
    cr_assert_not_null(now);
    size_t got = fread(now, 1, f->saved_size + 1, file);
    fclose(file);
    cr_assert(got == f->saved_size && memcmp(now, f->saved, got) == 0,
              "the checkpoint changed (%zu bytes, was %zu)", got, f->saved_size);
    free(now);
    DIR *dir = opendir(checkpoint_dir);
    cr_assert_not_null(dir);
    int files = 0;
    for (struct dirent *e = readdir(dir); e; e = readdir(dir))
        files += e->d_name[0] != '.';
    closedir(dir);
    cr_assert_eq(files, 1, "a temporary file was left beside the checkpoint");
}

typedef struct scenario {
    const char *name;
    void (*setup)(fx *f); /* unarmed, must succeed */
    vkt_result (*run)(fx *f);
    void (*undo)(fx *f);   /* frees what run made (also after a failure) */
    void (*verify)(fx *f); /* optional: more promises after a failure */
} scenario;

static void undo_tensors(fx *f) {
    vkt_tensor_destroy(f->t[0]);
    vkt_tensor_destroy(f->t[1]);
    f->t[0] = f->t[1] = NULL;
}

static void undo_model(fx *f) {
    vkt_model_destroy(f->m);
    vkt_graph_destroy(f->g);
    f->m = NULL;
    f->g = NULL;
}

static void undo_nothing(fx *f) { (void)f; }

static void setup_model_data(fx *f) { make_data(f); }

static const scenario tensors = {.name = "tensors", .run = op_tensors, .undo = undo_tensors};
static const scenario eager = {.name = "eager kernels", .setup = setup_eager, .run = op_eager,
                               .undo = undo_nothing};
static const scenario model_create = {.name = "model creation", .setup = setup_model_data,
                                      .run = op_model_create, .undo = undo_model};
static const scenario steps = {.name = "model steps", .setup = setup_model, .run = op_steps,
                               .undo = undo_nothing};
static const scenario save = {.name = "checkpoint save", .setup = setup_checkpoint,
                              .run = op_save, .undo = undo_nothing, .verify = checkpoint_intact};
/* Check mode: every node run alone, its inputs and outputs downloaded, and
 * run again on a CPU context of its own. */
static vkt_result op_check(fx *f) {
    vkt_feed feeds[2] = {{f->x, f->xs, B * IN}, {f->y, f->labels, B}};
    vkt_check_report report;
    return vkt_model_check(f->m, feeds, 2, &report);
}

static const scenario check = {.name = "check mode", .setup = setup_model, .run = op_check,
                               .undo = undo_nothing};
static const scenario load = {.name = "checkpoint load", .setup = setup_checkpoint,
                              .run = op_load, .undo = undo_nothing};

/* ---- After the fault ----------------------------------------------------------- */

/* A fresh model on the context learns: the loss falls over 30 steps. */
static void trains(vkt_context *ctx) {
    fx f = {.ctx = ctx};
    setup_model(&f);
    vkt_feed feeds[2] = {{f.x, f.xs, B * IN}, {f.y, f.labels, B}};
    float first = 0.0f, last = 0.0f;
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(vkt_model_step(f.m, feeds, 2, &last), VKT_OK, "step %d: %s", i,
                     vkt_context_last_error(ctx));
        if (i == 0)
            first = last;
    }
    cr_assert(isfinite(last) && last < 0.8f * first, "loss %g -> %g: not training", first, last);
    release(&f);
}

/* Everything that would submit now fails at once with DEVICE_LOST and
 * submits nothing. */
static void fails_fast(fx *f) {
    vkt_context *ctx = f->ctx;
    uint64_t submits = info_of(ctx).submits;
    vkt_tensor *t = NULL;
    float data[16] = {0};
    /* A tensor may still be made (it submits nothing); using it may not. */
    vkt_result r = vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 1, .dims = {16}}, &t);
    if (r == VKT_OK) {
        cr_assert_eq(vkt_tensor_upload(t, data, 16), VKT_ERROR_DEVICE_LOST);
        cr_assert(strstr(vkt_context_last_error(ctx), "lost"), "%s",
                  vkt_context_last_error(ctx));
        cr_assert_eq(vkt_tensor_download(t, data, 16), VKT_ERROR_DEVICE_LOST);
        cr_assert_eq(vkt_fill(ctx, t, 1.0f), VKT_ERROR_DEVICE_LOST);
        vkt_tensor_destroy(t);
    } else {
        cr_assert_eq(r, VKT_ERROR_DEVICE_LOST, "%s", vkt_context_last_error(ctx));
    }
    if (f->m) {
        vkt_feed feeds[2] = {{f->x, f->xs, B * IN}, {f->y, f->labels, B}};
        cr_assert_eq(vkt_model_step(f->m, feeds, 2, NULL), VKT_ERROR_DEVICE_LOST);
        cr_assert_eq(vkt_model_evaluate(f->m, feeds, 2, NULL), VKT_ERROR_DEVICE_LOST);
        /* Saving reads the weights back: it fails and writes nothing. */
        char path[96];
        snprintf(path, sizeof path, "/tmp/vkt-test-faults-lost-%d.safetensors", (int)getpid());
        cr_assert_eq(vkt_model_save(f->m, path, NULL), VKT_ERROR_DEVICE_LOST);
        cr_assert_neq(access(path, F_OK), 0, "a checkpoint was written from a lost device");
    }
    fx other = {.ctx = ctx};
    make_data(&other);
    cr_assert_eq(op_model_create(&other), VKT_ERROR_DEVICE_LOST, "%s",
                 vkt_context_last_error(ctx));
    undo_model(&other);
    cr_assert_eq(info_of(ctx).submits, submits, "a lost device was submitted to");
}

/* ---- The sweep ------------------------------------------------------------------- */

static uint64_t faults_run;

static void finish(vkt_context *ctx) {
    uint64_t messages = vkt_context_validation_messages(ctx);
    vkt_context_destroy(ctx);
    cr_assert_eq(messages, 0, "%llu validation message(s), see stderr",
                 (unsigned long long)messages);
}

/* How many calls of `kind` the scenario makes on a fresh context. */
static uint64_t count_calls(const scenario *s, vk_fault_kind kind) {
    fx f = {.ctx = context()};
    if (s->setup)
        s->setup(&f);
    vk_fault_arm(kind, 0, VK_SUCCESS);
    vkt_result r = s->run(&f);
    uint64_t calls = vk_fault_calls(kind);
    vk_fault_disarm();
    cr_assert_eq(r, VKT_OK, "%s: %s", s->name, vkt_context_last_error(f.ctx));
    s->undo(&f);
    release(&f);
    finish(f.ctx);
    return calls;
}

static void one_fault(const scenario *s, vk_fault_kind kind, VkResult vr, uint64_t n) {
    fx f = {.ctx = context()};
    if (s->setup)
        s->setup(&f);
    uint64_t in_use = info_of(f.ctx).bytes_in_use;
    uint64_t injected = vk_fault_injected();
    vk_fault_arm(kind, n, vr);
    vkt_result r = s->run(&f);
    vk_fault_disarm();
    const char *msg = vkt_context_last_error(f.ctx);
    cr_assert_eq(vk_fault_injected() - injected, 1, "%s: %s call %llu was not reached", s->name,
                 kind_name(kind), (unsigned long long)n);
    cr_assert_eq(r, expected_result(vr), "%s, %s call %llu failing with %d: got %s (%s)",
                 s->name, kind_name(kind), (unsigned long long)n, (int)vr, vkt_result_string(r),
                 msg);
    cr_assert(msg[0] != '\0', "%s: no message", s->name);
    faults_run++;
    if (s->verify)
        s->verify(&f);
    s->undo(&f);
    cr_assert_eq(info_of(f.ctx).bytes_in_use, in_use,
                 "%s, %s call %llu: device memory still in use after the failure", s->name,
                 kind_name(kind), (unsigned long long)n);
    if (vr == VK_ERROR_DEVICE_LOST) {
        fails_fast(&f);
    } else {
        cr_assert_eq(s->run(&f), VKT_OK, "%s again after the fault: %s", s->name,
                     vkt_context_last_error(f.ctx));
        s->undo(&f);
        /* The recovery check trains a model; once per scenario and kind is
         * enough to show the context is whole, the rest only repeat it. */
        if (n == 1)
            trains(f.ctx);
    }
    release(&f);
    finish(f.ctx);
}

/* Fails call N for N = 1..K, or, where K is larger than a `samples` that
 * is not 0, for at most that many N evenly spread over 1..K, the first and
 * the last included. */
static void sweep_some(const scenario *s, vk_fault_kind kind, uint64_t min_calls,
                       uint64_t samples) {
    uint64_t k = count_calls(s, kind);
    cr_assert_geq(k, min_calls, "%s makes %llu %s call(s), expected at least %llu", s->name,
                  (unsigned long long)k, kind_name(kind), (unsigned long long)min_calls);
    uint64_t stride = samples > 1 && k > samples ? (k - 1 + samples - 2) / (samples - 1) : 1;
    for (int i = 0; i < 2; i++) {
        for (uint64_t n = 1; n <= k; n += stride)
            one_fault(s, kind, results[i], n);
        if ((k - 1) % stride != 0)
            one_fault(s, kind, results[i], k);
    }
    cr_log_info("%s, %s: %llu call(s), %llu fault(s) injected", s->name, kind_name(kind),
                (unsigned long long)k, (unsigned long long)faults_run);
}

/* Every call, except in the sanitizer build, which runs about three times
 * slower: there a sample of 8 (the first and last included) of each longer
 * sweep looks for leaks on the error paths. */
static void sweep(const scenario *s, vk_fault_kind kind, uint64_t min_calls) {
    sweep_some(s, kind, min_calls, SANITIZED ? 8 : 0);
}

/* ---- Context creation ------------------------------------------------------------- */

Test(faults, context_creation, .timeout = 120) {
    /* Only vkCreateDevice among the hooked calls happens here. */
    for (int i = 0; i < 2; i++) {
        vk_fault_arm(VK_FAULT_DEVICE, 1, results[i]);
        vkt_context *ctx = NULL;
        vkt_result r = context_create(&ctx);
        vk_fault_disarm();
        cr_assert_eq(r, expected_result(results[i]), "%s", vkt_last_error());
        cr_assert_null(ctx);
        cr_assert(strstr(vkt_last_error(), "vkCreateDevice"), "%s", vkt_last_error());
        ctx = context(); /* and the next one works */
        finish(ctx);
    }
    for (int k = VK_FAULT_ALLOCATION; k < VK_FAULT_KIND_COUNT; k++) {
        vk_fault_arm((vk_fault_kind)k, 0, VK_SUCCESS);
        vkt_context *ctx = context();
        uint64_t calls = vk_fault_calls((vk_fault_kind)k);
        vk_fault_disarm();
        cr_assert_eq(calls, 0, "context creation made %llu %s call(s)",
                     (unsigned long long)calls, kind_name((vk_fault_kind)k));
        finish(ctx);
    }
}

/* An armed fault waits for its call: an allocation fault armed before the
 * context exists hits the first tensor's block, not the context. */
Test(faults, armed_before_creation_hits_the_first_allocation, .timeout = 120) {
    vk_fault_arm(VK_FAULT_ALLOCATION, 1, VK_ERROR_OUT_OF_DEVICE_MEMORY);
    vkt_context *ctx = context();
    vkt_tensor *t = NULL;
    vkt_result r = vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 1, .dims = {4}}, &t);
    vk_fault_disarm();
    cr_assert_eq(r, VKT_ERROR_OUT_OF_DEVICE_MEMORY);
    cr_assert_null(t);
    cr_assert(strstr(vkt_context_last_error(ctx), "vkAllocateMemory"), "%s",
              vkt_context_last_error(ctx));
    cr_assert_eq(vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 1, .dims = {4}}, &t), VKT_OK);
    vkt_tensor_destroy(t);
    finish(ctx);
}

/* ---- Every call of every operation -------------------------------------------------- */

Test(faults, tensors_allocation, .timeout = 300) { sweep(&tensors, VK_FAULT_ALLOCATION, 2); }
Test(faults, tensors_submit, .timeout = 300) { sweep(&tensors, VK_FAULT_SUBMIT, 3); }

Test(faults, eager_pipeline, .timeout = 300) { sweep(&eager, VK_FAULT_PIPELINE, 4); }
Test(faults, eager_submit, .timeout = 300) { sweep(&eager, VK_FAULT_SUBMIT, 4); }

Test(faults, model_create_allocation, .timeout = 600) {
    sweep(&model_create, VK_FAULT_ALLOCATION, 2);
}
Test(faults, model_create_pipeline, .timeout = 600) {
    sweep(&model_create, VK_FAULT_PIPELINE, 4);
}
Test(faults, model_create_submit, .timeout = 600) { sweep(&model_create, VK_FAULT_SUBMIT, 1); }

Test(faults, steps_submit, .timeout = 300) { sweep(&steps, VK_FAULT_SUBMIT, 4); }

/* Check mode submits several times per node: a sample of its calls. */
Test(faults, check_mode_submit, .timeout = 300) { sweep_some(&check, VK_FAULT_SUBMIT, 20, 6); }

Test(faults, checkpoint_save_submit, .timeout = 300) { sweep(&save, VK_FAULT_SUBMIT, 4); }
Test(faults, checkpoint_load_submit, .timeout = 300) { sweep(&load, VK_FAULT_SUBMIT, 4); }

/* Recorded once, replayed: steps allocate nothing and make no pipelines, so
 * those faults cannot reach them. */
Test(faults, steps_allocate_nothing_and_compile_nothing, .timeout = 120) {
    cr_assert_eq(count_calls(&steps, VK_FAULT_ALLOCATION), 0);
    cr_assert_eq(count_calls(&steps, VK_FAULT_PIPELINE), 0);
}

/* ---- The environment variable -------------------------------------------------------- */

/* VKT_TEST_FAULT is read once per process, at the first hook, so this runs
 * in a process of its own (Criterion forks one per test). */
Test(faults, environment_variable_arms_a_fault, .timeout = 120) {
    setenv("VKT_TEST_FAULT", "submit:2:lost,bogus:1:oom,alloc:x:oom", 1);
    vkt_context *ctx = context();
    vkt_tensor *t = NULL;
    cr_assert_eq(vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 1, .dims = {4}}, &t), VKT_OK,
                 "malformed entries arm nothing");
    float data[4] = {1, 2, 3, 4};
    cr_assert_eq(vkt_tensor_upload(t, data, 4), VKT_OK);
    cr_assert_eq(vkt_tensor_download(t, data, 4), VKT_ERROR_DEVICE_LOST, "%s",
                 vkt_context_last_error(ctx));
    cr_assert_eq(vkt_tensor_upload(t, data, 4), VKT_ERROR_DEVICE_LOST);
    vkt_tensor_destroy(t);
    finish(ctx);
    unsetenv("VKT_TEST_FAULT");
}

/* ---- NaN and Inf: the guard and check mode's culprit --------------------------------- */

/* A fresh model of the fault tests' MLP on `ctx`. */
static void mlp_on(fx *f, vkt_context *ctx) {
    *f = (fx){.ctx = ctx};
    setup_model(f);
}

static char checkpoint_path[64];

static const char *checkpoint(void) {
    snprintf(checkpoint_path, sizeof checkpoint_path, "/tmp/vkt-test-faults-%d.safetensors",
             (int)getpid());
    return checkpoint_path;
}

/* A label outside [0, C) makes softmax cross-entropy NaN by design. The
 * step reports it; the weights it spoiled are replaced from the checkpoint
 * taken before, and repeating the batch in check mode names the node. */
static void bad_label(vkt_context *ctx) {
    fx f;
    mlp_on(&f, ctx);
    vkt_feed feeds[2] = {{f.x, f.xs, B * IN}, {f.y, f.labels, B}};
    float loss;
    cr_assert_eq(vkt_model_step(f.m, feeds, 2, &loss), VKT_OK, "%s", vkt_context_last_error(ctx));
    cr_assert_eq(vkt_model_save(f.m, checkpoint(), NULL), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    f.labels[3] = 7.0f; /* 3 classes */
    cr_assert_eq(vkt_model_step(f.m, feeds, 2, &loss), VKT_ERROR_NON_FINITE);
    const char *msg = vkt_context_last_error(ctx);
    cr_assert(isnan(loss));
    cr_assert(strstr(msg, "step 2") && strstr(msg, "NaN") && strstr(msg, "checkpoint"), "%s", msg);

    /* The weights now hold NaN: check mode says so, naming a parameter. */
    vkt_check_report report;
    cr_assert_eq(vkt_model_check(f.m, feeds, 2, &report), VKT_OK, "%s", msg);
    cr_assert_str_empty(report.non_finite_node);
    cr_assert_str_neq(report.non_finite_input, "");
    vkt_var_info vi;
    cr_assert_eq(vkt_graph_query_var(f.g, vkt_graph_find(f.g, report.non_finite_input), &vi),
                 VKT_OK, "'%s' is not a variable", report.non_finite_input);
    cr_assert(vi.is_parameter, "'%s' is not a parameter", report.non_finite_input);

    /* Back to the checkpoint and the same batch: the origin is the loss. */
    cr_assert_eq(vkt_model_load(f.m, checkpoint(), NULL), VKT_OK, "%s", msg);
    cr_assert_eq(vkt_model_check(f.m, feeds, 2, &report), VKT_OK, "%s", msg);
    cr_assert_eq(report.failures, 0, "GPU and CPU agree, NaN included; first differs: %s (%s) %g",
                 report.entries[0].node, report.entries[0].op, report.entries[0].max_abs_error);
    /* Node names are "<loss kind><node index>". */
    cr_assert(strncmp(report.non_finite_node, "cross_entropy", 13) == 0, "origin '%s'",
              report.non_finite_node);
    cr_assert_str_eq(report.non_finite_op, "softmax_ce");
    cr_assert_str_eq(report.non_finite_output, report.non_finite_node);
    cr_assert_str_empty(report.non_finite_input);
    cr_assert_geq(report.non_finite_nodes, 1);

    /* VKT_CHECK=1 turns the same into the step's error. */
    cr_assert_eq(vkt_model_load(f.m, checkpoint(), NULL), VKT_OK, "%s", msg);
    setenv("VKT_CHECK", "1", 1);
    vkt_result r = vkt_model_step(f.m, feeds, 2, &loss);
    unsetenv("VKT_CHECK");
    cr_assert_eq(r, VKT_ERROR_NON_FINITE, "%s", msg);
    cr_assert(strstr(msg, "step 2") && strstr(msg, "'cross_entropy") && strstr(msg, "(softmax_ce)"),
              "%s", msg);

    /* The checkpoint, untouched, still holds good weights. */
    f.labels[3] = 1.0f;
    cr_assert_eq(vkt_model_load(f.m, checkpoint(), NULL), VKT_OK, "%s", msg);
    cr_assert_eq(vkt_model_step(f.m, feeds, 2, &loss), VKT_OK, "%s", msg);
    cr_assert(isfinite(loss));
    remove(checkpoint());
    release(&f);
}

Test(non_finite, bad_label_vulkan, .timeout = 120) {
    vkt_context *ctx = context();
    bad_label(ctx);
    finish(ctx);
}

Test(non_finite, bad_label_cpu, .timeout = 120) {
    vkt_context *ctx = NULL;
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU}, &ctx),
                 VKT_OK);
    bad_label(ctx);
    vkt_context_destroy(ctx);
}

/* SGD with a learning rate of 1e30: the first update throws the weights to
 * about 1e30, so the next forward pass squares numbers that large in the
 * MSE loss, which overflows to Inf. Its inputs are finite: the loss node is
 * where it began. One step later the weights themselves are Inf or NaN. */
Test(non_finite, huge_learning_rate, .timeout = 120) {
    vkt_context *ctx = context();
    vkt_graph *g;
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 3}, &g), VKT_OK);
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){B, IN});
    vkt_var t = vkt_graph_input(g, "t", 2, (int64_t[]){B, 1});
    vkt_var loss_var = vkt_graph_mse(g, vkt_graph_linear(g, x, 1, "fc"), t);
    vkt_model *m;
    cr_assert_eq(vkt_model_create(g,
                                  &(vkt_model_desc){.loss = loss_var,
                                                    .optimizer = {.type = VKT_OPTIMIZER_SGD,
                                                                  .lr = 1e30f}},
                                  &m),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    float xs[B * IN], ts[B];
    h_random(xs, B * IN, 9, -1, 1);
    h_random(ts, B, 10, 2, 3);
    vkt_feed feeds[2] = {{x, xs, B * IN}, {t, ts, B}};
    float loss;
    cr_assert_eq(vkt_model_step(m, feeds, 2, &loss), VKT_OK, "%s", vkt_context_last_error(ctx));
    cr_assert(isfinite(loss));
    vkt_check_report report;
    cr_assert_eq(vkt_model_check(m, feeds, 2, &report), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    cr_assert(strncmp(report.non_finite_node, "mse", 3) == 0, "origin '%s' (%s), input '%s'",
                     report.non_finite_node, report.non_finite_op ? report.non_finite_op : "-",
                     report.non_finite_input);
    cr_assert_str_eq(report.non_finite_op, "mse");
    cr_assert_str_empty(report.non_finite_input);
    /* That step was applied: the weights now hold Inf or NaN themselves, which
     * the next step in check mode blames on the state it started from. */
    setenv("VKT_CHECK", "1", 1);
    vkt_result r = vkt_model_step(m, feeds, 2, &loss);
    unsetenv("VKT_CHECK");
    cr_assert_eq(r, VKT_ERROR_NON_FINITE);
    cr_assert(strstr(vkt_context_last_error(ctx), "'fc.") &&
                  strstr(vkt_context_last_error(ctx), "held NaN/Inf before the step"),
              "%s", vkt_context_last_error(ctx));
    cr_assert_eq(vkt_model_step(m, feeds, 2, &loss), VKT_ERROR_NON_FINITE);
    cr_assert(!isfinite(loss));
    vkt_model_destroy(m);
    vkt_graph_destroy(g);
    finish(ctx);
}
