/* batcher.c: walking a data set in batches, in a seeded per-epoch shuffle
 * that is the same on every machine, with an optional prefetch thread.
 *
 * Every batch is a pure function of (data set, batch size, drop_last,
 * sequential, seed, epoch, position): the permutation of an epoch is
 * rebuilt from (seed, epoch) alone, never from the previous epoch's. That is
 * what makes a restored state continue exactly, and what makes prefetching
 * deterministic: the thread computes the very batch a synchronous call would,
 * it only does it earlier.
 *
 * Prefetch is double buffering with one job slot. After handing out buffer
 * F, next_view posts "fill buffer 1-F for the new cursor" to the thread; the
 * following call waits for that job, hands out 1-F and posts a job for F,
 * which the caller has finished with by then (the view's contract). The
 * permutation array belongs to whoever fills: the caller's thread only while
 * no job is posted, the prefetch thread only while one is; the mutex
 * hand-over orders the two. */
#include "data_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BATCH_SIZE 32

typedef struct batch_buffer {
    float *features; /* (batch_size, sample_size) */
    float *labels;   /* (batch_size) */
    uint32_t count;
    vkt_batcher_state at; /* the cursor it was filled for */
    bool valid;
} batch_buffer;

struct vkt_batcher {
    const vkt_dataset *ds;
    uint32_t batch_size;
    bool sequential, drop_last;
    vkt_batcher_state cursor; /* where the next batch starts */

    /* The permutation of epoch order_epoch under order_seed. (N) */
    uint32_t *order;
    bool order_valid;
    uint64_t order_epoch, order_seed;

    batch_buffer buf[2]; /* buf[1] only with prefetch */
    int front;           /* the buffer last handed out */

    bool threaded;
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t wake, done;
    bool job_posted; /* the thread owes buf[job_slot] filled for job_at */
    int job_slot;
    vkt_batcher_state job_at;
    bool quit;
};

/* ---- Order ---------------------------------------------------------------- */

static uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

uint64_t vkt_splitmix64(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15u;
    return splitmix64_mix(*state);
}

/* Uniform in [0, bound) without modulo bias: outputs below 2^64 mod bound
 * are rejected, leaving a range that is a whole number of bound-sized
 * pieces. Plain 64-bit arithmetic, so every machine draws the same. */
static uint64_t uniform_below(uint64_t *state, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = vkt_splitmix64(state);
        if (x >= threshold)
            return x % bound;
    }
}

/* The documented shuffle (see vkt_batcher_desc.seed). */
static void build_order(vkt_batcher *b, uint64_t seed, uint64_t epoch) {
    uint32_t n = b->ds->count;
    for (uint32_t i = 0; i < n; i++)
        b->order[i] = i;
    uint64_t state = seed ^ splitmix64_mix(epoch);
    for (uint32_t i = n - 1; i >= 1; i--) {
        uint32_t j = (uint32_t)uniform_below(&state, (uint64_t)i + 1);
        uint32_t t = b->order[i];
        b->order[i] = b->order[j];
        b->order[j] = t;
    }
    b->order_valid = true;
    b->order_seed = seed;
    b->order_epoch = epoch;
}

/* Samples in the batch that starts at `at`. */
static uint32_t batch_count(const vkt_batcher *b, const vkt_batcher_state *at) {
    uint64_t left = b->ds->count - at->position;
    return left < b->batch_size ? (uint32_t)left : b->batch_size;
}

static void advance(const vkt_batcher *b, vkt_batcher_state *at, uint32_t count) {
    at->position += count;
    uint64_t left = b->ds->count - at->position;
    if (left == 0 || (b->drop_last && left < b->batch_size)) {
        at->epoch++;
        at->position = 0;
    }
}

/* Gathers the batch at `at` into features (count, sample_size) and labels
 * (count); returns count. */
static uint32_t fill(vkt_batcher *b, float *features, float *labels, const vkt_batcher_state *at) {
    const vkt_dataset *ds = b->ds;
    uint32_t count = batch_count(b, at);
    if (!b->sequential &&
        (!b->order_valid || b->order_epoch != at->epoch || b->order_seed != at->seed))
        build_order(b, at->seed, at->epoch);
    size_t ss = ds->sample_size;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t k = (uint32_t)at->position + i;
        uint32_t s = b->sequential ? k : b->order[k];
        memcpy(features + (size_t)i * ss, ds->features + (size_t)s * ss, ss * sizeof(float));
        labels[i] = ds->labels[s];
    }
    return count;
}

