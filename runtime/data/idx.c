/* idx.c: reading IDX files (the MNIST container: 4 magic bytes 0, 0, type,
 * ndim; ndim big-endian u32 dimensions; the elements row-major), gzip'd or
 * plain through zlib, or from memory.
 *
 * Nothing read from a file is trusted before it is checked: the magic, the
 * dimension count, each dimension, their product (overflow-checked) against a
 * size cap. The data buffer then grows with the bytes actually read, so a
 * header that lies about its size cannot make us allocate more than about
 * twice what the file really holds. Every error names the file and the byte
 * offset (in the decompressed stream for gzip'd files) where it went wrong. */
#include "data_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_TYPE_U8 0x08

/* Bytes per gzread call: small enough that a corruption zlib reports is
 * located to within this much, large enough that the calls cost nothing. */
#define GZ_CHUNK (64u * 1024)

/* Reads come from one of two places; offsets count the bytes handed out,
 * i.e. decompressed bytes for a gzip'd file. */
typedef struct idx_stream {
    const char *name;
    gzFile gz;          /* NULL: memory */
    const uint8_t *mem; /* memory source */
    size_t mem_size;
    uint64_t offset;
    bool compressed; /* gz holds a gzip stream rather than a plain file */
} idx_stream;

/* Records "'name', byte offset N: what" as the thread's last error. */
static vkt_result idx_fail(const idx_stream *s, vkt_result result, uint64_t offset, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));
static vkt_result idx_fail(const idx_stream *s, vkt_result result, uint64_t offset, const char *fmt,
                           ...) {
    char what[VKT_ERROR_MESSAGE_SIZE];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    return vkt_error(NULL, result, "'%s', byte offset %llu%s: %s", s->name,
                     (unsigned long long)offset, s->compressed ? " of the decompressed data" : "",
                     what);
}

/* Explains why a gzip read stopped early. zlib reports a stream cut short as
 * Z_BUF_ERROR, and the offset is exact. A damaged stream is Z_DATA_ERROR,
 * found somewhere in what zlib was decoding when it failed (a CRC mismatch
 * only at the end), and zlib does not say how much of that read succeeded:
 * the offset is where the failing read began, which GZ_CHUNK keeps close. */
static vkt_result gz_failure(idx_stream *s, uint64_t offset, int read_errno) {
    int errnum = Z_OK;
    const char *msg = gzerror(s->gz, &errnum);
    /* zlib prefixes the path, which our message already leads with. */
    size_t name_len = strlen(s->name);
    if (msg && strncmp(msg, s->name, name_len) == 0 && strncmp(msg + name_len, ": ", 2) == 0)
        msg += name_len + 2;
    if (errnum == Z_ERRNO)
        return idx_fail(s, VKT_ERROR_IO, offset, "read failed: %s", strerror(read_errno));
    if (errnum == Z_BUF_ERROR)
        return idx_fail(s, VKT_ERROR_CORRUPT_DATA, offset,
                        "the gzip stream ends early (file truncated?)");
    if (errnum == Z_MEM_ERROR)
        return idx_fail(s, VKT_ERROR_OUT_OF_HOST_MEMORY, offset, "zlib is out of memory");
    return idx_fail(s, VKT_ERROR_CORRUPT_DATA, offset,
                    "the gzip data is corrupt (zlib: %s), found while decompressing the data "
                    "from this offset on",
                    msg && *msg ? msg : "unknown error");
}

/* Reads up to n bytes into dst; *out_got < n only where the data ends
 * cleanly. A damaged gzip stream or a failing read is an error. */
static vkt_result stream_read(idx_stream *s, void *dst, size_t n, size_t *out_got) {
    size_t got = 0;
    if (!s->gz) {
        size_t left = s->mem_size - (size_t)s->offset;
        got = n < left ? n : left;
        if (got)
            memcpy(dst, s->mem + s->offset, got);
    } else {
        while (got < n) {
            size_t want = n - got;
            unsigned chunk = want > GZ_CHUNK ? GZ_CHUNK : (unsigned)want;
            errno = 0;
            int r = gzread(s->gz, (uint8_t *)dst + got, chunk);
            if (r < 0)
                return gz_failure(s, s->offset + got, errno);
            if (r == 0)
                break;
            got += (size_t)r;
        }
        if (got < n) {
            int errnum = Z_OK;
            gzerror(s->gz, &errnum);
            if (errnum != Z_OK)
                return gz_failure(s, s->offset + got, errno);
        }
    }
    s->offset += got;
    *out_got = got;
    return VKT_OK;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *type_name(uint8_t type) {
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "i16";
    case 0x0C: return "i32";
    case 0x0D: return "f32";
    case 0x0E: return "f64";
    default: return NULL;
    }
}

