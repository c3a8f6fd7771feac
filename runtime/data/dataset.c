/* dataset.c: data sets in host memory: built from IDX image/label files
 * (Fashion-MNIST among them) or from the caller's arrays, subsets, queries.
 * A data set is immutable once made, which is what lets batchers and their
 * prefetch threads read it without locks. */
#include "data_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Labels are stored as f32, which holds every integer below 2^24 exactly. */
#define MAX_CLASSES (1u << 24)

static vkt_result alloc_dataset(uint32_t count, size_t sample_size, vkt_dataset **out) {
    if (sample_size > SIZE_MAX / sizeof(float) / count)
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "%u samples of %zu floats do not fit this machine's address space", count,
                         sample_size);
    vkt_dataset *ds = calloc(1, sizeof *ds);
    if (ds) {
        ds->features = malloc((size_t)count * sample_size * sizeof(float));
        ds->labels = malloc((size_t)count * sizeof(float));
    }
    if (!ds || !ds->features || !ds->labels) {
        vkt_dataset_destroy(ds);
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "out of memory for a data set of %u samples of %zu floats", count,
                         sample_size);
    }
    ds->count = count;
    ds->sample_size = sample_size;
    *out = ds;
    return VKT_OK;
}

void vkt_dataset_destroy(vkt_dataset *ds) {
    if (!ds)
        return;
    free(ds->features);
    free(ds->labels);
    free(ds);
}

static vkt_result check_normalisation(const char *fn, float mean, float std) {
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "%s: mean %g and std %g must be finite and std >= 0 (0: no "
                         "standardisation)",
                         fn, (double)mean, (double)std);
    return VKT_OK;
}

/* ---- From IDX files --------------------------------------------------------- */

static const char *decompressed_note(const vkt_idx *idx) {
    return idx->compressed ? " of the decompressed data" : "";
}

/* Class count from the labels: either checked against the caller's or
 * found as the largest + 1. */
static vkt_result idx_classes(const vkt_idx *labels, const char *labels_name, uint32_t wanted,
                              uint32_t *out_classes) {
    uint32_t largest = 0;
    for (uint32_t i = 0; i < labels->dims[0]; i++) {
        uint32_t label = labels->data[i];
        if (wanted && label >= wanted)
            return vkt_error(NULL, VKT_ERROR_CORRUPT_DATA,
                             "'%s', byte offset %llu%s: label %u of sample %u is not below the "
                             "class count %u",
                             labels_name, (unsigned long long)(labels->data_offset + i),
                             decompressed_note(labels), label, i, wanted);
        if (label > largest)
            largest = label;
    }
    *out_classes = wanted ? wanted : largest + 1;
    return VKT_OK;
}

vkt_result vkt_dataset_from_idx(const vkt_idx *images, const char *images_name,
                                const vkt_idx *labels, const char *labels_name,
                                const vkt_idx_desc *desc, vkt_dataset **out_dataset) {
    VKT_ASSERT(images->ndim >= 2 && images->ndim <= VKT_IDX_MAX_DIMS && labels->ndim == 1);
    vkt_result r = check_normalisation("vkt_dataset_load_idx", desc->mean, desc->std);
    if (r != VKT_OK)
        return r;
    if (images->dims[0] != labels->dims[0])
        return vkt_error(NULL, VKT_ERROR_CORRUPT_DATA,
                         "'%s' holds %u images but '%s' holds %u labels (the counts at byte "
                         "offset 4 of each file differ: are they a pair?)",
                         images_name, images->dims[0], labels_name, labels->dims[0]);
    uint32_t classes = 0;
    r = idx_classes(labels, labels_name, desc->classes, &classes);
    if (r != VKT_OK)
        return r;

    uint32_t count = images->dims[0];
    size_t sample_size = (size_t)(images->size / count);
    vkt_dataset *ds = NULL;
    r = alloc_dataset(count, sample_size, &ds);
    if (r != VKT_OK)
        return r;
    ds->classes = classes;
    if (desc->flatten) {
        ds->sample_ndim = 1;
        ds->sample_dims[0] = (int64_t)sample_size;
    } else if (images->ndim == 3) {
        /* (H, W) images get a channel dimension so (B, C, H, W) batches
         * feed convolutions directly. */
        ds->sample_ndim = 3;
        ds->sample_dims[0] = 1;
        ds->sample_dims[1] = images->dims[1];
        ds->sample_dims[2] = images->dims[2];
    } else {
        ds->sample_ndim = images->ndim - 1;
        for (int32_t i = 1; i < images->ndim; i++)
            ds->sample_dims[i - 1] = images->dims[i];
    }

    /* One table for all 256 byte values, computed in double, so every
     * pixel of a value gets the same correctly rounded float. */
    float table[256];
    for (int v = 0; v < 256; v++) {
        double x = v / 255.0;
        if (desc->std > 0)
            x = (x - (double)desc->mean) / (double)desc->std;
        table[v] = (float)x;
    }
    for (size_t i = 0; i < (size_t)images->size; i++)
        ds->features[i] = table[images->data[i]];
    for (uint32_t i = 0; i < count; i++)
        ds->labels[i] = (float)labels->data[i];
    *out_dataset = ds;
    return VKT_OK;
}

