/* test_data.c: the data layer. IDX loading (the real Fashion-MNIST, exact
 * round trips of small raw and gzip'd files, every kind of damage a file
 * can have), data sets made from memory, and batching (coverage, the
 * documented seeded order, drop_last, state restore, prefetch). The small
 * files are generated here, in a temporary folder per test. */
#include "harness.h"
#include "../runtime/data/data_internal.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ---- Helpers -------------------------------------------------------------- */

static char tmp_dir[128];

static void make_tmp(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/vkt_test_data_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp failed");
}

static void remove_tmp(void) {
    DIR *dir = opendir(tmp_dir);
    if (!dir)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
        unlink(path);
    }
    closedir(dir);
    rmdir(tmp_dir);
}

TestSuite(idx, .init = make_tmp, .fini = remove_tmp, .timeout = 300);
TestSuite(dataset, .timeout = 60);
TestSuite(batcher, .timeout = 120);

/* A path in this test's folder; returns a static buffer (one of four, so
 * a few can be alive at once). */
static const char *tmp_path(const char *name) {
    static char paths[4][256];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", tmp_dir, name);
    return p;
}

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

/* An IDX file: magic (0, 0, type, ndim), big-endian dims, then `data_len`
 * bytes of data (from data, or zeros when data is NULL). */
static bytes idx_file(uint8_t type, int ndim, const uint32_t *dims, const uint8_t *data,
                      size_t data_len) {
    bytes b = {.n = 4 + 4 * (size_t)ndim + data_len};
    b.p = calloc(1, b.n);
    cr_assert_not_null(b.p);
    b.p[2] = type;
    b.p[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++)
            b.p[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
    if (data)
        memcpy(b.p + 4 + 4 * ndim, data, data_len);
    return b;
}

static void write_file(const char *path, const uint8_t *p, size_t n, bool gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb9");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, p, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(p, 1, n, f), n);
        cr_assert_eq(fclose(f), 0);
    }
}

static bytes read_whole(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    bytes b = {.p = malloc(1 << 16)};
    b.n = fread(b.p, 1, 1 << 16, f);
    fclose(f);
    return b;
}

/* Deterministic bytes (xorshift64*). */
static void random_bytes(uint8_t *out, size_t n, uint64_t seed) {
    uint64_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out[i] = (uint8_t)((x * 0x2545F4914F6CDD1Du) >> 56);
    }
}

/* The byte offset the message names, or -1. */
static long long message_offset(const char *msg) {
    const char *at = strstr(msg, "byte offset ");
    return at ? strtoll(at + strlen("byte offset "), NULL, 10) : -1;
}

/* Asserts the result code, that the message names `path`, and (offset >=
 * 0) that it names that byte offset, or (offset == -1) some byte offset. */
static void assert_error(vkt_result r, vkt_result want, const char *path, long long offset) {
    const char *msg = vkt_last_error();
    cr_assert_eq(r, want, "got %s, want %s; message: %s", vkt_result_string(r),
                 vkt_result_string(want), msg);
    cr_assert_not_null(strstr(msg, path), "the message does not name '%s': %s", path, msg);
    long long at = message_offset(msg);
    cr_assert_geq(at, 0, "the message names no byte offset: %s", msg);
    if (offset >= 0)
        cr_assert_eq(at, offset, "want byte offset %lld: %s", offset, msg);
}

static vkt_result load_pair(const char *images, const char *labels, vkt_dataset **out) {
    *out = NULL;
    return vkt_dataset_load_idx(&(vkt_idx_desc){.images_path = images, .labels_path = labels}, out);
}

/* A good labels file for `count` samples (labels i % 10). */
static const char *good_labels(uint32_t count, bool gz) {
    uint8_t lab[256];
    cr_assert_leq(count, 256);
    for (uint32_t i = 0; i < count; i++)
        lab[i] = (uint8_t)(i % 10);
    bytes b = idx_file(0x08, 1, &count, lab, count);
    const char *path = tmp_path(gz ? "good-labels.gz" : "good-labels");
    write_file(path, b.p, b.n, gz);
    free(b.p);
    return path;
}

/* 3 images of 4x5: a 76-byte file. */
static bytes small_images(void) {
    uint8_t pix[60];
    random_bytes(pix, sizeof pix, 7);
    return idx_file(0x08, 3, (uint32_t[]){3, 4, 5}, pix, sizeof pix);
}

/* ---- Real Fashion-MNIST ----------------------------------------------------- */

