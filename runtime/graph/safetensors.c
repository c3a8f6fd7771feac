/* safetensors.c: see safetensors.h. Everything read from the file is
 * untrusted: lengths are checked against the bytes that exist before they are
 * used, sizes are computed with overflow checks, and no allocation is larger
 * than the header itself (times a small constant). */
#include "safetensors.h"

#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Element sizes in bits, as the reference implementation defines them. */
static const struct {
    const char *name;
    uint32_t bits;
} dtypes[] = {
    {"BOOL", 8},    {"U8", 8},   {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8},
    {"F8_E8M0", 8}, {"I16", 16}, {"U16", 16}, {"F16", 16},    {"BF16", 16},
    {"I32", 32},    {"U32", 32}, {"F32", 32}, {"F64", 64},    {"I64", 64},
    {"U64", 64},    {"C64", 64}, {"F4", 4},   {"F6_E2M3", 6}, {"F6_E3M2", 6},
};

static uint32_t dtype_bits(const char *name) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return dtypes[i].bits;
    return 0;
}

static vkt_result st_fail(st_error *err, vkt_result result, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static vkt_result st_fail(st_error *err, vkt_result result, uint64_t offset, const char *fmt, ...) {
    err->result = result;
    err->offset = offset;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, args);
    va_end(args);
    return result;
}

void st_put_u64le(unsigned char out[8], uint64_t value) {
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(value >> (8 * i));
}

