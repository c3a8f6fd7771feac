/* checkpoint.c: a model's parameters, optimizer state and step count saved
 * as a safetensors file (replaced atomically), and loaded back only after
 * the whole file has been checked against the model. The container format
 * itself is safetensors.c. */
#include "model.h"

#include "json.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const reserved_keys[] = {"format", "step", "epoch"};
enum { RESERVED_COUNT = sizeof reserved_keys / sizeof reserved_keys[0] };

/* ---- What a checkpoint holds ---- */

/* Parameters and optimizer state. The hyper buffer is not state: every step
 * rewrites it from the step count, which the metadata carries. */
static bool saved_var(const vkt_graph *g, uint32_t v) {
    var_kind k = g->vars[v].kind;
    return (k == VAR_PARAMETER || k == VAR_STATE) && (vkt_var)v != g->hyper;
}

/* The saved vars in graph order, and the same sorted by name for lookups. */
typedef struct saved_set {
    vkt_var *vars;
    vkt_var *by_name;
    uint32_t count;
    const vkt_graph *g;
} saved_set;

static int compare_names(const vkt_graph *g, vkt_var a, vkt_var b) {
    return strcmp(g->vars[a].name, g->vars[b].name);
}

/* A merge sort by name: qsort has no context argument to reach the graph
 * through, and a global would not be thread-safe. */
static void sort_by_name(const vkt_graph *g, vkt_var *items, vkt_var *tmp, uint32_t n) {
    if (n < 2)
        return;
    uint32_t half = n / 2;
    sort_by_name(g, items, tmp, half);
    sort_by_name(g, items + half, tmp, n - half);
    uint32_t i = 0, j = half, k = 0;
    while (i < half && j < n)
        tmp[k++] = compare_names(g, items[j], items[i]) < 0 ? items[j++] : items[i++];
    while (i < half)
        tmp[k++] = items[i++];
    while (j < n)
        tmp[k++] = items[j++];
    memcpy(items, tmp, n * sizeof *items);
}

static void saved_set_free(saved_set *s) {
    free(s->vars);
    free(s->by_name);
    *s = (saved_set){0};
}

/* Two saved vars with one name could not be told apart in a file (names
 * are cut at 63 bytes, so long parameter names can collide in their
 * optimizer state's names). */
static vkt_result saved_set_make(vkt_model *m, const char *fn, saved_set *out) {
    const vkt_graph *g = m->g;
    saved_set s = {.g = g};
    s.vars = malloc(g->var_count * sizeof *s.vars);
    s.by_name = malloc(g->var_count * sizeof *s.by_name);
    vkt_var *tmp = malloc(g->var_count * sizeof *tmp);
    if (!s.vars || !s.by_name || !tmp) {
        free(tmp);
        saved_set_free(&s);
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
    }
    for (uint32_t v = 1; v < g->var_count; v++)
        if (saved_var(g, v))
            s.vars[s.count++] = (vkt_var)v;
    memcpy(s.by_name, s.vars, s.count * sizeof *s.vars);
    sort_by_name(g, s.by_name, tmp, s.count);
    free(tmp);
    for (uint32_t i = 1; i < s.count; i++)
        if (compare_names(g, s.by_name[i - 1], s.by_name[i]) == 0) {
            const char *name = g->vars[s.by_name[i]].name;
            saved_set_free(&s);
            return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                             "%s: two parameters or optimizer states of the model are both named "
                             "'%s' (shorten the parameter names)",
                             fn, name);
        }
    *out = s;
    return VKT_OK;
}

static vkt_var saved_set_find(const saved_set *s, const char *name) {
    uint32_t lo = 0, hi = s->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->g->vars[s->by_name[mid]].name);
        if (c == 0)
            return s->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/* Files are little-endian; on a big-endian host every 4-byte float is
 * reversed on the way in and out. */