static void skip_without_fashion_mnist(void) {
    if (access(FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0 ||
        access(FASHION_DIR "/t10k-labels-idx1-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
}

static void check_fashion(const vkt_dataset *ds, uint32_t count, const uint8_t first_labels[10],
                          double *out_mean, double *out_std) {
    vkt_dataset_info info;
    cr_assert_eq(vkt_dataset_query(ds, &info), VKT_OK);
    cr_assert_eq(info.count, count);
    cr_assert_eq(info.sample_ndim, 3);
    cr_assert(info.sample_dims[0] == 1 && info.sample_dims[1] == 28 && info.sample_dims[2] == 28);
    cr_assert_eq(info.sample_size, 784);
    cr_assert_eq(info.classes, 10);
    uint32_t per_class[10] = {0};
    for (uint32_t i = 0; i < count; i++) {
        float l = info.labels[i];
        cr_assert(l >= 0 && l <= 9 && l == floorf(l), "label %u = %g", i, (double)l);
        per_class[(int)l]++;
    }
    for (int c = 0; c < 10; c++) /* Fashion-MNIST is balanced */
        cr_assert_eq(per_class[c], count / 10, "class %d has %u samples", c, per_class[c]);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(info.labels[i], (float)first_labels[i], "label %d", i);
    double sum = 0, sum2 = 0;
    float lo = 1, hi = 0;
    size_t n = (size_t)count * 784;
    for (size_t i = 0; i < n; i++) {
        float v = info.features[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        /* every value is k/255 for a byte k */
        float k = roundf(v * 255);
        cr_assert_eq(v, (float)(k / 255.0), "feature %zu = %.9g is not a byte / 255", i, (double)v);
        sum += v;
        sum2 += (double)v * v;
    }
    cr_assert_eq(lo, 0.0f);
    cr_assert_eq(hi, 1.0f);
    *out_mean = sum / (double)n;
    *out_std = sqrt(sum2 / (double)n - *out_mean * *out_mean);
}

Test(idx, fashion_mnist_train_and_test) {
    skip_without_fashion_mnist();
    vkt_dataset *train = NULL, *test = NULL;
    vkt_result r = vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){0}, &train);
    cr_assert_eq(r, VKT_OK, "%s", vkt_last_error());
    double mean, std;
    check_fashion(train, 60000, (const uint8_t[]){9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, &mean, &std);
    /* The published constants are the training set's. */
    cr_assert_float_eq(mean, VKT_FASHION_MNIST_MEAN, 1e-6);
    cr_assert_float_eq(std, VKT_FASHION_MNIST_STD, 1e-6);

    r = vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){.test = true}, &test);
    cr_assert_eq(r, VKT_OK, "%s", vkt_last_error());
    check_fashion(test, 10000, (const uint8_t[]){9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, &mean, &std);
    vkt_dataset_destroy(train);
    vkt_dataset_destroy(test);
}

Test(idx, fashion_mnist_standardised_flattened) {
    skip_without_fashion_mnist();
    vkt_dataset *plain = NULL, *std = NULL;
    cr_assert_eq(vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){.test = true}, &plain),
                 VKT_OK, "%s", vkt_last_error());
    vkt_result r =
        vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){.test = true,
                                                                 .flatten = true,
                                                                 .mean = VKT_FASHION_MNIST_MEAN,
                                                                 .std = VKT_FASHION_MNIST_STD},
                                       &std);
    cr_assert_eq(r, VKT_OK, "%s", vkt_last_error());
    vkt_dataset_info a, b;
    vkt_dataset_query(plain, &a);
    vkt_dataset_query(std, &b);
    cr_assert_eq(b.sample_ndim, 1);
    cr_assert_eq(b.sample_dims[0], 784);
    for (size_t i = 0; i < (size_t)a.count * 784; i += 97) {
        double want = ((double)a.features[i] - VKT_FASHION_MNIST_MEAN) / VKT_FASHION_MNIST_STD;
        cr_assert_float_eq(b.features[i], want, 1e-6, "feature %zu", i);
    }
    vkt_dataset_destroy(plain);
    vkt_dataset_destroy(std);
}

Test(idx, fashion_mnist_found_through_vkt_data_dir) {
    skip_without_fashion_mnist();
    setenv("VKT_DATA_DIR", "/usr/share/datasets", 1);
    vkt_dataset *ds = NULL;
    vkt_result r = vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){.test = true}, &ds);
    cr_assert_eq(r, VKT_OK, "%s", vkt_last_error());
    vkt_dataset_destroy(ds);
}

Test(idx, fashion_mnist_missing_says_how_to_install) {
    vkt_dataset *ds = NULL;
    vkt_result r = vkt_dataset_load_fashion_mnist(
        &(vkt_fashion_mnist_desc){.dir = "/nonexistent/vkt-fashion"}, &ds);
    cr_assert_eq(r, VKT_ERROR_IO);
    cr_assert_null(ds, "the out parameter must stay untouched");
    const char *msg = vkt_last_error();
    cr_assert_not_null(strstr(msg, "/nonexistent/vkt-fashion/train-"), "%s", msg);
    cr_assert_not_null(strstr(msg, "apt-get install dataset-fashion-mnist"), "%s", msg);

    setenv("VKT_DATA_DIR", "/nonexistent/vkt-root", 1);
    r = vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){.test = true}, &ds);
    cr_assert_eq(r, VKT_ERROR_IO);
    msg = vkt_last_error();
    cr_assert_not_null(strstr(msg, "/nonexistent/vkt-root/fashion-mnist/t10k-"), "%s", msg);
    cr_assert_not_null(strstr(msg, "apt-get install dataset-fashion-mnist"), "%s", msg);
}

/* ---- Good files ------------------------------------------------------------- */

Test(idx, small_files_load_exactly_raw_and_gzip) {
    enum { N = 37, H = 5, W = 7 };
    uint8_t pix[N * H * W], lab[N];
    random_bytes(pix, sizeof pix, 1);
    pix[0] = 0;
    pix[1] = 255;
    for (int i = 0; i < N; i++)
        lab[i] = (uint8_t)((i * 7) % 10);
    bytes img = idx_file(0x08, 3, (uint32_t[]){N, H, W}, pix, sizeof pix);
    bytes lbl = idx_file(0x08, 1, (uint32_t[]){N}, lab, N);
    for (int gz = 0; gz < 2; gz++) {
        const char *ip = tmp_path(gz ? "img.gz" : "img"), *lp = tmp_path(gz ? "lbl.gz" : "lbl");
        write_file(ip, img.p, img.n, gz);
        write_file(lp, lbl.p, lbl.n, gz);

        vkt_dataset *ds = NULL;
        vkt_result r = load_pair(ip, lp, &ds);
        cr_assert_eq(r, VKT_OK, "%s", vkt_last_error());
        vkt_dataset_info info;
        cr_assert_eq(vkt_dataset_query(ds, &info), VKT_OK);
        cr_assert_eq(info.count, N);
        cr_assert(info.sample_ndim == 3 && info.sample_dims[0] == 1 && info.sample_dims[1] == H &&
                  info.sample_dims[2] == W);
        cr_assert_eq(info.sample_size, H * W);
        cr_assert_eq(info.classes, 10);
        for (int i = 0; i < N * H * W; i++)
            cr_assert_eq(info.features[i], (float)(pix[i] / 255.0), "pixel %d", i);
        for (int i = 0; i < N; i++)
            cr_assert_eq(info.labels[i], (float)lab[i]);
        vkt_dataset_destroy(ds);

        /* Standardised, flattened, with a given class count. */
        r = vkt_dataset_load_idx(&(vkt_idx_desc){.images_path = ip,
                                                 .labels_path = lp,
                                                 .mean = 0.5f,
                                                 .std = 0.25f,
                                                 .flatten = true,
                                                 .classes = 12},
                                 &ds);
        cr_assert_eq(r, VKT_OK, "%s", vkt_last_error());
        vkt_dataset_query(ds, &info);
        cr_assert(info.sample_ndim == 1 && info.sample_dims[0] == H * W);
        cr_assert_eq(info.classes, 12);
        for (int i = 0; i < N * H * W; i++)
            cr_assert_eq(info.features[i], (float)((pix[i] / 255.0 - 0.5) / 0.25), "pixel %d", i);
        vkt_dataset_destroy(ds);
    }
    free(img.p);
    free(lbl.p);
}