vkt_result vkt_dataset_load_idx(const vkt_idx_desc *desc, vkt_dataset **out_dataset) {
    if (!desc || !out_dataset || !desc->images_path || !desc->labels_path)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_dataset_load_idx: %s is NULL",
                         !desc                ? "desc"
                         : !out_dataset       ? "out_dataset"
                         : !desc->images_path ? "desc->images_path"
                                              : "desc->labels_path");
    vkt_result r = check_normalisation("vkt_dataset_load_idx", desc->mean, desc->std);
    if (r != VKT_OK)
        return r;
    if (desc->classes > MAX_CLASSES)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_dataset_load_idx: desc->classes = %u is above %u", desc->classes,
                         MAX_CLASSES);
    /* Labels first: the small file, so a wrong path fails fast. */
    vkt_idx labels = {0}, images = {0};
    r = vkt_idx_read_file(desc->labels_path,
                          &(vkt_idx_expect){.kind = "labels", .min_ndim = 1, .max_ndim = 1},
                          &labels);
    if (r == VKT_OK)
        r = vkt_idx_read_file(
            desc->images_path,
            &(vkt_idx_expect){.kind = "images", .min_ndim = 2, .max_ndim = VKT_IDX_MAX_DIMS},
            &images);
    if (r == VKT_OK)
        r = vkt_dataset_from_idx(&images, desc->images_path, &labels, desc->labels_path, desc,
                                 out_dataset);
    vkt_idx_free(&images);
    vkt_idx_free(&labels);
    return r;
}

/* ---- Fashion-MNIST ------------------------------------------------------------ */

#define FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

/* The folder the caller named, or $VKT_DATA_DIR/fashion-mnist, or the
 * Debian package's. *out_default tells the last case apart, for the hint. */
static vkt_result fashion_mnist_dir(const char *dir, char *buf, size_t size, bool *out_default) {
    *out_default = false;
    if (dir) {
        if (strlen(dir) >= size)
            return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                             "vkt_dataset_load_fashion_mnist: desc->dir is longer than %zu "
                             "characters",
                             size - 1);
        snprintf(buf, size, "%s", dir);
        return VKT_OK;
    }
    const char *root = getenv("VKT_DATA_DIR");
    if (root && *root) {
        int n = snprintf(buf, size, "%s/fashion-mnist", root);
        if (n < 0 || (size_t)n >= size)
            return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                             "VKT_DATA_DIR is longer than %zu characters", size - 16);
        return VKT_OK;
    }
    snprintf(buf, size, "%s", FASHION_MNIST_DEFAULT_DIR);
    *out_default = true;
    return VKT_OK;
}

/* dir/name.gz if it exists, else dir/name (someone gunzipped the files);
 * if neither, an IO error naming the .gz path and how to get the data. */