static bool host_little_endian(void) {
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap_floats(unsigned char *bytes, size_t count) {
    for (size_t i = 0; i < count; i++, bytes += 4) {
        unsigned char t = bytes[0];
        bytes[0] = bytes[3];
        bytes[3] = t;
        t = bytes[1];
        bytes[1] = bytes[2];
        bytes[2] = t;
    }
}

/* ---- Saving ---- */

static bool is_reserved(const char *key) {
    for (int i = 0; i < RESERVED_COUNT; i++)
        if (strcmp(key, reserved_keys[i]) == 0)
            return true;
    return false;
}

/* What is wrong with metadata pair i, or NULL. */
static const char *metadata_problem(const vkt_checkpoint_desc *d, uint32_t i) {
    const char *k = d->metadata[i].key, *v = d->metadata[i].value;
    if (!k || !*k)
        return "its key is NULL or empty";
    if (!v)
        return "its value is NULL";
    if (strlen(k) >= VKT_CHECKPOINT_KEY_SIZE)
        return "its key is longer than VKT_CHECKPOINT_KEY_SIZE - 1 bytes";
    if (strlen(v) >= VKT_CHECKPOINT_VALUE_SIZE)
        return "its value is longer than VKT_CHECKPOINT_VALUE_SIZE - 1 bytes";
    if (is_reserved(k))
        return "its key is reserved";
    if (!json_utf8_valid(k) || !json_utf8_valid(v))
        return "it is not valid UTF-8";
    for (uint32_t j = 0; j < i; j++)
        if (strcmp(d->metadata[j].key, k) == 0)
            return "its key is used twice";
    return NULL;
}

/* Everything saved must come back through vkt_model_load's fixed-size
 * info, so the limits are checked here rather than discovered on load. */
static vkt_result check_metadata(vkt_context *ctx, const vkt_checkpoint_desc *d) {
    if (d->metadata_count > VKT_CHECKPOINT_MAX_METADATA - RESERVED_COUNT)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_save: desc->metadata_count is %u, at most %d are kept",
                         d->metadata_count, VKT_CHECKPOINT_MAX_METADATA - RESERVED_COUNT);
    if (d->metadata_count && !d->metadata)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_save: desc->metadata is NULL");
    for (uint32_t i = 0; i < d->metadata_count; i++) {
        const char *why = metadata_problem(d, i), *k = d->metadata[i].key;
        if (why)
            return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                             "vkt_model_save: desc->metadata[%u] (key '%.64s'): %s", i,
                             k ? k : "(null)", why);
    }
    return VKT_OK;
}

/* The JSON header for the saved vars in graph order plus the metadata. */
static vkt_result build_header(vkt_model *m, const saved_set *s, const vkt_checkpoint_desc *d,
                               char **out_text, uint64_t *out_size) {
    st_entry *entries = calloc(s->count ? s->count : 1, sizeof *entries);
    st_meta meta[VKT_CHECKPOINT_MAX_METADATA];
    char step[24], epoch[24];
    if (!entries)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_model_save: out of memory");
    for (uint32_t i = 0; i < s->count; i++) {
        const graph_var *gv = &m->g->vars[s->vars[i]];
        if (!json_utf8_valid(gv->name)) {
            free(entries);
            return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                             "vkt_model_save: the name of tensor '%s' is not valid UTF-8",
                             gv->name);
        }
        entries[i] = (st_entry){.name = gv->name, .dtype = "F32", .ndim = (uint32_t)gv->shape.ndim};
        for (int32_t k = 0; k < gv->shape.ndim; k++)
            entries[i].dims[k] = (uint64_t)gv->shape.dims[k];
    }
    snprintf(step, sizeof step, "%llu", (unsigned long long)m->step);
    snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)d->epoch);
    meta[0] = (st_meta){.key = "format", .value = "vktrain"};
    meta[1] = (st_meta){.key = "step", .value = step};
    meta[2] = (st_meta){.key = "epoch", .value = epoch};
    for (uint32_t i = 0; i < d->metadata_count; i++)
        meta[RESERVED_COUNT + i] =
            (st_meta){.key = d->metadata[i].key, .value = d->metadata[i].value};
    uint64_t data_size;
    bool ok = st_build_header(entries, s->count, meta, RESERVED_COUNT + d->metadata_count, out_text,
                              out_size, &data_size);
    free(entries);
    if (!ok)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_model_save: out of host memory building the header");
    return VKT_OK;
}

/* Names both the checkpoint and the file the failing call was on (the
 * temporary file or the directory), with the system's reason. */
static vkt_result io_error(vkt_context *ctx, const char *path, const char *what, const char *file,
                           int err) {
    return vkt_error(ctx, VKT_ERROR_IO, "vkt_model_save: '%s': %s '%s': %s", path, what, file,
                     err ? strerror(err) : "short write");
}

/* Streams the tensors one at a time through a buffer as large as the
 * largest, so saving needs no copy of the whole model in host memory. */