Test(idx, other_sample_shapes) {
    uint8_t data[5 * 24];
    random_bytes(data, sizeof data, 2);
    const char *lp = good_labels(5, false);
    struct {
        int ndim;
        uint32_t dims[4];
        int sample_ndim;
        int64_t sample_dims[3];
    } cases[] = {
        {2, {5, 24}, 1, {24}},
        {4, {5, 2, 3, 4}, 3, {2, 3, 4}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bytes img = idx_file(0x08, cases[c].ndim, cases[c].dims, data, sizeof data);
        const char *ip = tmp_path("shape-img");
        write_file(ip, img.p, img.n, false);
        free(img.p);
        vkt_dataset *ds = NULL;
        cr_assert_eq(load_pair(ip, lp, &ds), VKT_OK, "%s", vkt_last_error());
        vkt_dataset_info info;
        vkt_dataset_query(ds, &info);
        cr_assert_eq(info.sample_ndim, cases[c].sample_ndim);
        for (int i = 0; i < info.sample_ndim; i++)
            cr_assert_eq(info.sample_dims[i], cases[c].sample_dims[i]);
        cr_assert_eq(info.sample_size, 24);
        for (size_t i = 0; i < sizeof data; i++)
            cr_assert_eq(info.features[i], (float)(data[i] / 255.0));
        vkt_dataset_destroy(ds);
    }
}

/* ---- Damaged files ------------------------------------------------------------ */

/* Cutting the (decompressed) content anywhere: the offset is the cut. */
Test(idx, truncated_at_every_offset) {
    bytes img = small_images();
    for (int gz = 0; gz < 2; gz++) {
        const char *lp = good_labels(3, gz);
        const char *ip = tmp_path("cut-img");
        for (size_t cut = 0; cut < img.n; cut++) {
            write_file(ip, img.p, cut, gz);
            vkt_dataset *ds = NULL;
            assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, (long long)cut);
            cr_assert_null(ds);
            if (gz && cut > 0)
                cr_assert_not_null(strstr(vkt_last_error(), "decompressed"), "%s",
                                   vkt_last_error());
        }
    }
    /* The labels file too, with good images. */
    const char *ip = tmp_path("good-img");
    write_file(ip, img.p, img.n, false);
    uint8_t lab[3] = {1, 2, 3};
    bytes lbl = idx_file(0x08, 1, (uint32_t[]){3}, lab, 3);
    const char *lp = tmp_path("cut-lbl");
    for (size_t cut = 0; cut < lbl.n; cut++) {
        write_file(lp, lbl.p, cut, false);
        vkt_dataset *ds = NULL;
        assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, lp, (long long)cut);
    }
    free(img.p);
    free(lbl.p);
}

/* Cutting the gzip file itself: the stream ends early. */
Test(idx, truncated_gzip_stream_at_every_offset) {
    bytes img = small_images();
    const char *lp = good_labels(3, false);
    const char *whole = tmp_path("whole.gz"), *ip = tmp_path("cut.gz");
    write_file(whole, img.p, img.n, true);
    bytes gz = read_whole(whole);
    for (size_t cut = 0; cut < gz.n; cut++) {
        write_file(ip, gz.p, cut, false);
        vkt_dataset *ds = NULL;
        assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, -1);
        cr_assert_leq(message_offset(vkt_last_error()), (long long)img.n);
    }
    free(gz.p);
    free(img.p);
}

Test(idx, damaged_gzip_bytes) {
    bytes img = small_images();
    const char *lp = good_labels(3, false);
    const char *whole = tmp_path("whole.gz"), *ip = tmp_path("bad.gz");
    write_file(whole, img.p, img.n, true);
    bytes gz = read_whole(whole);
    /* Bytes 4..9 of a gzip header (time, flags, OS) are not checked by
     * anyone; everything after them is (deflate data, CRC, length). */
    for (size_t at = 10; at < gz.n; at++) {
        gz.p[at] ^= 0xFF;
        write_file(ip, gz.p, gz.n, false);
        gz.p[at] ^= 0xFF;
        vkt_dataset *ds = NULL;
        assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, -1);
    }
    /* A gzip header followed by garbage. */
    uint8_t garbage[64] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3};
    random_bytes(garbage + 10, sizeof garbage - 10, 3);
    write_file(ip, garbage, sizeof garbage, false);
    vkt_dataset *ds = NULL;
    assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, 0);
    free(gz.p);
    free(img.p);
}

Test(idx, wrong_magic_type_and_dimension_count) {
    const char *lp = good_labels(3, false);
    const char *ip = tmp_path("img");
    bytes img = small_images();
    struct {
        size_t at;
        uint8_t value;
        vkt_result want;
        const char *says;
    } cases[] = {
        {0, 0x1f, VKT_ERROR_CORRUPT_DATA, "not an IDX file"},
        {1, 0x01, VKT_ERROR_CORRUPT_DATA, "not an IDX file"},
        {2, 0x0D, VKT_ERROR_UNSUPPORTED, "f32"},
        {2, 0x0C, VKT_ERROR_UNSUPPORTED, "i32"},
        {2, 0x42, VKT_ERROR_CORRUPT_DATA, "unknown IDX type code 0x42"},
        {2, 0x00, VKT_ERROR_CORRUPT_DATA, "unknown IDX type code"},
        {3, 0, VKT_ERROR_CORRUPT_DATA, "0 dimensions"},
        {3, 1, VKT_ERROR_CORRUPT_DATA, "labels file?"},
        {3, 5, VKT_ERROR_CORRUPT_DATA, "5 dimensions"},
        {3, 255, VKT_ERROR_CORRUPT_DATA, "255 dimensions"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t saved = img.p[cases[c].at];
        img.p[cases[c].at] = cases[c].value;
        for (int gz = 0; gz < 2; gz++) {
            write_file(ip, img.p, img.n, gz);
            vkt_dataset *ds = NULL;
            assert_error(load_pair(ip, lp, &ds), cases[c].want, ip, (long long)cases[c].at);
            cr_assert_not_null(strstr(vkt_last_error(), cases[c].says), "case %zu: %s", c,
                               vkt_last_error());
        }
        img.p[cases[c].at] = saved;
    }
    /* An images file given as labels. */
    write_file(ip, img.p, img.n, false);
    vkt_dataset *ds = NULL;
    assert_error(load_pair(ip, ip, &ds), VKT_ERROR_CORRUPT_DATA, ip, 3);
    cr_assert_not_null(strstr(vkt_last_error(), "images file?"), "%s", vkt_last_error());
    free(img.p);
}

Test(idx, zero_dimensions) {
    const char *lp = good_labels(3, false);
    const char *ip = tmp_path("img");
    for (int i = 0; i < 3; i++) {
        uint32_t dims[3] = {3, 4, 5};
        dims[i] = 0;
        bytes img = idx_file(0x08, 3, dims, NULL, 60);
        write_file(ip, img.p, img.n, false);
        free(img.p);
        vkt_dataset *ds = NULL;
        assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, 4 + 4 * i);
    }
    bytes lbl = idx_file(0x08, 1, (uint32_t[]){0}, NULL, 0);
    const char *bad = tmp_path("lbl0");
    write_file(bad, lbl.p, lbl.n, true);
    free(lbl.p);
    vkt_dataset *ds = NULL;
    assert_error(load_pair(ip, bad, &ds), VKT_ERROR_CORRUPT_DATA, bad, 4);
}