static bool same_state(const vkt_batcher_state *a, const vkt_batcher_state *b) {
    return a->seed == b->seed && a->epoch == b->epoch && a->position == b->position;
}

/* ---- Prefetch thread ---------------------------------------------------------- */

static void *prefetch_main(void *arg) {
    vkt_batcher *b = arg;
    pthread_mutex_lock(&b->mutex);
    for (;;) {
        while (!b->job_posted && !b->quit)
            pthread_cond_wait(&b->wake, &b->mutex);
        if (b->quit)
            break;
        batch_buffer *buf = &b->buf[b->job_slot];
        vkt_batcher_state at = b->job_at;
        pthread_mutex_unlock(&b->mutex);
        buf->count = fill(b, buf->features, buf->labels, &at);
        buf->at = at;
        buf->valid = true;
        pthread_mutex_lock(&b->mutex);
        b->job_posted = false;
        pthread_cond_signal(&b->done);
    }
    pthread_mutex_unlock(&b->mutex);
    return NULL;
}

/* Returns once the thread owes nothing, so the caller may touch the
 * buffers and the permutation. */
static void wait_for_job(vkt_batcher *b) {
    if (!b->threaded)
        return;
    pthread_mutex_lock(&b->mutex);
    while (b->job_posted)
        pthread_cond_wait(&b->done, &b->mutex);
    pthread_mutex_unlock(&b->mutex);
}

static void post_job(vkt_batcher *b, int slot) {
    b->buf[slot].valid = false;
    pthread_mutex_lock(&b->mutex);
    b->job_slot = slot;
    b->job_at = b->cursor;
    b->job_posted = true;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->mutex);
}

static vkt_result start_thread(vkt_batcher *b) {
    if (pthread_mutex_init(&b->mutex, NULL) != 0)
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_batcher_create: cannot make the prefetch thread's mutex");
    if (pthread_cond_init(&b->wake, NULL) != 0) {
        pthread_mutex_destroy(&b->mutex);
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_batcher_create: cannot make the prefetch thread's condition");
    }
    if (pthread_cond_init(&b->done, NULL) != 0) {
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->mutex);
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_batcher_create: cannot make the prefetch thread's condition");
    }
    int err = pthread_create(&b->thread, NULL, prefetch_main, b);
    if (err != 0) {
        pthread_cond_destroy(&b->done);
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->mutex);
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_batcher_create: cannot start the prefetch thread (error %d)", err);
    }
    b->threaded = true;
    return VKT_OK;
}

/* ---- Public ------------------------------------------------------------------- */

void vkt_batcher_destroy(vkt_batcher *b) {
    if (!b)
        return;
    if (b->threaded) {
        pthread_mutex_lock(&b->mutex);
        b->quit = true;
        pthread_cond_signal(&b->wake);
        pthread_mutex_unlock(&b->mutex);
        pthread_join(b->thread, NULL);
        pthread_cond_destroy(&b->done);
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->mutex);
    }
    for (int i = 0; i < 2; i++) {
        free(b->buf[i].features);
        free(b->buf[i].labels);
    }
    free(b->order);
    free(b);
}

static vkt_result check_create(const vkt_dataset *ds, const vkt_batcher_desc *desc,
                               vkt_batcher **out_batcher, uint32_t *out_batch_size) {
    if (!ds || !desc || !out_batcher)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_batcher_create: %s is NULL",
                         !ds     ? "ds"
                         : !desc ? "desc"
                                 : "out_batcher");
    uint32_t batch_size = desc->batch_size ? desc->batch_size : DEFAULT_BATCH_SIZE;
    if (desc->drop_last && batch_size > ds->count)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_batcher_create: with drop_last, a batch size of %u needs at least "
                         "that many samples; the data set has %u",
                         batch_size, ds->count);
    if (ds->sample_size > SIZE_MAX / sizeof(float) / batch_size)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_batcher_create: batches of %u samples of %zu floats overflow the "
                         "address space",
                         batch_size, ds->sample_size);
    *out_batch_size = batch_size;
    return VKT_OK;
}