static vkt_result check_magic(idx_stream *s, const uint8_t *magic, size_t got,
                              const vkt_idx_expect *expect) {
    for (size_t i = 0; i < 2 && i < got; i++)
        if (magic[i] != 0)
            return idx_fail(s, VKT_ERROR_CORRUPT_DATA, i,
                            "not an IDX file: it must start with two zero bytes, found 0x%02x "
                            "(is the file something else, or damaged?)",
                            magic[i]);
    if (got < 4)
        return idx_fail(s, VKT_ERROR_CORRUPT_DATA, got,
                        "truncated inside the 4-byte IDX magic (the file has %zu bytes)", got);
    const char *type = type_name(magic[2]);
    if (!type)
        return idx_fail(s, VKT_ERROR_CORRUPT_DATA, 2,
                        "unknown IDX type code 0x%02x (valid codes: 0x08, 0x09, 0x0B to 0x0E)",
                        magic[2]);
    if (magic[2] != IDX_TYPE_U8)
        return idx_fail(s, VKT_ERROR_UNSUPPORTED, 2,
                        "IDX type code 0x%02x (%s elements): only unsigned-byte files (0x08) "
                        "are supported",
                        magic[2], type);
    int32_t ndim = magic[3];
    if (ndim < expect->min_ndim || ndim > expect->max_ndim) {
        const char *hint = "";
        if (strcmp(expect->kind, "labels") == 0 && ndim > 1)
            hint = " (is this an images file?)";
        else if (strcmp(expect->kind, "images") == 0 && ndim == 1)
            hint = " (is this a labels file?)";
        char need[32];
        if (expect->min_ndim == expect->max_ndim)
            snprintf(need, sizeof need, "%d", expect->min_ndim);
        else
            snprintf(need, sizeof need, "%d to %d", expect->min_ndim, expect->max_ndim);
        return idx_fail(s, VKT_ERROR_CORRUPT_DATA, 3,
                        "the file has %d dimensions; a %s file needs %s%s", ndim, expect->kind,
                        need, hint);
    }
    return VKT_OK;
}

/* Reads and checks the dimensions; fills idx's shape fields. */
static vkt_result read_dims(idx_stream *s, int32_t ndim, const vkt_idx_expect *expect,
                            vkt_idx *idx) {
    uint8_t raw[4 * VKT_IDX_MAX_DIMS];
    size_t want = 4 * (size_t)ndim, got = 0;
    vkt_result r = stream_read(s, raw, want, &got);
    if (r != VKT_OK)
        return r;
    if (got < want)
        return idx_fail(s, VKT_ERROR_CORRUPT_DATA, 4 + got,
                        "truncated inside the dimensions (the header announces %d, %zu bytes)",
                        ndim, want);
    uint64_t max_bytes = expect->max_bytes ? expect->max_bytes : VKT_IDX_MAX_BYTES;
    uint64_t size = 1;
    idx->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) {
        uint64_t offset = 4 + 4 * (uint64_t)i;
        uint32_t dim = be32(raw + 4 * i);
        if (dim == 0)
            return idx_fail(s, VKT_ERROR_CORRUPT_DATA, offset, "dimension %d is 0", i);
        /* Each factor is below 2^32 but a product of three can wrap. */
        if (size > UINT64_MAX / dim)
            return idx_fail(s, VKT_ERROR_CORRUPT_DATA, offset,
                            "dimension %d (%u) makes the element count overflow 64 bits", i, dim);
        size *= dim;
        idx->dims[i] = dim;
    }
    if (size > max_bytes)
        return idx_fail(s, VKT_ERROR_CORRUPT_DATA, 4,
                        "the dimensions declare %llu bytes of data, more than the limit of "
                        "%llu bytes",
                        (unsigned long long)size, (unsigned long long)max_bytes);
    if ((uint64_t)(size_t)size != size)
        return idx_fail(s, VKT_ERROR_OUT_OF_HOST_MEMORY, 4,
                        "%llu bytes of data do not fit this machine's address space",
                        (unsigned long long)size);
    idx->size = size;
    idx->data_offset = 4 + 4 * (uint64_t)ndim;
    return VKT_OK;
}

static vkt_result truncated_data(idx_stream *s, const vkt_idx *idx, uint64_t have) {
    return idx_fail(s, VKT_ERROR_CORRUPT_DATA, idx->data_offset + have,
                    "truncated: the header declares %llu data bytes from offset %llu but the "
                    "data ends after %llu",
                    (unsigned long long)idx->size, (unsigned long long)idx->data_offset,
                    (unsigned long long)have);
}

/* Reads idx->size bytes of data. Memory sources are checked against their
 * length up front; streams grow the buffer as data arrives (doubling from
 * 1 MiB) so a lying header costs at most twice the real data. */