Test(idx, dimensions_whose_product_overflows_64_bits) {
    const char *lp = good_labels(3, false);
    const char *ip = tmp_path("img");
    bytes img = idx_file(0x08, 4, (uint32_t[]){0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 2}, NULL, 8);
    write_file(ip, img.p, img.n, false);
    free(img.p);
    vkt_dataset *ds = NULL;
    /* (2^32-1)^2 fits; the third factor overflows. */
    assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, 12);
    cr_assert_not_null(strstr(vkt_last_error(), "overflow"), "%s", vkt_last_error());
}

/* Caps the address space a little above what the process uses now, so any
 * attempt to allocate what a lying header declares fails as out of memory
 * instead of passing unnoticed. Sanitizers reserve huge shadow mappings
 * lazily, so there the cap is left off. */
static void cap_address_space(void) {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return;
    unsigned long pages = 0;
    int got = fscanf(f, "%lu", &pages);
    fclose(f);
    if (got != 1)
        return;
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_AS, &rl), 0);
    rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)512 << 20);
    if (rl.rlim_max == RLIM_INFINITY || cap < rl.rlim_max)
        rl.rlim_cur = cap;
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
#endif
}

Test(idx, huge_dimensions_fail_before_allocating) {
    const char *lp = good_labels(3, false);
    const char *ip = tmp_path("img");
    cap_address_space();
    for (int gz = 0; gz < 2; gz++) {
        /* Beyond the 4 GiB cap without overflowing: refused from the header. */
        bytes img = idx_file(0x08, 3, (uint32_t[]){0xFFFFFFFFu, 0xFFFFFFFFu, 1}, NULL, 100);
        write_file(ip, img.p, img.n, gz);
        free(img.p);
        vkt_dataset *ds = NULL;
        assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, 4);
        cr_assert_not_null(strstr(vkt_last_error(), "limit"), "%s", vkt_last_error());

        /* 3 GiB declared, under the cap, but 100 bytes present: the buffer
         * grows with the data, so this is "truncated", not out of memory. */
        img = idx_file(0x08, 3, (uint32_t[]){3, 1024, 1u << 20}, NULL, 100);
        write_file(ip, img.p, img.n, gz);
        free(img.p);
        assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, 16 + 100);
        cr_assert_not_null(strstr(vkt_last_error(), "truncated"), "%s", vkt_last_error());
    }
    /* The in-memory parser checks the declared size against the bytes. */
    bytes img = idx_file(0x08, 3, (uint32_t[]){3, 1024, 1u << 20}, NULL, 100);
    vkt_idx idx;
    vkt_result r = vkt_idx_parse_memory(
        img.p, img.n, "memory", &(vkt_idx_expect){.kind = "images", .min_ndim = 2, .max_ndim = 4},
        &idx);
    assert_error(r, VKT_ERROR_CORRUPT_DATA, "memory", 116);
    free(img.p);
}

Test(idx, trailing_bytes_after_the_data) {
    bytes img = small_images();
    uint8_t longer[77];
    memcpy(longer, img.p, 76);
    longer[76] = 0;
    const char *lp = good_labels(3, false), *ip = tmp_path("img");
    for (int gz = 0; gz < 2; gz++) {
        write_file(ip, longer, sizeof longer, gz);
        vkt_dataset *ds = NULL;
        assert_error(load_pair(ip, lp, &ds), VKT_ERROR_CORRUPT_DATA, ip, 76);
    }
    free(img.p);
}

Test(idx, image_and_label_counts_differ) {
    bytes img = small_images(); /* 3 images */
    const char *ip = tmp_path("img.gz");
    write_file(ip, img.p, img.n, true);
    const char *lp = good_labels(4, true);
    vkt_dataset *ds = NULL;
    vkt_result r = load_pair(ip, lp, &ds);
    cr_assert_eq(r, VKT_ERROR_CORRUPT_DATA);
    const char *msg = vkt_last_error();
    cr_assert(strstr(msg, ip) && strstr(msg, lp), "the message must name both files: %s", msg);
    cr_assert_not_null(strstr(msg, "byte offset 4"), "%s", msg);
    cr_assert_null(ds);
    free(img.p);
}

Test(idx, label_not_below_the_class_count) {
    bytes img = small_images();
    const char *ip = tmp_path("img");
    write_file(ip, img.p, img.n, false);
    const char *lp = good_labels(3, false); /* labels 0, 1, 2 */
    vkt_dataset *ds = NULL;
    vkt_result r = vkt_dataset_load_idx(
        &(vkt_idx_desc){.images_path = ip, .labels_path = lp, .classes = 2}, &ds);
    assert_error(r, VKT_ERROR_CORRUPT_DATA, lp, 8 + 2);
    free(img.p);
}