static vkt_result write_contents(vkt_model *m, const saved_set *s, FILE *f, const char *path,
                                 const char *tmp, const char *header, uint64_t header_size) {
    unsigned char prefix[ST_PREFIX_SIZE];
    st_put_u64le(prefix, header_size);
    errno = 0;
    if (fwrite(prefix, 1, sizeof prefix, f) != sizeof prefix ||
        fwrite(header, 1, (size_t)header_size, f) != header_size)
        return io_error(m->ctx, path, "writing", tmp, errno);
    size_t largest = 0;
    for (uint32_t i = 0; i < s->count; i++)
        if (m->values[s->vars[i]].view.bytes > largest)
            largest = (size_t)m->values[s->vars[i]].view.bytes;
    unsigned char *buf = malloc(largest ? largest : 1);
    if (!buf)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_model_save: out of memory");
    vkt_result r = VKT_OK;
    for (uint32_t i = 0; r == VKT_OK && i < s->count; i++) {
        const vkt_view *view = &m->values[s->vars[i]].view;
        r = m->ctx->ops->read(m->ctx, view, buf, view->bytes);
        if (r != VKT_OK)
            break;
        if (!host_little_endian())
            swap_floats(buf, (size_t)view->bytes / 4);
        errno = 0;
        if (fwrite(buf, 1, (size_t)view->bytes, f) != view->bytes)
            r = io_error(m->ctx, path, "writing", tmp, errno);
    }
    free(buf);
    return r;
}

/* Makes the rename itself durable: without syncing the directory a power
 * loss may forget the new name after the old file's blocks are reused. */
static vkt_result sync_directory(vkt_context *ctx, const char *path) {
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    char *dir = malloc(len + 2);
    if (!dir)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_model_save: out of memory");
    if (!slash)
        strcpy(dir, ".");
    else if (len == 0)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    vkt_result r = VKT_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        r = io_error(ctx, path, "opening the directory", dir, errno);
    /* Some file systems cannot sync a directory (EINVAL); nothing to do. */
    else if (fsync(fd) != 0 && errno != EINVAL)
        r = io_error(ctx, path, "syncing the directory", dir, errno);
    if (fd >= 0)
        close(fd);
    free(dir);
    return r;
}

/* Numbers the temporary files of this process, so two threads saving to
 * one path (through two contexts) never write into the same file. */
static atomic_ulong save_serial;

/* Write, flush, sync and close the temporary file, then rename it over
 * the destination: readers see the old file or the new, never a mix. */
static vkt_result write_atomically(vkt_model *m, const saved_set *s, const char *path,
                                   const char *header, uint64_t header_size) {
    size_t tmp_size = strlen(path) + 64;
    char *tmp = malloc(tmp_size);
    if (!tmp)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_model_save: out of memory");
    snprintf(tmp, tmp_size, "%s.tmp-%ld-%lu", path, (long)getpid(),
             (unsigned long)atomic_fetch_add(&save_serial, 1));
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        vkt_result r = io_error(m->ctx, path, "creating", tmp, errno);
        free(tmp);
        return r;
    }
    vkt_result r = write_contents(m, s, f, path, tmp, header, header_size);
    if (r == VKT_OK && fflush(f) != 0)
        r = io_error(m->ctx, path, "writing", tmp, errno);
    if (r == VKT_OK && fsync(fileno(f)) != 0)
        r = io_error(m->ctx, path, "syncing", tmp, errno);
    /* fclose can report a deferred write error (NFS, quotas) */
    if (fclose(f) != 0 && r == VKT_OK)
        r = io_error(m->ctx, path, "closing", tmp, errno);
    if (r == VKT_OK && rename(tmp, path) != 0) {
        int err = errno;
        r = vkt_error(m->ctx, VKT_ERROR_IO, "vkt_model_save: '%s': renaming '%s' over it: %s", path,
                      tmp, strerror(err));
    }
    if (r != VKT_OK)
        remove(tmp);
    else
        r = sync_directory(m->ctx, path);
    free(tmp);
    return r;
}

vkt_result vkt_model_save(vkt_model *m, const char *path, const vkt_checkpoint_desc *desc) {
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_save: model is NULL");
    vkt_clear_error(m->ctx);
    if (!path || !*path)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_save: path is NULL or empty");
    vkt_checkpoint_desc d = desc ? *desc : (vkt_checkpoint_desc){0};
    vkt_result r = check_metadata(m->ctx, &d);
    if (r != VKT_OK)
        return r;
    saved_set s;
    r = saved_set_make(m, "vkt_model_save", &s);
    if (r != VKT_OK)
        return r;
    char *header = NULL;
    uint64_t header_size = 0;
    r = build_header(m, &s, &d, &header, &header_size);
    if (r == VKT_OK)
        r = write_atomically(m, &s, path, header, header_size);
    free(header);
    saved_set_free(&s);
    return r;
}

/* ---- Loading ---- */

/* A checked file held in host memory until it is applied. */
typedef struct loaded {
    st_header h;
    unsigned char *data; /* the data section */
    uint64_t step, epoch;
} loaded;