static vkt_result fashion_mnist_file(const char *dir, const char *name, bool is_default, char *path,
                                     size_t size) {
    int n = snprintf(path, size, "%s/%s.gz", dir, name);
    if (n < 0 || (size_t)n >= size)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_dataset_load_fashion_mnist: the path '%s' is too long", dir);
    if (access(path, F_OK) == 0)
        return VKT_OK;
    int gz_errno = errno;
    snprintf(path, size, "%s/%s", dir, name);
    if (access(path, F_OK) == 0)
        return VKT_OK;
    snprintf(path, size, "%s/%s.gz", dir, name);
    if (is_default)
        return vkt_error(NULL, VKT_ERROR_IO,
                         "cannot open '%s': %s. Fashion-MNIST is not installed: install it with "
                         "'sudo apt-get install dataset-fashion-mnist', or point VKT_DATA_DIR "
                         "at a folder with a fashion-mnist/ subfolder holding the files",
                         path, strerror(gz_errno));
    return vkt_error(NULL, VKT_ERROR_IO,
                     "cannot open '%s' (nor the file without .gz): %s. Fashion-MNIST's files "
                     "come with Debian's package (apt-get install dataset-fashion-mnist, into "
                     "%s) or from github.com/zalandoresearch/fashion-mnist",
                     path, strerror(gz_errno), FASHION_MNIST_DEFAULT_DIR);
}

vkt_result vkt_dataset_load_fashion_mnist(const vkt_fashion_mnist_desc *desc,
                                          vkt_dataset **out_dataset) {
    if (!desc || !out_dataset)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_dataset_load_fashion_mnist: %s is NULL",
                         !desc ? "desc" : "out_dataset");
    char dir[4096], images[4200], labels[4200];
    bool is_default = false;
    vkt_result r = fashion_mnist_dir(desc->dir, dir, sizeof dir, &is_default);
    const char *split = desc->test ? "t10k" : "train";
    char name[64];
    if (r == VKT_OK) {
        snprintf(name, sizeof name, "%s-images-idx3-ubyte", split);
        r = fashion_mnist_file(dir, name, is_default, images, sizeof images);
    }
    if (r == VKT_OK) {
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte", split);
        r = fashion_mnist_file(dir, name, is_default, labels, sizeof labels);
    }
    if (r != VKT_OK)
        return r;
    return vkt_dataset_load_idx(&(vkt_idx_desc){.images_path = images,
                                                .labels_path = labels,
                                                .mean = desc->mean,
                                                .std = desc->std,
                                                .flatten = desc->flatten,
                                                .classes = 10},
                                out_dataset);
}

/* ---- From memory ------------------------------------------------------------ */

static vkt_result check_desc_shape(const vkt_dataset_desc *desc, size_t *out_sample_size) {
    if (desc->count == 0)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_dataset_create: desc->count is 0");
    if (desc->sample_ndim < 1 || desc->sample_ndim > VKT_MAX_SAMPLE_DIMS)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_dataset_create: desc->sample_ndim = %d is not 1 to %d",
                         desc->sample_ndim, VKT_MAX_SAMPLE_DIMS);
    if (!desc->features || !desc->labels)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_dataset_create: desc->%s is NULL",
                         !desc->features ? "features" : "labels");
    if (desc->classes > MAX_CLASSES)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_dataset_create: desc->classes = %u is above %u", desc->classes,
                         MAX_CLASSES);
    size_t size = 1;
    for (int32_t i = 0; i < desc->sample_ndim; i++) {
        int64_t d = desc->sample_dims[i];
        if (d < 1 || (uint64_t)d > SIZE_MAX / size)
            return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                             "vkt_dataset_create: desc->sample_dims[%d] = %lld is %s", i,
                             (long long)d, d < 1 ? "below 1" : "too large");
        size *= (size_t)d;
    }
    *out_sample_size = size;
    return VKT_OK;
}