Test(idx, missing_and_unreadable_files) {
    bytes img = small_images();
    const char *ip = tmp_path("img");
    write_file(ip, img.p, img.n, false);
    free(img.p);
    const char *missing = tmp_path("no-such-file.gz");
    vkt_dataset *ds = NULL;
    vkt_result r = load_pair(ip, missing, &ds);
    cr_assert_eq(r, VKT_ERROR_IO);
    cr_assert_not_null(strstr(vkt_last_error(), missing), "%s", vkt_last_error());
    r = load_pair(missing, good_labels(3, false), &ds);
    cr_assert_eq(r, VKT_ERROR_IO);
    cr_assert_not_null(strstr(vkt_last_error(), missing), "%s", vkt_last_error());
    /* A folder opens but cannot be read. */
    r = load_pair(ip, tmp_dir, &ds);
    cr_assert_eq(r, VKT_ERROR_IO, "%s", vkt_last_error());
    cr_assert_not_null(strstr(vkt_last_error(), tmp_dir), "%s", vkt_last_error());
    cr_assert_null(ds);
}

Test(idx, bad_arguments) {
    vkt_dataset *ds = NULL;
    cr_assert_eq(vkt_dataset_load_idx(NULL, &ds), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_dataset_load_idx(&(vkt_idx_desc){.images_path = "x"}, &ds),
                 VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_not_null(strstr(vkt_last_error(), "labels_path"));
    cr_assert_eq(vkt_dataset_load_idx(
                     &(vkt_idx_desc){.images_path = "x", .labels_path = "y", .std = -1}, &ds),
                 VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_dataset_load_idx(
                     &(vkt_idx_desc){.images_path = "x", .labels_path = "y", .mean = NAN}, &ds),
                 VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_dataset_load_fashion_mnist(NULL, &ds), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_null(ds);
}

/* The file reader (zlib, transparent for plain files) and the in-memory
 * parser must agree on every input, message included: random damage to a
 * good file, many times. */
Test(idx, file_and_memory_parsers_agree) {
    bytes img = small_images();
    const char *ip = tmp_path("mutant");
    uint8_t buf[96], noise[8];
    vkt_idx_expect expect = {.kind = "images", .min_ndim = 2, .max_ndim = 4};
    for (uint64_t iter = 0; iter < 400; iter++) {
        random_bytes(noise, sizeof noise, iter + 100);
        size_t n = img.n - 8 + noise[0] % 16; /* cut or extend by up to 8 bytes */
        memset(buf, 0, sizeof buf);
        memcpy(buf, img.p, n < img.n ? n : img.n);
        for (int k = 0; k < noise[1] % 4; k++) /* up to 3 damaged bytes, mostly the header */
            buf[noise[2 + k] % (k ? n : 20)] = noise[5 + k % 3];
        write_file(ip, buf, n, false);
        vkt_idx a = {0}, b = {0};
        vkt_result ra = vkt_idx_read_file(ip, &expect, &a);
        char msg_a[VKT_ERROR_MESSAGE_SIZE];
        snprintf(msg_a, sizeof msg_a, "%s", ra == VKT_OK ? "" : vkt_last_error());
        vkt_result rb = vkt_idx_parse_memory(buf, n, ip, &expect, &b);
        cr_assert_eq(ra, rb, "iteration %llu: file %d, memory %d", (unsigned long long)iter, ra,
                     rb);
        if (ra == VKT_OK) {
            cr_assert_eq(a.size, b.size);
            cr_assert_eq(memcmp(a.data, b.data, a.size), 0);
        } else {
            cr_assert_str_eq(msg_a, vkt_last_error(), "iteration %llu", (unsigned long long)iter);
        }
        vkt_idx_free(&a);
        vkt_idx_free(&b);
    }
    free(img.p);
}

/* ---- Data sets from memory ------------------------------------------------------ */

/* n samples of 3 floats that tell their index: (i, i + 0.25, -i), label i % 7. */
static vkt_dataset *index_dataset(uint32_t n) {
    float *f = malloc((size_t)n * 3 * sizeof *f), *l = malloc((size_t)n * sizeof *l);
    for (uint32_t i = 0; i < n; i++) {
        f[3 * i] = (float)i;
        f[3 * i + 1] = (float)i + 0.25f;
        f[3 * i + 2] = -(float)i;
        l[i] = (float)(i % 7);
    }
    vkt_dataset *ds = NULL;
    vkt_result r = vkt_dataset_create(
        &(vkt_dataset_desc){
            .count = n, .sample_ndim = 1, .sample_dims = {3}, .features = f, .labels = l},
        &ds);
    cr_assert_eq(r, VKT_OK, "%s", vkt_last_error());
    free(f);
    free(l);
    return ds;
}

Test(dataset, create_query_subset) {
    vkt_dataset *ds = index_dataset(50), *sub = NULL;
    vkt_dataset_info info;
    cr_assert_eq(vkt_dataset_query(ds, &info), VKT_OK);
    cr_assert_eq(info.count, 50);
    cr_assert_eq(info.classes, 7);
    cr_assert_eq(info.sample_size, 3);
    cr_assert_eq(vkt_dataset_subset(ds, 10, 5, &sub), VKT_OK, "%s", vkt_last_error());
    vkt_dataset_destroy(ds); /* the subset is independent */
    cr_assert_eq(vkt_dataset_query(sub, &info), VKT_OK);
    cr_assert_eq(info.count, 5);
    cr_assert_eq(info.classes, 7);
    for (uint32_t i = 0; i < 5; i++) {
        cr_assert_eq(info.features[3 * i], (float)(10 + i));
        cr_assert_eq(info.labels[i], (float)((10 + i) % 7));
    }
    vkt_dataset *bad = NULL;
    cr_assert_eq(vkt_dataset_subset(sub, 3, 3, &bad), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_dataset_subset(sub, 0, 0, &bad), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_dataset_subset(sub, 0xFFFFFFFFu, 2, &bad), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_null(bad);
    vkt_dataset_destroy(sub);
    vkt_dataset_destroy(NULL);
}

Test(dataset, create_rejects_bad_input) {
    float f[6] = {0, 1, 2, 3, 4, 5}, l[2] = {0, 1};
    vkt_dataset_desc good = {.count = 2,
                             .sample_ndim = 2,
                             .sample_dims = {1, 3},
                             .features = f,
                             .labels = l,
                             .classes = 2};
    vkt_dataset *ds = NULL;
    vkt_dataset_desc d = good;
    d.count = 0;
    cr_assert_eq(vkt_dataset_create(&d, &ds), VKT_ERROR_INVALID_ARGUMENT);
    d = good;
    d.sample_ndim = 4;
    cr_assert_eq(vkt_dataset_create(&d, &ds), VKT_ERROR_INVALID_ARGUMENT);
    d = good;
    d.sample_dims[1] = 0;
    cr_assert_eq(vkt_dataset_create(&d, &ds), VKT_ERROR_INVALID_ARGUMENT);
    d = good;
    d.classes = 1; /* label 1 is not below 1 */
    cr_assert_eq(vkt_dataset_create(&d, &ds), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_not_null(strstr(vkt_last_error(), "labels[1]"), "%s", vkt_last_error());
    l[1] = 0.5f;
    cr_assert_eq(vkt_dataset_create(&good, &ds), VKT_ERROR_INVALID_ARGUMENT);
    l[1] = -1;
    cr_assert_eq(vkt_dataset_create(&good, &ds), VKT_ERROR_INVALID_ARGUMENT);
    l[1] = NAN;
    cr_assert_eq(vkt_dataset_create(&good, &ds), VKT_ERROR_INVALID_ARGUMENT);
    l[1] = 1;
    f[4] = INFINITY;
    cr_assert_eq(vkt_dataset_create(&good, &ds), VKT_ERROR_NON_FINITE);
    cr_assert_not_null(strstr(vkt_last_error(), "sample 1"), "%s", vkt_last_error());
    f[4] = 4;
    cr_assert_null(ds);
    cr_assert_eq(vkt_dataset_create(&good, &ds), VKT_OK, "%s", vkt_last_error());
    vkt_dataset_info info;
    vkt_dataset_query(ds, &info);
    cr_assert(info.sample_ndim == 2 && info.sample_dims[0] == 1 && info.sample_dims[1] == 3 &&
              info.sample_dims[2] == 0);
    vkt_dataset_destroy(ds);
}

/* ---- Batcher ---------------------------------------------------------------- */

/* Takes `batches` batches, checking each sample's features against its
 * label, and writes the sample indices in order to idx and the batch sizes
 * to counts. view: through next_view; jitter: random pauses so a prefetch
 * thread runs ahead or behind. */
static void take(vkt_batcher *b, size_t batches, bool view, bool jitter, uint32_t *idx,
                 uint32_t *counts) {
    vkt_batcher_info info;
    cr_assert_eq(vkt_batcher_query(b, &info), VKT_OK);
    float *features = malloc((size_t)info.batch_size * 3 * sizeof *features);
    float *labels = malloc((size_t)info.batch_size * sizeof *labels);
    uint64_t rng = 99;
    size_t k = 0;
    for (size_t i = 0; i < batches; i++) {
        const float *f = features, *l = labels;
        uint32_t count = 0;
        if (view) {
            vkt_batch batch;
            cr_assert_eq(vkt_batcher_next_view(b, &batch), VKT_OK, "%s", vkt_last_error());
            f = batch.features;
            l = batch.labels;
            count = batch.count;
        } else {
            cr_assert_eq(vkt_batcher_next(b, features, labels, &count), VKT_OK, "%s",
                         vkt_last_error());
        }
        cr_assert(count >= 1 && count <= info.batch_size, "batch %zu has %u samples", i, count);
        for (uint32_t s = 0; s < count; s++) {
            uint32_t at = (uint32_t)f[3 * s];
            cr_assert(f[3 * s + 1] == (float)at + 0.25f && f[3 * s + 2] == -(float)at &&
                          l[s] == (float)(at % 7),
                      "batch %zu sample %u is not a whole sample", i, s);
            idx[k++] = at;
        }
        counts[i] = count;
        if (jitter) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            struct timespec pause = {0, (long)((rng >> 33) % 200000)};
            nanosleep(&pause, NULL);
        }
    }
    free(features);
    free(labels);
}

static vkt_batcher *make_batcher(const vkt_dataset *ds, vkt_batcher_desc desc) {
    vkt_batcher *b = NULL;
    cr_assert_eq(vkt_batcher_create(ds, &desc, &b), VKT_OK, "%s", vkt_last_error());
    return b;
}

Test(batcher, every_sample_once_per_epoch) {
    enum { N = 103, EPOCHS = 3 };
    vkt_dataset *ds = index_dataset(N);
    uint32_t sizes[] = {1, 7, 10, 103, 150};
    uint32_t *idx = malloc(N * EPOCHS * sizeof *idx), *counts = malloc(N * EPOCHS * sizeof *counts);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int prefetch = 0; prefetch < 2; prefetch++) {
            uint32_t B = sizes[s];
            vkt_batcher *b = make_batcher(
                ds, (vkt_batcher_desc){.batch_size = B, .seed = 5, .prefetch = prefetch});
            vkt_batcher_info info;
            vkt_batcher_query(b, &info);
            uint64_t per_epoch = (N + B - 1) / B;
            cr_assert_eq(info.batches_per_epoch, per_epoch);
            for (int e = 0; e < EPOCHS; e++) {
                take(b, per_epoch, prefetch, false, idx + (size_t)e * N, counts);
                for (uint64_t i = 0; i + 1 < per_epoch; i++)
                    cr_assert_eq(counts[i], B);
                cr_assert_eq(counts[per_epoch - 1], N - (per_epoch - 1) * B);
                bool seen[N] = {false};
                for (int i = 0; i < N; i++) {
                    uint32_t at = idx[(size_t)e * N + i];
                    cr_assert(!seen[at], "B %u epoch %d: sample %u twice", B, e, at);
                    seen[at] = true;
                }
                vkt_batcher_query(b, &info);
                cr_assert_eq(info.state.epoch, (uint64_t)e + 1);
                cr_assert_eq(info.state.position, 0);
            }
            if (B < N) /* a shuffle, and a different one each epoch */
                cr_assert_neq(memcmp(idx, idx + N, N * sizeof *idx), 0);
            vkt_batcher_destroy(b);
        }
    }
    free(idx);
    free(counts);
    vkt_dataset_destroy(ds);
}

Test(batcher, seed_decides_the_order) {
    enum { N = 103, TAKE = 40 };
    vkt_dataset *ds = index_dataset(N);
    uint32_t a[TAKE * 10] = {0}, b[TAKE * 10] = {0}, c[TAKE * 10] = {0}, counts[TAKE];
    vkt_batcher *x = make_batcher(ds, (vkt_batcher_desc){.batch_size = 10, .seed = 42});
    vkt_batcher *y = make_batcher(ds, (vkt_batcher_desc){.batch_size = 10, .seed = 42});
    vkt_batcher *z = make_batcher(ds, (vkt_batcher_desc){.batch_size = 10, .seed = 43});
    take(x, TAKE, false, false, a, counts);
    take(y, TAKE, true, false, b, counts);
    take(z, TAKE, false, false, c, counts);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same seed, different order");
    cr_assert_neq(memcmp(a, c, N * sizeof *a), 0, "different seeds, same order");
    vkt_batcher_destroy(x);
    vkt_batcher_destroy(y);
    vkt_batcher_destroy(z);
    vkt_dataset_destroy(ds);
}

Test(batcher, splitmix64_matches_the_reference) {
    /* Outputs of the reference splitmix64.c from state 1234567. */
    const uint64_t want[5] = {6457827717110365317u, 3203168211198807973u, 9817491932198370423u,
                              4593380528125082431u, 16408922859458223821u};
    uint64_t state = 1234567;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(vkt_splitmix64(&state), want[i], "output %d", i);
}

/* The order as vkt_batcher_desc documents it, written out again from that
 * text so that a change to the order (which would break resumed runs and
 * cross-machine reproducibility) fails here. */
static void documented_order(uint32_t n, uint64_t seed, uint64_t epoch, uint32_t *order) {
    uint64_t z = epoch;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    uint64_t state = seed ^ (z ^ (z >> 31));
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    for (uint32_t i = n - 1; i >= 1; i--) {
        uint64_t bound = (uint64_t)i + 1, threshold = (0 - bound) % bound, x;
        do
            x = vkt_splitmix64(&state);
        while (x < threshold);
        uint32_t j = (uint32_t)(x % bound), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

Test(batcher, order_is_the_documented_one) {
    enum { N = 103 };
    vkt_dataset *ds = index_dataset(N);
    uint32_t got[N * 3], counts[64], want[N];
    vkt_batcher *b = make_batcher(ds, (vkt_batcher_desc){.batch_size = 16, .seed = 0xC0FFEE});
    take(b, 7 * 3, false, false, got, counts);
    for (uint64_t e = 0; e < 3; e++) {
        documented_order(N, 0xC0FFEE, e, want);
        cr_assert_eq(memcmp(got + e * N, want, sizeof want), 0, "epoch %llu",
                     (unsigned long long)e);
    }
    /* A fixed point, so that the test above cannot drift along with a
     * change to vkt_splitmix64: seed 1, epoch 0, 8 samples. */
    documented_order(8, 1, 0, want);
    vkt_batcher_destroy(b);
    vkt_dataset_destroy(ds);
    vkt_dataset *small = index_dataset(8);
    b = make_batcher(small, (vkt_batcher_desc){.batch_size = 8, .seed = 1});
    take(b, 1, false, false, got, counts);
    cr_assert_eq(memcmp(got, want, 8 * sizeof *got), 0);
    vkt_batcher_destroy(b);
    vkt_dataset_destroy(small);
}

Test(batcher, sequential_is_dataset_order) {
    vkt_dataset *ds = index_dataset(25);
    uint32_t idx[50], counts[10];
    vkt_batcher *b = make_batcher(
        ds, (vkt_batcher_desc){.batch_size = 10, .sequential = true, .prefetch = true});
    take(b, 6, true, false, idx, counts);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(idx[i], (uint32_t)(i % 25));
    cr_assert(counts[2] == 5 && counts[5] == 5);
    vkt_batcher_destroy(b);
    vkt_dataset_destroy(ds);
}

Test(batcher, drop_last_gives_only_full_batches) {
    enum { N = 103, B = 10 };
    vkt_dataset *ds = index_dataset(N);
    uint32_t idx[5 * 100], counts[50];
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        vkt_batcher *b = make_batcher(
            ds, (vkt_batcher_desc){
                    .batch_size = B, .seed = 9, .drop_last = true, .prefetch = prefetch});
        vkt_batcher_info info;
        vkt_batcher_query(b, &info);
        cr_assert_eq(info.batches_per_epoch, N / B);
        take(b, 50, prefetch, false, idx, counts);
        bool dropped_differ = false;
        bool first_seen[N] = {false};
        for (int e = 0; e < 5; e++) {
            bool seen[N] = {false};
            for (int i = 0; i < 100; i++) {
                uint32_t at = idx[e * 100 + i];
                cr_assert(!seen[at]);
                seen[at] = true;
                if (e == 0)
                    first_seen[at] = true;
            }
            for (int i = 0; i < N && e > 0; i++)
                dropped_differ |= seen[i] != first_seen[i];
        }
        for (int i = 0; i < 50; i++)
            cr_assert_eq(counts[i], B);
        cr_assert(dropped_differ, "the same samples were dropped every epoch");
        vkt_batcher_query(b, &info);
        cr_assert(info.state.epoch == 5 && info.state.position == 0);
        vkt_batcher_destroy(b);
    }
    vkt_batcher *b = NULL;
    cr_assert_eq(
        vkt_batcher_create(ds, &(vkt_batcher_desc){.batch_size = N + 1, .drop_last = true}, &b),
        VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_null(b);
    vkt_dataset_destroy(ds);
}

/* A run interrupted after `before` batches and resumed from its saved state
 * in a new batcher gives the same batches as the run that went on. */
static void resume_case(bool prefetch_a, bool prefetch_b, bool drop_last, size_t before) {
    enum { N = 103, AFTER = 37 };
    vkt_dataset *ds = index_dataset(N);
    vkt_batcher_desc desc = {
        .batch_size = 8, .seed = 77, .drop_last = drop_last, .prefetch = prefetch_a};
    vkt_batcher *a = make_batcher(ds, desc);
    uint32_t *skip = malloc(before * 8 * sizeof *skip + 1), counts[64];
    uint32_t want[AFTER * 8] = {0}, got[AFTER * 8] = {0};
    take(a, before, prefetch_a, false, skip, counts);
    vkt_batcher_info saved;
    cr_assert_eq(vkt_batcher_query(a, &saved), VKT_OK);
    take(a, AFTER, false, false, want, counts);

    /* Another seed in the desc: the state carries the seed. */
    desc.seed = 1;
    desc.prefetch = prefetch_b;
    vkt_batcher *b = make_batcher(ds, desc);
    take(b, 3, true, false, got, counts); /* put it somewhere else first */
    cr_assert_eq(vkt_batcher_restore(b, &saved.state), VKT_OK, "%s", vkt_last_error());
    take(b, AFTER, prefetch_b, true, got, counts);
    cr_assert_eq(memcmp(want, got, sizeof want), 0, "resumed after %zu batches: differs", before);
    vkt_batcher_info now_a, now_b;
    vkt_batcher_query(a, &now_a);
    vkt_batcher_query(b, &now_b);
    cr_assert(memcmp(&now_a.state, &now_b.state, sizeof now_a.state) == 0);
    vkt_batcher_destroy(a);
    vkt_batcher_destroy(b);
    free(skip);
    vkt_dataset_destroy(ds);
}

Test(batcher, restore_continues_identically) {
    const size_t befores[] = {0, 1, 12, 13, 14, 29};
    for (size_t i = 0; i < sizeof befores / sizeof befores[0]; i++)
        for (int mode = 0; mode < 8; mode++)
            resume_case(mode & 1, mode & 2, mode & 4, befores[i]);
}

Test(batcher, restore_checks_the_position) {
    vkt_dataset *ds = index_dataset(20);
    vkt_batcher *b = make_batcher(ds, (vkt_batcher_desc){.batch_size = 8, .drop_last = true});
    cr_assert_eq(vkt_batcher_restore(b, &(vkt_batcher_state){.position = 12}), VKT_OK);
    cr_assert_eq(vkt_batcher_restore(b, &(vkt_batcher_state){.position = 13}),
                 VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_not_null(strstr(vkt_last_error(), "13"), "%s", vkt_last_error());
    /* Any position is fine as a start, multiple of the batch size or not. */
    cr_assert_eq(vkt_batcher_restore(b, &(vkt_batcher_state){.epoch = 4, .position = 5}), VKT_OK);
    vkt_batch batch;
    cr_assert_eq(vkt_batcher_next_view(b, &batch), VKT_OK);
    cr_assert(batch.count == 8 && batch.epoch == 4 && batch.index == 0);
    cr_assert_eq(vkt_batcher_next_view(b, &batch), VKT_OK);
    cr_assert(batch.count == 8 && batch.epoch == 5 && batch.index == 0,
              "13 + 8 > 20: the epoch ends (count %u epoch %llu)", batch.count,
              (unsigned long long)batch.epoch);
    vkt_batcher_destroy(b);
    vkt_dataset_destroy(ds);
}

Test(batcher, prefetch_gives_the_same_batches) {
    enum { N = 103, BATCHES = 60 };
    vkt_dataset *ds = index_dataset(N);
    static uint32_t want[BATCHES * 16], got[BATCHES * 16];
    uint32_t want_counts[BATCHES], got_counts[BATCHES];
    for (int mode = 0; mode < 8; mode++) {
        vkt_batcher_desc desc = {.batch_size = 16,
                                 .seed = 3 + (uint64_t)mode,
                                 .drop_last = mode & 1,
                                 .sequential = mode & 2};
        vkt_batcher *plain = make_batcher(ds, desc);
        desc.prefetch = true;
        vkt_batcher *ahead = make_batcher(ds, desc);
        take(plain, BATCHES, false, false, want, want_counts);
        take(ahead, BATCHES, mode & 4, true, got, got_counts);
        cr_assert_eq(memcmp(want_counts, got_counts, sizeof want_counts), 0, "mode %d", mode);
        cr_assert_eq(memcmp(want, got, sizeof want), 0, "mode %d", mode);
        vkt_batcher_destroy(plain);
        vkt_batcher_destroy(ahead);
    }
    vkt_dataset_destroy(ds);
}

Test(batcher, destroy_while_prefetching) {
    vkt_dataset *ds = index_dataset(5000);
    for (int i = 0; i < 100; i++) {
        vkt_batcher *b = make_batcher(
            ds, (vkt_batcher_desc){.batch_size = 4096, .seed = (uint64_t)i, .prefetch = true});
        vkt_batch batch;
        if (i % 2)
            cr_assert_eq(vkt_batcher_next_view(b, &batch), VKT_OK);
        vkt_batcher_destroy(b); /* a job may be in flight */
    }
    vkt_dataset_destroy(ds);
}

Test(batcher, views_report_epoch_and_index) {
    vkt_dataset *ds = index_dataset(10);
    vkt_batcher *b = make_batcher(ds, (vkt_batcher_desc){.batch_size = 4, .prefetch = true});
    const uint32_t counts[] = {4, 4, 2, 4};
    for (int i = 0; i < 4; i++) {
        vkt_batch batch;
        cr_assert_eq(vkt_batcher_next_view(b, &batch), VKT_OK);
        cr_assert_eq(batch.count, counts[i]);
        cr_assert_eq(batch.epoch, (uint64_t)(i / 3));
        cr_assert_eq(batch.index, (uint64_t)(i % 3));
    }
    vkt_batcher_info info;
    vkt_batcher_query(b, &info);
    cr_assert(info.batch_size == 4 && info.batches_per_epoch == 3 && info.sample_size == 3);
    cr_assert(info.state.epoch == 1 && info.state.position == 4);
    vkt_batcher_destroy(b);
    vkt_dataset_destroy(ds);
}

Test(batcher, bad_arguments) {
    vkt_dataset *ds = index_dataset(10);
    vkt_batcher *b = NULL;
    cr_assert_eq(vkt_batcher_create(NULL, &(vkt_batcher_desc){0}, &b), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_batcher_create(ds, NULL, &b), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_null(b);
    b = make_batcher(ds, (vkt_batcher_desc){0});
    vkt_batcher_info info;
    vkt_batcher_query(b, &info);
    cr_assert_eq(info.batch_size, 32, "the default batch size");
    uint32_t count = 99;
    float buf[32 * 3];
    cr_assert_eq(vkt_batcher_next(b, buf, NULL, &count), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(count, 99);
    cr_assert_eq(vkt_batcher_next(b, buf, buf, &count), VKT_OK);
    cr_assert_eq(count, 10);
    cr_assert_eq(vkt_batcher_next_view(b, NULL), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_batcher_restore(b, NULL), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_batcher_query(NULL, &info), VKT_ERROR_INVALID_ARGUMENT);
    vkt_batcher_destroy(b);
    vkt_batcher_destroy(NULL);
    vkt_dataset_destroy(ds);
}