vkt_result vkt_batcher_create(const vkt_dataset *ds, const vkt_batcher_desc *desc,
                              vkt_batcher **out_batcher) {
    uint32_t batch_size = 0;
    vkt_result r = check_create(ds, desc, out_batcher, &batch_size);
    if (r != VKT_OK)
        return r;
    vkt_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_batcher_create: out of memory");
    b->ds = ds;
    b->batch_size = batch_size;
    b->sequential = desc->sequential;
    b->drop_last = desc->drop_last;
    b->cursor.seed = desc->seed;
    bool ok = true;
    if (!b->sequential)
        ok = (b->order = malloc((size_t)ds->count * sizeof *b->order)) != NULL;
    for (int i = 0; i < (desc->prefetch ? 2 : 1) && ok; i++) {
        b->buf[i].features = malloc((size_t)batch_size * ds->sample_size * sizeof(float));
        b->buf[i].labels = malloc((size_t)batch_size * sizeof(float));
        ok = b->buf[i].features && b->buf[i].labels;
    }
    if (!ok) {
        vkt_batcher_destroy(b);
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_batcher_create: out of memory for batches of %u samples", batch_size);
    }
    if (desc->prefetch && (r = start_thread(b)) != VKT_OK) {
        vkt_batcher_destroy(b);
        return r;
    }
    *out_batcher = b;
    return VKT_OK;
}

vkt_result vkt_batcher_next_view(vkt_batcher *b, vkt_batch *out_batch) {
    if (!b || !out_batch)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_batcher_next_view: %s is NULL",
                         !b ? "b" : "out_batch");
    wait_for_job(b);
    int slot = -1;
    for (int i = 0; i < (b->threaded ? 2 : 1); i++)
        if (b->buf[i].valid && same_state(&b->buf[i].at, &b->cursor))
            slot = i;
    if (slot < 0) {
        /* First call, after a restore, or without prefetch. */
        slot = b->threaded ? 1 - b->front : 0;
        batch_buffer *buf = &b->buf[slot];
        buf->count = fill(b, buf->features, buf->labels, &b->cursor);
        buf->at = b->cursor;
        buf->valid = true;
    }
    const batch_buffer *buf = &b->buf[slot];
    b->front = slot;
    advance(b, &b->cursor, buf->count);
    if (b->threaded)
        post_job(b, 1 - slot);
    *out_batch = (vkt_batch){
        .features = buf->features,
        .labels = buf->labels,
        .count = buf->count,
        .epoch = buf->at.epoch,
        .index = buf->at.position / b->batch_size,
    };
    return VKT_OK;
}

vkt_result vkt_batcher_next(vkt_batcher *b, float *features_out, float *labels_out,
                            uint32_t *out_count) {
    if (!b || !features_out || !labels_out || !out_count)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_batcher_next: %s is NULL",
                         !b              ? "b"
                         : !features_out ? "features_out"
                         : !labels_out   ? "labels_out"
                                         : "out_count");
    if (!b->threaded) {
        /* Straight into the caller's buffers: no copy to pay. */
        uint32_t count = fill(b, features_out, labels_out, &b->cursor);
        advance(b, &b->cursor, count);
        *out_count = count;
        return VKT_OK;
    }
    vkt_batch batch;
    vkt_result r = vkt_batcher_next_view(b, &batch);
    if (r != VKT_OK)
        return r;
    memcpy(features_out, batch.features, (size_t)batch.count * b->ds->sample_size * sizeof(float));
    memcpy(labels_out, batch.labels, (size_t)batch.count * sizeof(float));
    *out_count = batch.count;
    return VKT_OK;
}

vkt_result vkt_batcher_query(const vkt_batcher *b, vkt_batcher_info *out_info) {
    if (!b || !out_info)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_batcher_query: %s is NULL",
                         !b ? "b" : "out_info");
    uint64_t n = b->ds->count;
    *out_info = (vkt_batcher_info){
        .state = b->cursor,
        .batch_size = b->batch_size,
        .batches_per_epoch =
            b->drop_last ? n / b->batch_size : (n + b->batch_size - 1) / b->batch_size,
        .sample_size = b->ds->sample_size,
    };
    return VKT_OK;
}

vkt_result vkt_batcher_restore(vkt_batcher *b, const vkt_batcher_state *state) {
    if (!b || !state)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_batcher_restore: %s is NULL",
                         !b ? "b" : "state");
    uint64_t n = b->ds->count;
    uint64_t last = b->drop_last ? n - b->batch_size : n - 1;
    if (state->position > last)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_batcher_restore: position %llu is past the last batch start "
                         "(%llu) of an epoch of this data set (%llu samples, batch size %u%s)",
                         (unsigned long long)state->position, (unsigned long long)last,
                         (unsigned long long)n, b->batch_size, b->drop_last ? ", drop_last" : "");
    /* A batch being prefetched for the old cursor is simply not used. */
    wait_for_job(b);
    b->cursor = *state;
    return VKT_OK;
}
