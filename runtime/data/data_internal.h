/* data_internal.h: what the data-layer files share: the parsed form of an
 * IDX file and the entry points that read one (from a file, a descriptor or
 * memory; the fuzz target drives the last two), and the layout of a data
 * set. Nothing here is public. */
#ifndef VKT_DATA_INTERNAL_H
#define VKT_DATA_INTERNAL_H

#include "../core/internal.h"

/* An IDX file may have up to 255 dimensions; vktrain reads the count plus at
 * most VKT_MAX_SAMPLE_DIMS sample dimensions. */
#define VKT_IDX_MAX_DIMS (1 + VKT_MAX_SAMPLE_DIMS)

/* Refuse files whose header declares more decoded data than this. The largest
 * common IDX file (EMNIST) is well under 1 GiB; a header beyond 4 GiB is far
 * more likely corrupt than real, and its features would need 16 GiB. */
#define VKT_IDX_MAX_BYTES ((uint64_t)1 << 32)

/* What the caller expects of a file: checked against the header so a wrong
 * file is refused with a message that says what was expected. */
typedef struct vkt_idx_expect {
    const char *kind;           /* "images" or "labels", for messages */
    int32_t min_ndim, max_ndim; /* within 1..VKT_IDX_MAX_DIMS */
    uint64_t max_bytes;         /* 0: VKT_IDX_MAX_BYTES */
} vkt_idx_expect;

/* A parsed IDX file of unsigned bytes. */
typedef struct vkt_idx {
    int32_t ndim;
    uint32_t dims[VKT_IDX_MAX_DIMS]; /* each >= 1 */
    uint64_t size;                   /* product of dims: bytes of data */
    uint64_t data_offset;            /* 4 + 4 * ndim: where data[0] sits in the file */
    bool compressed;                 /* the file was gzip'd (offsets are decompressed) */
    uint8_t *data;                   /* (dims...), malloc'd */
} vkt_idx;

/* Reads an IDX file, gzip'd or plain (zlib tells them apart). Errors go to
 * vkt_last_error() and name `path` and the byte offset at fault. */
vkt_result vkt_idx_read_file(const char *path, const vkt_idx_expect *expect, vkt_idx *out_idx);
/* The same from an open descriptor, which is left open; `name` is used in
 * messages. */
vkt_result vkt_idx_read_fd(int fd, const char *name, const vkt_idx_expect *expect,
                           vkt_idx *out_idx);
/* Parses an uncompressed IDX image held in memory. */
vkt_result vkt_idx_parse_memory(const void *bytes, size_t size, const char *name,
                                const vkt_idx_expect *expect, vkt_idx *out_idx);
void vkt_idx_free(vkt_idx *idx);

struct vkt_dataset {
    uint32_t count;
    int32_t sample_ndim;
    int64_t sample_dims[VKT_MAX_SAMPLE_DIMS];
    size_t sample_size; /* product of sample_dims */
    uint32_t classes;
    float *features; /* (count, sample_size) */
    float *labels;   /* (count): class indices as floats */
};

/* Builds a data set from parsed images and labels, applying desc's
 * normalisation and shape options (desc's paths are not used; the names are
 * for messages). */
vkt_result vkt_dataset_from_idx(const vkt_idx *images, const char *images_name,
                                const vkt_idx *labels, const char *labels_name,
                                const vkt_idx_desc *desc, vkt_dataset **out_dataset);

/* splitmix64 (Steele, Lea, Flood 2014), the generator behind batch shuffling:
 * advances *state and returns the next output. Exposed for the tests that
 * pin the documented order. */
uint64_t vkt_splitmix64(uint64_t *state);

#endif
