/* safetensors.h: the safetensors container, independent of models: parsing
 * and validating a file's header from memory, and writing one.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
 * (optionally padded with whitespace), then the data section: every tensor's
 * little-endian bytes at [begin, end) counted from the start of the data
 * section. As the reference implementation demands, the tensors must tile
 * the data section exactly: sorted by offset they start at 0, each begins
 * where the previous ends, and the last ends at the end of the file.
 *
 * Nothing here touches a context, so the parser can be fuzzed alone. */
#ifndef VKT_SAFETENSORS_H
#define VKT_SAFETENSORS_H

#include "vktrain.h"

#define ST_PREFIX_SIZE 8
/* Headers longer than this are refused before anything is allocated; the
 * reference implementation has the same limit. */
#define ST_MAX_HEADER_SIZE 100000000ull
/* Tensors of more dimensions are refused (VKT_ERROR_UNSUPPORTED). */
#define ST_MAX_DIMS 8

/* Why a file was refused: VKT_ERROR_CORRUPT_DATA for anything malformed,
 * inconsistent or truncated, VKT_ERROR_UNSUPPORTED for well-formed content
 * this reader cannot represent (an unknown dtype, too many dimensions). */
typedef struct st_error {
    vkt_result result;
    uint64_t offset; /* byte offset in the file */
    char message[320];
} st_error;

typedef struct st_tensor {
    const char *name;
    const char *dtype; /* "F32", "BF16", ... */
    uint32_t dtype_bits;
    uint32_t ndim;
    uint64_t dims[ST_MAX_DIMS];
    uint64_t begin, end;     /* in the data section */
    uint64_t entry_offset;   /* file offset of the tensor's name in the header */
    uint64_t shape_offset;   /* file offset of its "shape" value */
    uint64_t offsets_offset; /* file offset of its "data_offsets" value */
} st_tensor;

typedef struct st_meta {
    const char *key, *value;
    uint64_t offset; /* file offset of the value */
} st_meta;

typedef struct st_header {
    uint64_t header_size; /* N */
    uint64_t data_start;  /* 8 + N */
    uint64_t data_size;   /* file size - data_start */
    st_tensor *tensors;   /* sorted by begin */
    uint32_t tensor_count;
    const st_tensor **by_name; /* the tensors sorted by name */
    st_meta *metadata;         /* in file order */
    uint32_t metadata_count;
    char *strings; /* every decoded string above lives here */
} st_header;

/* Decodes and checks the header length from the first min(8, file_size)
 * bytes of a file of file_size bytes: the header must fit in the file and
 * under ST_MAX_HEADER_SIZE. */
vkt_result st_parse_prefix(const unsigned char *bytes, uint64_t file_size,
                           uint64_t *out_header_size, st_error *err);

/* Parses and validates the header_size bytes of JSON at file offset 8 of a
 * file of file_size bytes: syntax, field types, dtypes, shapes against
 * data_offsets, tiling of the data section, duplicate names, metadata
 * values that are strings. On success *out owns its memory (st_header_free);
 * on failure *out is empty and err says what and where. */
vkt_result st_parse_header(const char *text, uint64_t header_size, uint64_t file_size,
                           st_header *out, st_error *err);

/* Both of the above on a whole file image in memory (the fuzzing entry). */
vkt_result st_parse_memory(const void *data, size_t size, st_header *out, st_error *err);

void st_header_free(st_header *h);

/* The tensor called name, or NULL. */
const st_tensor *st_find(const st_header *h, const char *name);
/* The metadata value for key, or NULL. */
const st_meta *st_meta_find(const st_header *h, const char *key);
/* "(2, 3)" into buf; returns buf. */
const char *st_format_shape(const st_tensor *t, char *buf, size_t size);

/* ---- Writing ---- */

typedef struct st_entry {
    const char *name;  /* valid UTF-8 */
    const char *dtype; /* a dtype name the reader knows */
    uint32_t ndim;
    uint64_t dims[ST_MAX_DIMS];
} st_entry;

/* Builds the JSON header for tensors laid out back to back in entry order
 * and the metadata pairs, padded with spaces so that the data section starts
 * at a multiple of 8 bytes. *out_data_size gets the data section's size.
 * False when out of memory, on size overflow or an unknown dtype. */
bool st_build_header(const st_entry *entries, uint32_t count, const st_meta *metadata,
                     uint32_t metadata_count, char **out_text, uint64_t *out_size,
                     uint64_t *out_data_size);

/* Bytes of one tensor of entry e; false on overflow or an unknown dtype. */
bool st_entry_bytes(const st_entry *e, uint64_t *out_bytes);

/* Little-endian 64-bit encoding of the header length. */
void st_put_u64le(unsigned char out[8], uint64_t value);

#endif
