/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser
 * (runtime/graph/safetensors.c), the code that reads a checkpoint's length
 * prefix, JSON header and offsets before vkt_model_load trusts any of it.
 *
 * Every input must be either refused with a message and an offset inside the
 * file, or accepted with entries that really tile the data section; an
 * accepted header, written again by the writer, must parse back the same.
 *
 * Built and run by tools/fuzz.sh (meson -Dfuzz=true, tools/fuzz/meson.build).
 * It needs only the parser and json.c, no context or device, so it also
 * builds by hand. From the repository root:
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -D_POSIX_C_SOURCE=200809L -Iruntime/include \
 *       tools/fuzz/fuzz_safetensors.c runtime/graph/safetensors.c runtime/graph/json.c \
 *       -o /tmp/fuzz_safetensors
 *   mkdir -p /tmp/st-corpus && /tmp/fuzz_safetensors -max_total_time=600 -max_len=4096 \
 *       -dict=tools/fuzz/safetensors.dict /tmp/st-corpus tools/fuzz/corpus_safetensors
 * (Debian: apt-get install clang libclang-rt-14-dev.) The first directory
 * collects what the fuzzer finds; the seeds are read only. */
#include "../../runtime/graph/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_accepted(const st_header *h, size_t size) {
    CHECK(h->data_start == ST_PREFIX_SIZE + h->header_size);
    CHECK(h->data_start + h->data_size == size);
    uint64_t expected = 0;
    for (uint32_t i = 0; i < h->tensor_count; i++) {
        const st_tensor *t = &h->tensors[i];
        CHECK(t->begin == expected && t->end >= t->begin && t->end <= h->data_size);
        CHECK(st_find(h, t->name) == t);
        CHECK(t->entry_offset < h->data_start && t->offsets_offset < h->data_start);
        expected = t->end;
    }
    CHECK(expected == h->data_size);
    for (uint32_t i = 0; i < h->metadata_count; i++)
        CHECK(st_meta_find(h, h->metadata[i].key) == &h->metadata[i]);
}

/* Writes the accepted header again and parses the result: the writer must
 * produce what the reader accepts, with the same names, shapes and sizes. */
static void check_round_trip(const st_header *h) {
    st_entry *entries = calloc(h->tensor_count + 1, sizeof *entries);
    CHECK(entries);
    for (uint32_t i = 0; i < h->tensor_count; i++) {
        const st_tensor *t = &h->tensors[i];
        entries[i] = (st_entry){.name = t->name, .dtype = t->dtype, .ndim = t->ndim};
        memcpy(entries[i].dims, t->dims, sizeof t->dims);
    }
    char *text;
    uint64_t text_size, data_size;
    if (!st_build_header(entries, h->tensor_count, h->metadata, h->metadata_count, &text,
                         &text_size, &data_size)) {
        free(entries);
        return; /* only when it would exceed the header limit */
    }
    CHECK(data_size == h->data_size);
    size_t size = ST_PREFIX_SIZE + text_size + data_size;
    unsigned char *file = calloc(size, 1);
    CHECK(file);
    st_put_u64le(file, text_size);
    memcpy(file + ST_PREFIX_SIZE, text, text_size);
    st_header again;
    st_error err;
    vkt_result r = st_parse_memory(file, size, &again, &err);
    if (r != VKT_OK)
        fprintf(stderr, "re-parse failed at %llu: %s\n", (unsigned long long)err.offset,
                err.message);
    CHECK(r == VKT_OK);
    CHECK(again.tensor_count == h->tensor_count && again.metadata_count == h->metadata_count);
    for (uint32_t i = 0; i < h->tensor_count; i++) {
        const st_tensor *t = st_find(&again, h->tensors[i].name);
        CHECK(t && t->ndim == h->tensors[i].ndim && strcmp(t->dtype, h->tensors[i].dtype) == 0);
        CHECK(memcmp(t->dims, h->tensors[i].dims, sizeof t->dims) == 0);
        CHECK(t->end - t->begin == h->tensors[i].end - h->tensors[i].begin);
    }
    for (uint32_t i = 0; i < h->metadata_count; i++)
        CHECK(strcmp(again.metadata[i].value, h->metadata[i].value) == 0);
    st_header_free(&again);
    free(file);
    free(text);
    free(entries);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_header h;
    st_error err;
    vkt_result r = st_parse_memory(data, size, &h, &err);
    if (r != VKT_OK) {
        CHECK(r == VKT_ERROR_CORRUPT_DATA || r == VKT_ERROR_UNSUPPORTED ||
              r == VKT_ERROR_OUT_OF_HOST_MEMORY);
        CHECK(err.result == r && err.message[0] && err.offset <= size);
        CHECK(h.tensors == NULL && h.strings == NULL);
        return 0;
    }
    check_accepted(&h, size);
    check_round_trip(&h);
    st_header_free(&h);
    return 0;
}