vkt_result st_parse_prefix(const unsigned char *bytes, uint64_t file_size,
                           uint64_t *out_header_size, st_error *err) {
    if (file_size < ST_PREFIX_SIZE)
        return st_fail(err, VKT_ERROR_CORRUPT_DATA, file_size,
                       "truncated: the file has %llu bytes, less than the 8-byte header length",
                       (unsigned long long)file_size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | bytes[i];
    if (n > ST_MAX_HEADER_SIZE)
        return st_fail(err, VKT_ERROR_CORRUPT_DATA, 0,
                       "the header length %llu is larger than the %llu bytes a header may have",
                       (unsigned long long)n, (unsigned long long)ST_MAX_HEADER_SIZE);
    if (n < 2)
        return st_fail(err, VKT_ERROR_CORRUPT_DATA, 0,
                       "the header length %llu is too short for a JSON object",
                       (unsigned long long)n);
    if (n > file_size - ST_PREFIX_SIZE)
        return st_fail(err, VKT_ERROR_CORRUPT_DATA, file_size,
                       "truncated: the %llu-byte header should end at byte %llu but the file "
                       "has %llu bytes",
                       (unsigned long long)n, (unsigned long long)(n + ST_PREFIX_SIZE),
                       (unsigned long long)file_size);
    *out_header_size = n;
    return VKT_OK;
}

/* ---- Header parsing ---- */

typedef struct parser {
    json_cursor c;
    st_header *h;
    st_error *err;
    size_t arena_used;
    uint32_t tensor_cap, meta_cap;
} parser;

/* Header text positions are counted from the end of the length prefix. */
static uint64_t file_pos(size_t pos) { return ST_PREFIX_SIZE + (uint64_t)pos; }

/* Records a content error (not a syntax error) and stops the walk. */
static bool bad(parser *p, vkt_result result, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool bad(parser *p, vkt_result result, size_t pos, const char *fmt, ...) {
    if (p->c.failed)
        return false;
    p->c.failed = true;
    p->err->result = result;
    p->err->offset = file_pos(pos);
    va_list args;
    va_start(args, fmt);
    vsnprintf(p->err->message, sizeof p->err->message, fmt, args);
    va_end(args);
    return false;
}

/* Where the next token starts (for error offsets). */
static size_t next_token(parser *p) {
    json_skip_ws(&p->c);
    return p->c.pos;
}

/* Decodes a string into the arena. The arena holds header_size + 1 bytes and
 * a decoded string plus its NUL is never longer than its quoted encoding, so
 * the strings kept so far plus this one always fit. */
static const char *read_string(parser *p) {
    char *out = p->h->strings + p->arena_used;
    size_t len;
    if (!json_string(&p->c, out, &len))
        return NULL;
    p->arena_used += len + 1;
    return out;
}

/* Forgets a string read last (keys only needed for the comparison). */
static void drop_string(parser *p, const char *s) { p->arena_used = (size_t)(s - p->h->strings); }

static bool grow(void **items, uint32_t *cap, uint32_t count, size_t size) {
    if (count < *cap)
        return true;
    if (*cap > UINT32_MAX / 2)
        return false;
    uint32_t n = *cap ? *cap * 2 : 16;
    void *q = realloc(*items, (size_t)n * size);
    if (!q)
        return false;
    *items = q;
    *cap = n;
    return true;
}

static bool read_shape(parser *p, st_tensor *t, const char *name) {
    json_skip_ws(&p->c);
    t->shape_offset = file_pos(p->c.pos);
    size_t start = p->c.pos;
    if (!json_expect(&p->c, '[', "'[' opening the shape"))
        return false;
    bool first = true;
    while (json_next(&p->c, ']', &first)) {
        if (t->ndim == ST_MAX_DIMS)
            return bad(p, VKT_ERROR_UNSUPPORTED, start,
                       "tensor '%.64s' has more than %d dimensions", name, ST_MAX_DIMS);
        if (!json_u64(&p->c, &t->dims[t->ndim++]))
            return false;
    }
    return !p->c.failed;
}

static bool read_offsets(parser *p, st_tensor *t) {
    json_skip_ws(&p->c);
    t->offsets_offset = file_pos(p->c.pos);
    return json_expect(&p->c, '[', "'[' opening data_offsets") && json_u64(&p->c, &t->begin) &&
           json_expect(&p->c, ',', "',' between the two data_offsets") &&
           json_u64(&p->c, &t->end) && json_expect(&p->c, ']', "']' after the two data_offsets");
}

/* Shape against dtype against data_offsets, overflow-checked in the order
 * the reference implementation uses (element count, then bits), so the
 * same files are refused. */
static bool check_tensor_size(parser *p, const st_tensor *t) {
    uint64_t numel = 1;
    for (uint32_t i = 0; i < t->ndim; i++) {
        if (t->dims[i] && numel > UINT64_MAX / t->dims[i])
            return bad(p, VKT_ERROR_CORRUPT_DATA, (size_t)(t->shape_offset - ST_PREFIX_SIZE),
                       "tensor '%.64s': the shape's element count overflows 64 bits", t->name);
        numel *= t->dims[i];
    }
    if (numel > UINT64_MAX / t->dtype_bits)
        return bad(p, VKT_ERROR_CORRUPT_DATA, (size_t)(t->shape_offset - ST_PREFIX_SIZE),
                   "tensor '%.64s': the shape's size in bits overflows 64 bits", t->name);
    uint64_t bits = numel * t->dtype_bits;
    char shape[160];
    if (bits % 8)
        return bad(p, VKT_ERROR_CORRUPT_DATA, (size_t)(t->shape_offset - ST_PREFIX_SIZE),
                   "tensor '%.64s': %s %s is not a whole number of bytes", t->name, t->dtype,
                   st_format_shape(t, shape, sizeof shape));
    size_t at = (size_t)(t->offsets_offset - ST_PREFIX_SIZE);
    if (t->end < t->begin)
        return bad(p, VKT_ERROR_CORRUPT_DATA, at,
                   "tensor '%.64s': data_offsets [%llu, %llu] end before they begin", t->name,
                   (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end - t->begin != bits / 8)
        return bad(p, VKT_ERROR_CORRUPT_DATA, at,
                   "tensor '%.64s': data_offsets [%llu, %llu] hold %llu bytes but %s %s needs "
                   "%llu",
                   t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                   (unsigned long long)(t->end - t->begin), t->dtype,
                   st_format_shape(t, shape, sizeof shape), (unsigned long long)(bits / 8));
    return true;
}

enum { HAS_DTYPE = 1, HAS_SHAPE = 2, HAS_OFFSETS = 4 };

static bool read_tensor_field(parser *p, st_tensor *t, unsigned *seen) {
    size_t key_pos = next_token(p);
    const char *key = read_string(p);
    if (!key || !json_expect(&p->c, ':', "':' after a key"))
        return false;
    unsigned field = strcmp(key, "dtype") == 0          ? HAS_DTYPE
                     : strcmp(key, "shape") == 0        ? HAS_SHAPE
                     : strcmp(key, "data_offsets") == 0 ? HAS_OFFSETS
                                                        : 0;
    if (!field)
        return bad(p, VKT_ERROR_CORRUPT_DATA, key_pos,
                   "tensor '%.64s' has an unknown field '%.64s'", t->name, key);
    drop_string(p, key);
    if (*seen & field)
        return bad(p, VKT_ERROR_CORRUPT_DATA, key_pos, "tensor '%.64s' repeats a field", t->name);
    *seen |= field;
    if (field == HAS_SHAPE)
        return read_shape(p, t, t->name);
    if (field == HAS_OFFSETS)
        return read_offsets(p, t);
    size_t dtype_pos = next_token(p);
    if (!(t->dtype = read_string(p)))
        return false;
    t->dtype_bits = dtype_bits(t->dtype);
    if (!t->dtype_bits)
        return bad(p, VKT_ERROR_UNSUPPORTED, dtype_pos,
                   "tensor '%.64s' has dtype '%.32s', which is not a safetensors dtype this "
                   "reader knows",
                   t->name, t->dtype);
    return true;
}

static bool read_tensor(parser *p, const char *name, size_t name_pos) {
    if (!grow((void **)&p->h->tensors, &p->tensor_cap, p->h->tensor_count, sizeof(st_tensor)))
        return bad(p, VKT_ERROR_OUT_OF_HOST_MEMORY, name_pos, "out of host memory");
    st_tensor *t = &p->h->tensors[p->h->tensor_count];
    *t = (st_tensor){.name = name, .entry_offset = file_pos(name_pos)};
    if (!json_expect(&p->c, '{', "'{' opening a tensor's entry"))
        return false;
    unsigned seen = 0;
    bool first = true;
    while (json_next(&p->c, '}', &first))
        if (!read_tensor_field(p, t, &seen))
            return false;
    if (p->c.failed)
        return false;
    if (seen != (HAS_DTYPE | HAS_SHAPE | HAS_OFFSETS))
        return bad(p, VKT_ERROR_CORRUPT_DATA, name_pos, "tensor '%.64s' lacks %s", name,
                   !(seen & HAS_DTYPE)   ? "\"dtype\""
                   : !(seen & HAS_SHAPE) ? "\"shape\""
                                         : "\"data_offsets\"");
    if (!check_tensor_size(p, t))
        return false;
    p->h->tensor_count++;
    return true;
}

static bool read_metadata(parser *p) {
    if (!json_expect(&p->c, '{', "'{' opening __metadata__"))
        return false;
    bool first = true;
    while (json_next(&p->c, '}', &first)) {
        size_t key_pos = next_token(p);
        const char *key = read_string(p);
        if (!key || !json_expect(&p->c, ':', "':' after a key"))
            return false;
        size_t value_pos = next_token(p);
        if (value_pos >= p->c.len || p->c.text[value_pos] != '"')
            return bad(p, VKT_ERROR_CORRUPT_DATA, value_pos,
                       "the value of metadata key '%.64s' is not a string", key);
        const char *value = read_string(p);
        if (!value)
            return false;
        if (!grow((void **)&p->h->metadata, &p->meta_cap, p->h->metadata_count, sizeof(st_meta)))
            return bad(p, VKT_ERROR_OUT_OF_HOST_MEMORY, key_pos, "out of host memory");
        p->h->metadata[p->h->metadata_count++] =
            (st_meta){.key = key, .value = value, .offset = file_pos(value_pos)};
    }
    return !p->c.failed;
}

static bool read_top(parser *p) {
    if (p->c.len == 0 || p->c.text[0] != '{')
        return bad(p, VKT_ERROR_CORRUPT_DATA, 0, "the header does not start with '{'");
    p->c.pos = 1;
    bool first = true, seen_metadata = false;
    while (json_next(&p->c, '}', &first)) {
        size_t key_pos = next_token(p);
        const char *key = read_string(p);
        if (!key || !json_expect(&p->c, ':', "':' after a key"))
            return false;
        if (strcmp(key, "__metadata__") == 0) {
            if (seen_metadata)
                return bad(p, VKT_ERROR_CORRUPT_DATA, key_pos, "__metadata__ appears twice");
            seen_metadata = true;
            drop_string(p, key);
            if (!read_metadata(p))
                return false;
        } else if (!read_tensor(p, key, key_pos)) {
            return false;
        }
    }
    if (p->c.failed)
        return false;
    /* Only padding may follow the object. */
    if (json_skip_ws(&p->c))
        return json_fail(&p->c, "unexpected bytes after the header's JSON object");
    return true;
}

/* ---- Checks across entries ---- */

static int by_begin(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->entry_offset < y->entry_offset ? -1 : x->entry_offset > y->entry_offset;
}

static int by_name(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->entry_offset < y->entry_offset ? -1 : x->entry_offset > y->entry_offset);
}

static int meta_by_key(const void *a, const void *b) {
    const st_meta *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->offset < y->offset ? -1 : x->offset > y->offset);
}

static vkt_result check_tiling(const st_header *h, uint64_t file_size, st_error *err) {
    uint64_t expected = 0;
    for (uint32_t i = 0; i < h->tensor_count; i++) {
        const st_tensor *t = &h->tensors[i];
        if (t->begin != expected)
            return st_fail(err, VKT_ERROR_CORRUPT_DATA, t->offsets_offset,
                           "tensor '%.64s' starts at data byte %llu but the tensors before it "
                           "end at %llu (%s)",
                           t->name, (unsigned long long)t->begin, (unsigned long long)expected,
                           t->begin < expected ? "they overlap" : "a gap");
        expected = t->end;
    }
    if (expected > h->data_size) {
        const st_tensor *t = &h->tensors[h->tensor_count - 1];
        return st_fail(err, VKT_ERROR_CORRUPT_DATA, file_size,
                       "truncated: tensor '%.64s' ends at data byte %llu but the file holds "
                       "only %llu data bytes (the file has %llu bytes)",
                       t->name, (unsigned long long)t->end, (unsigned long long)h->data_size,
                       (unsigned long long)file_size);
    }
    if (expected < h->data_size)
        return st_fail(err, VKT_ERROR_CORRUPT_DATA, h->data_start + expected,
                       "%llu bytes after the end of the last tensor",
                       (unsigned long long)(h->data_size - expected));
    return VKT_OK;
}

/* Sorts by offset and by name, then checks tiling and unique names/keys.
 * Tiling is checked first: a truncated file is then reported as truncated,
 * which says more than whatever else a cut may have broken. */
static vkt_result check_entries(st_header *h, uint64_t file_size, st_error *err) {
    if (h->tensor_count > 1) /* qsort may not be given the NULL of an empty list */
        qsort(h->tensors, h->tensor_count, sizeof *h->tensors, by_begin);
    vkt_result r = check_tiling(h, file_size, err);
    if (r != VKT_OK)
        return r;
    h->by_name = malloc((h->tensor_count ? h->tensor_count : 1) * sizeof *h->by_name);
    if (!h->by_name)
        return st_fail(err, VKT_ERROR_OUT_OF_HOST_MEMORY, 0, "out of host memory");
    for (uint32_t i = 0; i < h->tensor_count; i++)
        h->by_name[i] = &h->tensors[i];
    if (h->tensor_count > 1)
        qsort(h->by_name, h->tensor_count, sizeof *h->by_name, by_name);
    for (uint32_t i = 1; i < h->tensor_count; i++) {
        const st_tensor *t = h->by_name[i];
        if (strcmp(t->name, h->by_name[i - 1]->name) == 0)
            return st_fail(err, VKT_ERROR_CORRUPT_DATA, t->entry_offset,
                           "tensor '%.64s' appears twice", t->name);
    }
    if (h->metadata_count < 2)
        return VKT_OK;
    st_meta *sorted = malloc(h->metadata_count * sizeof *sorted);
    if (!sorted)
        return st_fail(err, VKT_ERROR_OUT_OF_HOST_MEMORY, 0, "out of host memory");
    memcpy(sorted, h->metadata, h->metadata_count * sizeof *sorted);
    qsort(sorted, h->metadata_count, sizeof *sorted, meta_by_key);
    for (uint32_t i = 1; i < h->metadata_count; i++)
        if (strcmp(sorted[i].key, sorted[i - 1].key) == 0) {
            r = st_fail(err, VKT_ERROR_CORRUPT_DATA, sorted[i].offset,
                        "metadata key '%.64s' appears twice", sorted[i].key);
            break;
        }
    free(sorted);
    return r;
}

vkt_result st_parse_header(const char *text, uint64_t header_size, uint64_t file_size,
                           st_header *out, st_error *err) {
    *out = (st_header){0};
    *err = (st_error){0};
    if (header_size > ST_MAX_HEADER_SIZE || header_size > file_size - ST_PREFIX_SIZE ||
        file_size < ST_PREFIX_SIZE)
        return st_fail(err, VKT_ERROR_CORRUPT_DATA, 0, "the header length %llu does not fit",
                       (unsigned long long)header_size);
    st_header h = {.header_size = header_size, .data_start = ST_PREFIX_SIZE + header_size};
    h.data_size = file_size - h.data_start;
    h.strings = malloc((size_t)header_size + 1);
    if (!h.strings)
        return st_fail(err, VKT_ERROR_OUT_OF_HOST_MEMORY, 0,
                       "out of host memory for a %llu-byte header",
                       (unsigned long long)header_size);
    parser p = {.h = &h, .err = err};
    json_init(&p.c, text, (size_t)header_size);
    vkt_result r = VKT_OK;
    if (!read_top(&p)) {
        /* bad() filled err itself; a syntax error only the cursor knows */
        if (err->result == VKT_OK)
            st_fail(err, VKT_ERROR_CORRUPT_DATA, file_pos(p.c.error_pos),
                    "invalid JSON in the header: %s", p.c.error);
        r = err->result;
    } else {
        r = check_entries(&h, file_size, err);
    }
    if (r != VKT_OK) {
        st_header_free(&h);
        return r;
    }
    *out = h;
    return VKT_OK;
}

vkt_result st_parse_memory(const void *data, size_t size, st_header *out, st_error *err) {
    *out = (st_header){0};
    *err = (st_error){0};
    uint64_t n;
    vkt_result r = st_parse_prefix(data, size, &n, err);
    if (r != VKT_OK)
        return r;
    return st_parse_header((const char *)data + ST_PREFIX_SIZE, n, size, out, err);
}

void st_header_free(st_header *h) {
    free(h->tensors);
    free(h->by_name);
    free(h->metadata);
    free(h->strings);
    *h = (st_header){0};
}

const st_tensor *st_find(const st_header *h, const char *name) {
    uint32_t lo = 0, hi = h->tensor_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const st_tensor *t = h->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const st_meta *st_meta_find(const st_header *h, const char *key) {
    for (uint32_t i = 0; i < h->metadata_count; i++)
        if (strcmp(h->metadata[i].key, key) == 0)
            return &h->metadata[i];
    return NULL;
}

const char *st_format_shape(const st_tensor *t, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (uint32_t i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %llu" : "%llu",
                                 (unsigned long long)t->dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
    return buf;
}

/* ---- Writing ---- */

bool st_entry_bytes(const st_entry *e, uint64_t *out_bytes) {
    uint64_t bits = dtype_bits(e->dtype), numel = 1;
    if (!bits || e->ndim > ST_MAX_DIMS)
        return false;
    for (uint32_t i = 0; i < e->ndim; i++) {
        if (e->dims[i] && numel > UINT64_MAX / e->dims[i])
            return false;
        numel *= e->dims[i];
    }
    if (numel > UINT64_MAX / bits || numel * bits % 8)
        return false;
    *out_bytes = numel * bits / 8;
    return true;
}

static void append_entry(json_buffer *b, const st_entry *e, uint64_t begin, uint64_t end) {
    json_append_string(b, e->name);
    json_append(b, ":{\"dtype\":", 10);
    json_append_string(b, e->dtype);
    json_append(b, ",\"shape\":[", 10);
    for (uint32_t d = 0; d < e->ndim; d++) {
        if (d)
            json_append_char(b, ',');
        json_append_u64(b, e->dims[d]);
    }
    json_append(b, "],\"data_offsets\":[", 18);
    json_append_u64(b, begin);
    json_append_char(b, ',');
    json_append_u64(b, end);
    json_append(b, "]}", 2);
}

bool st_build_header(const st_entry *entries, uint32_t count, const st_meta *metadata,
                     uint32_t metadata_count, char **out_text, uint64_t *out_size,
                     uint64_t *out_data_size) {
    json_buffer b = {0};
    json_append(&b, "{\"__metadata__\":{", 17);
    for (uint32_t i = 0; i < metadata_count; i++) {
        if (i)
            json_append_char(&b, ',');
        json_append_string(&b, metadata[i].key);
        json_append_char(&b, ':');
        json_append_string(&b, metadata[i].value);
    }
    json_append_char(&b, '}');
    uint64_t offset = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t bytes;
        if (!st_entry_bytes(&entries[i], &bytes) || bytes > UINT64_MAX - offset) {
            json_buffer_free(&b);
            return false;
        }
        json_append_char(&b, ',');
        append_entry(&b, &entries[i], offset, offset + bytes);
        offset += bytes;
    }
    json_append_char(&b, '}');
    /* Pad so the data section starts 8-byte aligned, as the Python writer
     * does: readers that map the file can then view the data in place. */
    while (!b.failed && (ST_PREFIX_SIZE + b.len) % 8)
        json_append_char(&b, ' ');
    if (b.failed || b.len > ST_MAX_HEADER_SIZE) {
        json_buffer_free(&b);
        return false;
    }
    *out_text = b.data;
    *out_size = b.len;
    *out_data_size = offset;
    return true;
}