static vkt_result file_error(vkt_context *ctx, vkt_result r, const char *path, uint64_t offset,
                             const char *what) {
    return vkt_error(ctx, r, "vkt_model_load: '%s', byte offset %llu: %s", path,
                     (unsigned long long)offset, what);
}

/* fread came up short: a read error, or the file shrank since fstat. */
static vkt_result short_read(vkt_context *ctx, FILE *f, const char *path, uint64_t offset) {
    if (ferror(f))
        return vkt_error(ctx, VKT_ERROR_IO, "vkt_model_load: reading '%s' at byte %llu: %s", path,
                         (unsigned long long)offset, strerror(errno));
    return file_error(ctx, VKT_ERROR_CORRUPT_DATA, path, offset,
                      "truncated: the file ended early (did it change while being read?)");
}

static vkt_result read_header(vkt_model *m, FILE *f, const char *path, st_header *out) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return vkt_error(m->ctx, VKT_ERROR_IO, "vkt_model_load: cannot stat '%s': %s", path,
                         strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vkt_error(m->ctx, VKT_ERROR_IO, "vkt_model_load: '%s' is not a regular file", path);
    uint64_t size = (uint64_t)st.st_size, header_size;
    unsigned char prefix[ST_PREFIX_SIZE];
    size_t want = size < ST_PREFIX_SIZE ? (size_t)size : ST_PREFIX_SIZE;
    if (fread(prefix, 1, want, f) != want)
        return short_read(m->ctx, f, path, 0);
    st_error err;
    if (st_parse_prefix(prefix, size, &header_size, &err) != VKT_OK)
        return file_error(m->ctx, err.result, path, err.offset, err.message);
    char *text = malloc((size_t)header_size);
    if (!text)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_model_load: out of host memory for the %llu-byte header of '%s'",
                         (unsigned long long)header_size, path);
    vkt_result r = VKT_OK;
    size_t got = fread(text, 1, (size_t)header_size, f);
    if (got != header_size)
        r = short_read(m->ctx, f, path, ST_PREFIX_SIZE + got);
    else if (st_parse_header(text, header_size, size, out, &err) != VKT_OK)
        r = file_error(m->ctx, err.result, path, err.offset, err.message);
    free(text);
    return r;
}

/* Every saved var of the model must be in the file as F32 of its shape,
 * and the file may hold nothing else: a checkpoint of another model or
 * optimizer fails here, before anything is written. */
static vkt_result match_model(vkt_model *m, const saved_set *s, const char *path,
                              const st_header *h) {
    char a[160], b[160], msg[VKT_ERROR_MESSAGE_SIZE];
    for (uint32_t i = 0; i < s->count; i++) {
        const graph_var *gv = &m->g->vars[s->vars[i]];
        const st_tensor *t = st_find(h, gv->name);
        if (!t)
            return vkt_error(m->ctx, VKT_ERROR_SHAPE,
                             "vkt_model_load: '%s' lacks the model's tensor '%s' %s", path,
                             gv->name, vkt_shape_format(&gv->shape, a, sizeof a));
        bool same = t->ndim == (uint32_t)gv->shape.ndim;
        for (uint32_t k = 0; same && k < t->ndim; k++)
            same = t->dims[k] == (uint64_t)gv->shape.dims[k];
        if (strcmp(t->dtype, "F32") != 0) {
            snprintf(msg, sizeof msg, "tensor '%s' is %.16s; checkpoints hold F32", gv->name,
                     t->dtype);
            return file_error(m->ctx, VKT_ERROR_UNSUPPORTED, path, t->entry_offset, msg);
        }
        if (!same) {
            snprintf(msg, sizeof msg, "tensor '%s' has shape %s in the file but %s in the model",
                     gv->name, st_format_shape(t, a, sizeof a),
                     vkt_shape_format(&gv->shape, b, sizeof b));
            return file_error(m->ctx, VKT_ERROR_SHAPE, path, t->shape_offset, msg);
        }
    }
    for (uint32_t i = 0; i < h->tensor_count; i++) {
        const st_tensor *t = &h->tensors[i];
        if (saved_set_find(s, t->name))
            continue;
        snprintf(msg, sizeof msg,
                 "tensor '%.64s' is not a parameter or optimizer state of the model (the file "
                 "has %u tensors, the model %u)",
                 t->name, h->tensor_count, s->count);
        return file_error(m->ctx, VKT_ERROR_SHAPE, path, t->entry_offset, msg);
    }
    return VKT_OK;
}