static vkt_result read_data(idx_stream *s, vkt_idx *idx) {
    if (!s->gz && s->mem_size - s->offset < idx->size)
        return truncated_data(s, idx, s->mem_size - s->offset);
    size_t total = (size_t)idx->size;
    size_t capacity = s->gz && total > ((size_t)1 << 20) ? (size_t)1 << 20 : total;
    uint8_t *data = malloc(capacity);
    if (!data)
        return idx_fail(s, VKT_ERROR_OUT_OF_HOST_MEMORY, idx->data_offset,
                        "out of memory for %zu bytes of data", capacity);
    size_t have = 0;
    for (;;) {
        size_t got = 0;
        vkt_result r = stream_read(s, data + have, capacity - have, &got);
        if (r != VKT_OK) {
            free(data);
            return r;
        }
        have += got;
        if (have < capacity || capacity == total)
            break;
        size_t grown = capacity > total / 2 ? total : capacity * 2;
        uint8_t *bigger = realloc(data, grown);
        if (!bigger) {
            free(data);
            return idx_fail(s, VKT_ERROR_OUT_OF_HOST_MEMORY, idx->data_offset + have,
                            "out of memory for %zu bytes of data", grown);
        }
        data = bigger;
        capacity = grown;
    }
    if (have < total) {
        free(data);
        return truncated_data(s, idx, have);
    }
    idx->data = data;
    return VKT_OK;
}

/* Extra bytes after the data mean the header does not describe the file
 * (wrong dimensions, or two files glued together). Reading one byte more
 * also makes zlib check the gzip trailer (CRC and length). */
static vkt_result check_end(idx_stream *s, const vkt_idx *idx) {
    uint8_t extra;
    size_t got = 0;
    vkt_result r = stream_read(s, &extra, 1, &got);
    if (r != VKT_OK)
        return r;
    if (got)
        return idx_fail(s, VKT_ERROR_CORRUPT_DATA, s->offset - 1,
                        "unexpected bytes after the %llu data bytes that the header declares",
                        (unsigned long long)idx->size);
    return VKT_OK;
}

static vkt_result parse(idx_stream *s, const vkt_idx_expect *expect, vkt_idx *out_idx) {
    VKT_ASSERT(expect->min_ndim >= 1 && expect->max_ndim <= VKT_IDX_MAX_DIMS);
    vkt_idx idx = {.compressed = s->compressed};
    uint8_t magic[4];
    size_t got = 0;
    vkt_result r = stream_read(s, magic, 4, &got);
    if (r == VKT_OK)
        r = check_magic(s, magic, got, expect);
    if (r == VKT_OK)
        r = read_dims(s, magic[3], expect, &idx);
    if (r == VKT_OK)
        r = read_data(s, &idx);
    if (r == VKT_OK)
        r = check_end(s, &idx);
    if (r != VKT_OK) {
        vkt_idx_free(&idx);
        return r;
    }
    *out_idx = idx;
    return VKT_OK;
}

vkt_result vkt_idx_parse_memory(const void *bytes, size_t size, const char *name,
                                const vkt_idx_expect *expect, vkt_idx *out_idx) {
    if ((!bytes && size) || !name || !expect || !out_idx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_idx_parse_memory: NULL argument");
    idx_stream s = {.name = name, .mem = bytes, .mem_size = size};
    return parse(&s, expect, out_idx);
}

/* Takes ownership of gz. */
static vkt_result parse_gz(gzFile gz, const char *name, const vkt_idx_expect *expect,
                           vkt_idx *out_idx) {
    /* Bigger than zlib's 8 KiB default for fewer reads from the file, but
     * with zlib's own output buffer (twice this) within GZ_CHUNK, so data
     * reads decompress straight into our buffer. */
    gzbuffer(gz, GZ_CHUNK / 2);
    idx_stream s = {.name = name, .gz = gz, .compressed = !gzdirect(gz)};
    vkt_result r = parse(&s, expect, out_idx);
    gzclose_r(gz);
    return r;
}

vkt_result vkt_idx_read_file(const char *path, const vkt_idx_expect *expect, vkt_idx *out_idx) {
    if (!path || !expect || !out_idx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_idx_read_file: NULL argument");
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return vkt_error(NULL, errno == ENOMEM ? VKT_ERROR_OUT_OF_HOST_MEMORY : VKT_ERROR_IO,
                         "cannot open '%s': %s", path,
                         errno ? strerror(errno) : "zlib could not open it");
    return parse_gz(gz, path, expect, out_idx);
}

vkt_result vkt_idx_read_fd(int fd, const char *name, const vkt_idx_expect *expect,
                           vkt_idx *out_idx) {
    if (fd < 0 || !name || !expect || !out_idx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_idx_read_fd: bad argument");
    /* gzclose closes the descriptor it was given; the caller keeps fd. */
    int own = dup(fd);
    if (own < 0)
        return vkt_error(NULL, VKT_ERROR_IO, "cannot read '%s': %s", name, strerror(errno));
    gzFile gz = gzdopen(own, "rb");
    if (!gz) {
        close(own);
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY, "cannot read '%s': out of memory",
                         name);
    }
    return parse_gz(gz, name, expect, out_idx);
}

void vkt_idx_free(vkt_idx *idx) {
    if (!idx)
        return;
    free(idx->data);
    idx->data = NULL;
}