static vkt_result check_desc_values(const vkt_dataset_desc *desc, size_t sample_size,
                                    uint32_t *out_classes) {
    float largest = 0;
    for (uint32_t i = 0; i < desc->count; i++) {
        float l = desc->labels[i];
        float bound = desc->classes ? (float)desc->classes : (float)MAX_CLASSES;
        if (!(l >= 0 && l < bound) || l != floorf(l))
            return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                             "vkt_dataset_create: desc->labels[%u] = %g is not a class index "
                             "(a whole number from 0 to %g)",
                             i, (double)l, (double)bound - 1);
        largest = l > largest ? l : largest;
    }
    size_t n = (size_t)desc->count * sample_size;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(desc->features[i]))
            return vkt_error(NULL, VKT_ERROR_NON_FINITE,
                             "vkt_dataset_create: desc->features[%zu] (sample %zu, element %zu) "
                             "is %g",
                             i, i / sample_size, i % sample_size, (double)desc->features[i]);
    *out_classes = desc->classes ? desc->classes : (uint32_t)largest + 1;
    return VKT_OK;
}

vkt_result vkt_dataset_create(const vkt_dataset_desc *desc, vkt_dataset **out_dataset) {
    if (!desc || !out_dataset)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_dataset_create: %s is NULL",
                         !desc ? "desc" : "out_dataset");
    size_t sample_size = 0;
    uint32_t classes = 0;
    vkt_result r = check_desc_shape(desc, &sample_size);
    if (r == VKT_OK && sample_size > SIZE_MAX / sizeof(float) / desc->count)
        r = vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                      "vkt_dataset_create: %u samples of %zu floats overflow the address space",
                      desc->count, sample_size);
    if (r == VKT_OK)
        r = check_desc_values(desc, sample_size, &classes);
    vkt_dataset *ds = NULL;
    if (r == VKT_OK)
        r = alloc_dataset(desc->count, sample_size, &ds);
    if (r != VKT_OK)
        return r;
    ds->classes = classes;
    ds->sample_ndim = desc->sample_ndim;
    memcpy(ds->sample_dims, desc->sample_dims, sizeof ds->sample_dims);
    for (int32_t i = ds->sample_ndim; i < VKT_MAX_SAMPLE_DIMS; i++)
        ds->sample_dims[i] = 0;
    memcpy(ds->features, desc->features, (size_t)desc->count * sample_size * sizeof(float));
    memcpy(ds->labels, desc->labels, (size_t)desc->count * sizeof(float));
    *out_dataset = ds;
    return VKT_OK;
}

/* ---- Subsets and queries ------------------------------------------------------ */

vkt_result vkt_dataset_subset(const vkt_dataset *ds, uint32_t first, uint32_t count,
                              vkt_dataset **out_dataset) {
    if (!ds || !out_dataset)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_dataset_subset: %s is NULL",
                         !ds ? "ds" : "out_dataset");
    if (count == 0 || first >= ds->count || count > ds->count - first)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_dataset_subset: samples %u..%llu are not a non-empty range "
                         "within the data set's %u",
                         first, (unsigned long long)first + count - 1, ds->count);
    vkt_dataset *sub = NULL;
    vkt_result r = alloc_dataset(count, ds->sample_size, &sub);
    if (r != VKT_OK)
        return r;
    sub->sample_ndim = ds->sample_ndim;
    memcpy(sub->sample_dims, ds->sample_dims, sizeof sub->sample_dims);
    sub->classes = ds->classes;
    memcpy(sub->features, ds->features + (size_t)first * ds->sample_size,
           (size_t)count * ds->sample_size * sizeof(float));
    memcpy(sub->labels, ds->labels + first, (size_t)count * sizeof(float));
    *out_dataset = sub;
    return VKT_OK;
}

vkt_result vkt_dataset_query(const vkt_dataset *ds, vkt_dataset_info *out_info) {
    if (!ds || !out_info)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_dataset_query: %s is NULL",
                         !ds ? "ds" : "out_info");
    vkt_dataset_info info = {
        .count = ds->count,
        .sample_ndim = ds->sample_ndim,
        .sample_size = ds->sample_size,
        .classes = ds->classes,
        .features = ds->features,
        .labels = ds->labels,
    };
    memcpy(info.sample_dims, ds->sample_dims, sizeof info.sample_dims);
    *out_info = info;
    return VKT_OK;
}