/* A metadata value that must be a decimal count; absent means 0. */
static vkt_result metadata_count(vkt_model *m, const char *path, const st_header *h,
                                 const char *key, uint64_t *out) {
    const st_meta *e = st_meta_find(h, key);
    *out = 0;
    if (!e)
        return VKT_OK;
    const char *p = e->value;
    uint64_t v = 0;
    bool ok = *p != '\0';
    for (; ok && *p; p++) {
        unsigned d = (unsigned)(*p - '0');
        ok = d <= 9 && v <= (UINT64_MAX - d) / 10;
        v = v * 10 + d;
    }
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof msg, "metadata \"%s\" is \"%.32s\", not a whole number below 2^64",
                 key, e->value);
        return file_error(m->ctx, VKT_ERROR_CORRUPT_DATA, path, e->offset, msg);
    }
    *out = v;
    return VKT_OK;
}

/* Reads and checks the whole file; the model is only read. The data section
 * is exactly the model's tensors (match_model), so its size is bounded by
 * the model, not by what the file claims. */
static vkt_result read_checkpoint(vkt_model *m, const saved_set *s, FILE *f, const char *path,
                                  loaded *l) {
    vkt_result r = read_header(m, f, path, &l->h);
    if (r == VKT_OK)
        r = match_model(m, s, path, &l->h);
    if (r == VKT_OK)
        r = metadata_count(m, path, &l->h, "step", &l->step);
    if (r == VKT_OK)
        r = metadata_count(m, path, &l->h, "epoch", &l->epoch);
    if (r != VKT_OK)
        return r;
    if (l->h.data_size > SIZE_MAX)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_model_load: '%s' is too large",
                         path);
    size_t n = (size_t)l->h.data_size;
    l->data = malloc(n ? n : 1);
    if (!l->data)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "vkt_model_load: out of host memory for the %zu data bytes of '%s'", n,
                         path);
    size_t got = fread(l->data, 1, n, f);
    if (got != n)
        return short_read(m->ctx, f, path, l->h.data_start + got);
    if (!host_little_endian())
        swap_floats(l->data, n / 4);
    return VKT_OK;
}

static void fill_info(const loaded *l, vkt_checkpoint_info *info) {
    memset(info, 0, sizeof *info);
    info->step = l->step;
    info->epoch = l->epoch;
    info->tensor_count = l->h.tensor_count;
    for (uint32_t i = 0; i < l->h.metadata_count; i++) {
        const st_meta *e = &l->h.metadata[i];
        /* A cut value could be taken for a real one (a loader position):
         * pairs that do not fit are left out whole, and counted. */
        if (info->metadata_count == VKT_CHECKPOINT_MAX_METADATA ||
            strlen(e->key) >= VKT_CHECKPOINT_KEY_SIZE ||
            strlen(e->value) >= VKT_CHECKPOINT_VALUE_SIZE) {
            info->metadata_skipped++;
            continue;
        }
        vkt_checkpoint_pair *p = &info->metadata[info->metadata_count++];
        strcpy(p->key, e->key);
        strcpy(p->value, e->value);
    }
}

vkt_result vkt_model_load(vkt_model *m, const char *path, vkt_checkpoint_info *out_info) {
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_load: model is NULL");
    vkt_clear_error(m->ctx);
    if (!path || !*path)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_load: path is NULL or empty");
    saved_set s;
    vkt_result r = saved_set_make(m, "vkt_model_load", &s);
    if (r != VKT_OK)
        return r;
    FILE *f = fopen(path, "rb");
    if (!f) {
        r = vkt_error(m->ctx, VKT_ERROR_IO, "vkt_model_load: cannot open '%s': %s", path,
                      strerror(errno));
        saved_set_free(&s);
        return r;
    }
    loaded l = {0};
    r = read_checkpoint(m, &s, f, path, &l);
    fclose(f);
    for (uint32_t i = 0; r == VKT_OK && i < s.count; i++) {
        const st_tensor *t = st_find(&l.h, m->g->vars[s.vars[i]].name);
        r = m->ctx->ops->write(m->ctx, &m->values[s.vars[i]].view, l.data + t->begin,
                               t->end - t->begin);
    }
    if (r == VKT_OK) {
        m->step = l.step;
        if (out_info)
            fill_info(&l, out_info);
    }
    free(l.data);
    st_header_free(&l.h);
    saved_set_free(&s);
    return r;
}

const char *vkt_checkpoint_info_find(const vkt_checkpoint_info *info, const char *key) {
    if (!info || !key)
        return NULL;
    for (uint32_t i = 0; i < info->metadata_count && i < VKT_CHECKPOINT_MAX_METADATA; i++)
        if (strcmp(info->metadata[i].key, key) == 0)
            return info->metadata[i].value;
    return NULL;
}
