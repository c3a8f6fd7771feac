/* fuzz_idx.c: libFuzzer target for the IDX reader and what builds on it.
 *
 * Each input is read as an IDX file three ways: by the in-memory parser, as
 * an images and as a labels file, and through the file reader (zlib, which
 * also takes gzip'd input) from a temporary file. For input that is not
 * gzip'd the two readers must agree exactly (result, message, data): a
 * difference is a bug even when neither crashes. Inputs that parse are made
 * into a data set (with a synthetic partner file) and batched, so shapes and
 * label checks downstream see whatever the parser lets through.
 *
 * Build and run: see tools/fuzz/meson.build. */
#include "../../runtime/data/data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz-input"
/* Below the library's 4 GiB so a gzip bomb cannot exhaust the fuzzer's
 * memory limit; the code path is the same. */
#define FUZZ_MAX_BYTES (64u << 20)
/* Synthetic partner files are made only for this many samples or fewer. */
#define MAX_PARTNER 4096

static const vkt_idx_expect images_expect = {
    .kind = "images", .min_ndim = 2, .max_ndim = VKT_IDX_MAX_DIMS, .max_bytes = FUZZ_MAX_BYTES};
static const vkt_idx_expect labels_expect = {
    .kind = "labels", .min_ndim = 1, .max_ndim = 1, .max_bytes = FUZZ_MAX_BYTES};

/* The temporary file every input is written to, made once. */
static int input_fd(void) {
    static int fd = -1;
    if (fd < 0) {
        FILE *f = tmpfile();
        if (!f)
            abort();
        fd = fileno(f);
    }
    return fd;
}

static void write_input(int fd, const uint8_t *data, size_t size) {
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) != 0)
        abort();
}

static void batch_a_little(const vkt_dataset *ds) {
    vkt_batcher *b = NULL;
    if (vkt_batcher_create(ds, &(vkt_batcher_desc){.batch_size = 3, .seed = 1}, &b) != VKT_OK)
        return;
    vkt_batch batch;
    for (int i = 0; i < 4; i++)
        if (vkt_batcher_next_view(b, &batch) != VKT_OK || batch.count == 0)
            abort();
    vkt_batcher_destroy(b);
}

/* Parsed images with made-up labels (i % 10), or parsed labels with
 * made-up 1x1 images: then a data set, both with and without a class
 * count so the label check runs. */
static void build(const vkt_idx *images, const vkt_idx *labels) {
    static uint8_t partner[MAX_PARTNER];
    vkt_idx made = {.data = partner, .data_offset = 0};
    uint32_t count = images ? images->dims[0] : labels->dims[0];
    if (count > MAX_PARTNER)
        return;
    if (images) {
        made.ndim = 1;
        made.dims[0] = count;
        for (uint32_t i = 0; i < count; i++)
            partner[i] = (uint8_t)(i % 10);
        labels = &made;
    } else {
        made.ndim = 3;
        made.dims[0] = count;
        made.dims[1] = made.dims[2] = 1;
        memset(partner, 0, count);
        images = &made;
    }
    made.size = count;
    const uint32_t classes[2] = {0, 7};
    for (int c = 0; c < 2; c++) {
        vkt_dataset *ds = NULL;
        vkt_idx_desc desc = {.mean = 0.5f, .std = 0.25f, .classes = classes[c]};
        if (vkt_dataset_from_idx(images, "images", labels, "labels", &desc, &ds) == VKT_OK) {
            batch_a_little(ds);
            vkt_dataset_destroy(ds);
        }
    }
}

/* The file reader on the same bytes must say exactly what the memory parser
 * said, unless the bytes are gzip'd (then only the file reader can read them). */
static void compare_with_file(const uint8_t *data, size_t size, vkt_result memory_result,
                              const char *memory_message, const vkt_idx *memory_idx) {
    int fd = input_fd();
    write_input(fd, data, size);
    vkt_idx idx = {0};
    vkt_result r = vkt_idx_read_fd(fd, NAME, &images_expect, &idx);
    bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!gzip) {
        if (r != memory_result)
            abort();
        if (r != VKT_OK && strcmp(memory_message, vkt_last_error()) != 0)
            abort();
        if (r == VKT_OK &&
            (idx.size != memory_idx->size || memcmp(idx.data, memory_idx->data, idx.size) != 0))
            abort();
    }
    if (r == VKT_OK)
        build(&idx, NULL);
    vkt_idx_free(&idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vkt_idx images = {0}, labels = {0};
    char message[VKT_ERROR_MESSAGE_SIZE];
    vkt_result r = vkt_idx_parse_memory(data, size, NAME, &images_expect, &images);
    snprintf(message, sizeof message, "%s", r == VKT_OK ? "" : vkt_last_error());
    /* Every error names the input and an offset (or is about memory). */
    if (r != VKT_OK && (!strstr(message, NAME) || !strstr(message, "byte offset")))
        abort();
    if (r == VKT_OK)
        build(&images, NULL);
    compare_with_file(data, size, r, message, &images);
    vkt_idx_free(&images);

    if (vkt_idx_parse_memory(data, size, NAME, &labels_expect, &labels) == VKT_OK)
        build(NULL, &labels);
    vkt_idx_free(&labels);
    return 0;
}
