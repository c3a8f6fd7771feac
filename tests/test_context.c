/* test_context.c: context lifetime, the block allocator, backend and device
 * choice (desc, VKT_BACKEND, VKT_DEVICE, VKT_VALIDATION, no driver at all),
 * the device list, and proof that the validation messenger really counts.
 *
 * Criterion runs every test in its own process, so tests may set
 * environment variables freely. */
#include "harness.h"

#include "../runtime/vulkan/vk_internal.h"

#include <stdlib.h>
#include <string.h>

#define MIB ((uint64_t)1 << 20)

/* The harness's Vulkan contexts ask for validation in the desc; these tests
 * set the environment themselves, so start from a clean one. */
static void clean_environment(void) {
    unsetenv("VKT_BACKEND");
    unsetenv("VKT_DEVICE");
    unsetenv("VKT_VALIDATION");
}

TestSuite(context, .init = clean_environment, .timeout = 120);

static vkt_tensor *make(vkt_context *ctx, const char *name, int64_t n) {
    vkt_tensor *t = NULL;
    cr_assert_eq(vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 1, .dims = {n}, .name = name},
                                   &t),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    return t;
}

static vkt_context_info query(const vkt_context *ctx) {
    vkt_context_info info;
    cr_assert_eq(vkt_context_query(ctx, &info), VKT_OK);
    return info;
}

/* A little real work so every context runs a kernel and transfers data. */
static void exercise(vkt_context *ctx) {
    vkt_tensor *a = make(ctx, "a", 64), *b = make(ctx, "b", 64);
    float ones[64], got[64];
    for (int i = 0; i < 64; i++)
        ones[i] = 1.0f;
    cr_assert_eq(vkt_tensor_upload(a, ones, 64), VKT_OK);
    cr_assert_eq(vkt_scale(ctx, b, a, 3.0f), VKT_OK, "%s", vkt_context_last_error(ctx));
    cr_assert_eq(vkt_tensor_download(b, got, 64), VKT_OK);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(got[i], 3.0f);
    vkt_tensor_destroy(a);
    vkt_tensor_destroy(b);
}

// ---- Lifetime

Test(context, vulkan_create_destroy_repeatedly) {
    for (int round = 0; round < 3; round++) {
        vkt_context *ctx = h_vulkan();
        exercise(ctx);
        /* Two live contexts at once, each with its own device and tensors. */
        vkt_context *second = h_vulkan();
        vkt_tensor *keep = make(ctx, "keep", 1000);
        exercise(second);
        vkt_tensor_destroy(keep);
        h_finish(second);
        h_finish(ctx);
    }
}

/* Contexts with and without validation alive together, destroyed in both
 * orders, and the device list (an instance of its own) made in between:
 * none may pull the instance functions from under another. Destroying a
 * validated context used to call a debug-utils function pointer that a
 * later instance without the extension had reset to NULL. */
Test(context, validated_and_plain_contexts_interleaved) {
    for (int order = 0; order < 2; order++) {
        vkt_context *validated = h_vulkan(), *plain = NULL;
        cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN},
                                        &plain),
                     VKT_OK, "%s", vkt_last_error());
        cr_assert_not(query(plain).validation);
        uint32_t count = 0;
        cr_assert_eq(vkt_device_list(&count, NULL, NULL), VKT_OK, "%s", vkt_last_error());
        exercise(validated);
        exercise(plain);
        if (order == 0) {
            h_finish(validated);
            vkt_context_destroy(plain);
        } else {
            vkt_context_destroy(plain);
            exercise(validated);
            h_finish(validated);
        }
    }
}

Test(context, cpu_create_destroy_repeatedly) {
    for (int round = 0; round < 20; round++) {
        vkt_context *ctx = h_cpu();
        exercise(ctx);
        vkt_tensor *big = make(ctx, "big", 5 << 20); /* larger than a default block */
        vkt_tensor_destroy(big);
        h_finish(ctx);
    }
}

// ---- Memory blocks and the allocator

/* Fills every tensor with its own value and checks all of them: tensors
 * that overlapped would show another tensor's value. */
static void fill_and_check(vkt_context *ctx, vkt_tensor **tensors, const int64_t *sizes,
                           size_t count) {
    for (size_t i = 0; i < count; i++)
        if (tensors[i])
            cr_assert_eq(vkt_fill(ctx, tensors[i], (float)i), VKT_OK, "%s",
                         vkt_context_last_error(ctx));
    for (size_t i = 0; i < count; i++) {
        if (!tensors[i])
            continue;
        float *data = h_alloc_floats((size_t)sizes[i]);
        cr_assert_eq(vkt_tensor_download(tensors[i], data, (size_t)sizes[i]), VKT_OK);
        for (int64_t j = 0; j < sizes[i]; j++)
            cr_assert_eq(data[j], (float)i, "tensor %zu element %lld is %g", i, (long long)j,
                         data[j]);
        free(data);
    }
}

/* Each block's free list is one range covering the whole block: every
 * freed neighbour was merged back. */
static void assert_fully_coalesced(const vkt_context *ctx) {
    for (uint32_t i = 0; i < ctx->block_count; i++) {
        const vkt_block *b = ctx->blocks[i];
        cr_assert_eq(b->bytes_used, 0, "block %u still has %llu bytes in use", i,
                     (unsigned long long)b->bytes_used);
        cr_assert_eq(b->free_count, 1, "block %u has %u free ranges after freeing all", i,
                     b->free_count);
        cr_assert_eq(b->free_ranges[0].offset, 0);
        cr_assert_eq(b->free_ranges[0].size, b->size);
    }
}

/* More than two default blocks' worth of tensors (> 128 MiB on Vulkan):
 * several blocks, no overlap, a kernel across blocks, and the memory
 * accounting adds up. */
static void many_tensors(vkt_context *ctx) {
    enum { COUNT = 14, PER_BLOCK = 6 };
    int64_t floats = (int64_t)(ctx->default_block_size / 4 / PER_BLOCK) - 100;
    vkt_tensor *t[COUNT];
    int64_t sizes[COUNT];
    for (int i = 0; i < COUNT; i++) {
        sizes[i] = floats;
        t[i] = make(ctx, "t", floats);
    }
    vkt_context_info info = query(ctx);
    cr_assert_eq(ctx->block_count, (COUNT + PER_BLOCK - 1) / PER_BLOCK, "%u blocks",
                 ctx->block_count);
    cr_assert_geq(info.bytes_in_use, (uint64_t)COUNT * (uint64_t)floats * 4);
    cr_assert_geq(info.bytes_reserved, info.bytes_in_use);
    cr_assert_eq(info.bytes_reserved, ctx->block_count * ctx->default_block_size);
    fill_and_check(ctx, t, sizes, COUNT);
    /* A kernel whose operands live in different blocks. */
    cr_assert_neq(t[0]->value.view.block, t[COUNT - 1]->value.view.block);
    cr_assert_eq(vkt_add(ctx, t[1], t[0], t[COUNT - 1]), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    float *sum = h_alloc_floats((size_t)floats);
    cr_assert_eq(vkt_tensor_download(t[1], sum, (size_t)floats), VKT_OK);
    cr_assert_eq(sum[0], (float)(COUNT - 1));
    cr_assert_eq(sum[floats - 1], (float)(COUNT - 1));
    free(sum);
    for (int i = 0; i < COUNT; i++)
        vkt_tensor_destroy(t[i]);
    assert_fully_coalesced(ctx);
    cr_assert_eq(query(ctx).bytes_in_use, 0);
}

Test(context, many_tensors_several_blocks_vulkan) {
    vkt_context *ctx = h_vulkan();
    cr_assert_geq(ctx->default_block_size, 64 * MIB);
    many_tensors(ctx);
    h_finish(ctx);
}

Test(context, many_tensors_several_blocks_cpu) {
    vkt_context *ctx = h_cpu();
    many_tensors(ctx);
    h_finish(ctx);
}

/* A tensor larger than a default block gets a block of its own; one larger
 * than a storage binding can address is refused with a message. */
Test(context, oversized_tensors_vulkan) {
    vkt_context *ctx = h_vulkan();
    uint64_t limit = ctx->max_tensor_bytes;
    cr_assert_gt(limit, ctx->default_block_size);
    int64_t floats = (int64_t)((ctx->default_block_size + limit) / 2 / 4);
    vkt_tensor *big = make(ctx, "big", floats);
    cr_assert_gt(big->value.view.block->size, ctx->default_block_size);
    cr_assert_eq(vkt_fill(ctx, big, 2.0f), VKT_OK, "%s", vkt_context_last_error(ctx));
    float *data = h_alloc_floats((size_t)floats);
    cr_assert_eq(vkt_tensor_download(big, data, (size_t)floats), VKT_OK);
    cr_assert_eq(data[0], 2.0f);
    cr_assert_eq(data[floats - 1], 2.0f);
    free(data);
    vkt_tensor_destroy(big);

    vkt_tensor *sentinel = (vkt_tensor *)&limit, *out = sentinel;
    vkt_result r = vkt_tensor_create(
        ctx, &(vkt_tensor_desc){.ndim = 2, .dims = {(int64_t)(limit / 4 / 1024) + 1, 1024},
                                .name = "too_big"},
        &out);
    cr_assert_eq(r, VKT_ERROR_OUT_OF_DEVICE_MEMORY, "%s", vkt_result_string(r));
    cr_assert(strstr(vkt_context_last_error(ctx), "storage binding"), "%s",
              vkt_context_last_error(ctx));
    cr_assert_eq(out, sentinel);
    cr_assert_eq(query(ctx).bytes_in_use, 0);
    h_finish(ctx);
}

static uint64_t rng_state;
static uint32_t rng(uint32_t bound) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng_state >> 33) % bound);
}

static void shuffle(size_t *order, size_t n) {
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng((uint32_t)i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
}

/* Random sizes, freed in random order, holes refilled: survivors keep
 * their data, nothing overlaps, and once everything is freed each block is
 * one free range again, so a block-sized tensor fits without a new block. */
static void random_free_and_reallocate(vkt_context *ctx) {
    enum { COUNT = 48 };
    rng_state = 12345;
    vkt_tensor *t[COUNT];
    int64_t sizes[COUNT];
    size_t order[COUNT];
    int64_t max_floats = (int64_t)(ctx->default_block_size / 4 / 12);
    for (size_t i = 0; i < COUNT; i++) {
        sizes[i] = 1 + (int64_t)rng((uint32_t)max_floats);
        t[i] = make(ctx, "r", sizes[i]);
    }
    uint32_t blocks = ctx->block_count;
    cr_assert_geq(blocks, 2);
    fill_and_check(ctx, t, sizes, COUNT);
    for (int round = 0; round < 3; round++) {
        shuffle(order, COUNT);
        for (size_t i = 0; i < COUNT / 2; i++) {
            vkt_tensor_destroy(t[order[i]]);
            t[order[i]] = NULL;
        }
        fill_and_check(ctx, t, sizes, COUNT);
        for (size_t i = 0; i < COUNT / 2; i++) {
            size_t k = order[i];
            sizes[k] = 1 + (int64_t)rng((uint32_t)max_floats);
            t[k] = make(ctx, "r", sizes[k]);
        }
        fill_and_check(ctx, t, sizes, COUNT);
    }
    shuffle(order, COUNT);
    for (size_t i = 0; i < COUNT; i++)
        vkt_tensor_destroy(t[order[i]]);
    assert_fully_coalesced(ctx);
    uint64_t reserved = query(ctx).bytes_reserved;
    uint32_t block_count = ctx->block_count;
    vkt_tensor *whole = make(ctx, "whole", (int64_t)(ctx->default_block_size / 4));
    cr_assert_eq(ctx->block_count, block_count, "a block-sized tensor needed a new block");
    cr_assert_eq(query(ctx).bytes_reserved, reserved);
    vkt_tensor_destroy(whole);
    assert_fully_coalesced(ctx);
}

Test(context, free_random_order_then_reallocate_vulkan) {
    vkt_context *ctx = h_vulkan();
    random_free_and_reallocate(ctx);
    h_finish(ctx);
}

Test(context, free_random_order_then_reallocate_cpu) {
    vkt_context *ctx = h_cpu();
    random_free_and_reallocate(ctx);
    h_finish(ctx);
}

// ---- Backend and device choice from the environment

static vkt_context *create(vkt_backend backend, const char *device, vkt_result want) {
    vkt_context *ctx = NULL;
    vkt_result r = vkt_context_create(&(vkt_context_desc){.backend = backend, .device = device},
                                      &ctx);
    cr_assert_eq(r, want, "got %s, expected %s: %s", vkt_result_string(r),
                 vkt_result_string(want), vkt_last_error());
    cr_assert_eq(ctx == NULL, want != VKT_OK);
    return ctx;
}

Test(context, env_backend_cpu_overrides_desc) {
    setenv("VKT_BACKEND", "cpu", 1);
    vkt_context *ctx = create(VKT_BACKEND_VULKAN, NULL, VKT_OK);
    cr_assert_eq(query(ctx).backend, VKT_BACKEND_CPU);
    h_finish(ctx);
}

Test(context, env_backend_vulkan_overrides_desc) {
    setenv("VKT_BACKEND", "vulkan", 1);
    vkt_context *ctx = create(VKT_BACKEND_CPU, NULL, VKT_OK);
    cr_assert_eq(query(ctx).backend, VKT_BACKEND_VULKAN);
    exercise(ctx);
    h_finish(ctx);
}

Test(context, env_backend_invalid_value) {
    setenv("VKT_BACKEND", "gpu", 1);
    create(VKT_BACKEND_DEFAULT, NULL, VKT_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(vkt_last_error(), "VKT_BACKEND='gpu'"), "%s", vkt_last_error());
}

Test(context, default_backend_is_vulkan_when_a_device_exists) {
    vkt_context *ctx = create(VKT_BACKEND_DEFAULT, NULL, VKT_OK);
    cr_assert_eq(query(ctx).backend, VKT_BACKEND_VULKAN);
    h_finish(ctx);
}

Test(context, env_device_by_index) {
    setenv("VKT_DEVICE", "0", 1);
    vkt_context *ctx = create(VKT_BACKEND_VULKAN, NULL, VKT_OK);
    cr_assert_eq(query(ctx).device_index, 0);
    h_finish(ctx);
}

Test(context, env_device_by_name_substring) {
    const char *requests[] = {"llvmpipe", "LLVMPIPE", "pipe"};
    for (size_t i = 0; i < 3; i++) {
        setenv("VKT_DEVICE", requests[i], 1);
        vkt_context *ctx = create(VKT_BACKEND_VULKAN, NULL, VKT_OK);
        vkt_context_info info = query(ctx);
        cr_assert(strstr(info.device_name, "llvmpipe"), "'%s' picked '%s'", requests[i],
                  info.device_name);
        h_finish(ctx);
    }
}

Test(context, env_device_no_match) {
    setenv("VKT_DEVICE", "NoSuchGPU 9000", 1);
    create(VKT_BACKEND_VULKAN, NULL, VKT_ERROR_NO_DEVICE);
    cr_assert(strstr(vkt_last_error(), "'NoSuchGPU 9000'"), "%s", vkt_last_error());
}

Test(context, env_device_index_out_of_range) {
    setenv("VKT_DEVICE", "99", 1);
    create(VKT_BACKEND_VULKAN, NULL, VKT_ERROR_NO_DEVICE);
    cr_assert(strstr(vkt_last_error(), "device index 99"), "%s", vkt_last_error());
}

/* The desc's device request works on its own, and VKT_DEVICE wins over it. */
Test(context, desc_device_and_env_precedence) {
    vkt_context *ctx = create(VKT_BACKEND_VULKAN, "llvmpipe", VKT_OK);
    h_finish(ctx);
    create(VKT_BACKEND_VULKAN, "no-such-device", VKT_ERROR_NO_DEVICE);
    cr_assert(strstr(vkt_last_error(), "'no-such-device'"), "%s", vkt_last_error());
    setenv("VKT_DEVICE", "llvmpipe", 1);
    ctx = create(VKT_BACKEND_VULKAN, "no-such-device", VKT_OK);
    h_finish(ctx);
}

Test(context, env_validation) {
    setenv("VKT_VALIDATION", "1", 1);
    vkt_context *ctx = create(VKT_BACKEND_VULKAN, NULL, VKT_OK);
    cr_assert(query(ctx).validation);
    h_finish(ctx);
    setenv("VKT_VALIDATION", "0", 1);
    ctx = NULL;
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN,
                                                        .validation = true},
                                    &ctx),
                 VKT_OK, "%s", vkt_last_error());
    cr_assert_not(query(ctx).validation);
    h_finish(ctx);
}

// ---- No Vulkan driver at all

/* The loader finds no driver manifest: the default backend falls back to
 * the fast CPU backend, an explicit Vulkan request fails with a message. */
static void hide_drivers(void) {
    clean_environment();
    setenv("VK_ICD_FILENAMES", "/nonexistent.json", 1);
    setenv("VK_DRIVER_FILES", "/nonexistent.json", 1);
}

TestSuite(no_driver, .init = hide_drivers, .timeout = 60);

Test(no_driver, default_falls_back_to_cpu_fast) {
    vkt_context *ctx = create(VKT_BACKEND_DEFAULT, NULL, VKT_OK);
    cr_assert_eq(query(ctx).backend, VKT_BACKEND_CPU_FAST);
    cr_assert_str_neq(query(ctx).device_name, "CPU reference");
    exercise(ctx);
    h_finish(ctx);
}

/* Without a driver the reference is still there when asked for. */
Test(no_driver, cpu_reference_on_request) {
    setenv("VKT_BACKEND", "cpu", 1);
    vkt_context *ctx = create(VKT_BACKEND_DEFAULT, NULL, VKT_OK);
    cr_assert_eq(query(ctx).backend, VKT_BACKEND_CPU);
    cr_assert_str_eq(query(ctx).device_name, "CPU reference");
    exercise(ctx);
    h_finish(ctx);
}

Test(no_driver, vulkan_request_fails_with_message) {
    for (int validation = 0; validation < 2; validation++) {
        vkt_context *ctx = (vkt_context *)&ctx;
        vkt_result r = vkt_context_create(
            &(vkt_context_desc){.backend = VKT_BACKEND_VULKAN, .validation = validation}, &ctx);
        cr_assert_eq(r, VKT_ERROR_NO_DEVICE, "validation %d: %s: %s", validation,
                     vkt_result_string(r), vkt_last_error());
        cr_assert_eq(ctx, (vkt_context *)&ctx, "out_ctx was written on failure");
        cr_assert(strstr(vkt_last_error(), "driver"), "message: '%s'", vkt_last_error());
    }
}

Test(no_driver, device_list_fails_with_message) {
    uint32_t count = 5;
    cr_assert_eq(vkt_device_list(&count, NULL, NULL), VKT_ERROR_NO_DEVICE);
    cr_assert(strstr(vkt_last_error(), "vkt_device_list"), "%s", vkt_last_error());
    cr_assert(strstr(vkt_last_error(), "driver"), "%s", vkt_last_error());
    cr_assert_eq(count, 5, "inout_count was written on failure");
}

// ---- The device list

Test(context, device_list_has_llvmpipe) {
    uint32_t count = 0, preferred = UINT32_MAX;
    cr_assert_eq(vkt_device_list(&count, NULL, &preferred), VKT_OK, "%s", vkt_last_error());
    cr_assert_geq(count, 1);
    cr_assert_lt(preferred, count);
    vkt_device_info *infos = calloc(count, sizeof *infos);
    cr_assert_not_null(infos);
    uint32_t got = count;
    cr_assert_eq(vkt_device_list(&got, infos, NULL), VKT_OK);
    cr_assert_eq(got, count);
    uint32_t lvp = UINT32_MAX;
    for (uint32_t i = 0; i < count; i++)
        if (strstr(infos[i].name, "llvmpipe"))
            lvp = i;
    cr_assert_neq(lvp, UINT32_MAX, "no llvmpipe among %u device(s)", count);
    const vkt_device_info *d = &infos[lvp];
    cr_assert_eq(d->type, VKT_DEVICE_CPU);
    cr_assert(d->suitable, "llvmpipe unsuitable: %s", d->unsuitable_reason);
    cr_assert_str_empty(d->unsuitable_reason);
    cr_assert_geq(d->api_version, (1u << 22) | (1u << 12), "api 0x%x", d->api_version);
    cr_assert_geq(d->subgroup_size, 1);
    cr_assert_geq(d->max_workgroup_invocations, 128);
    cr_assert_geq(d->max_storage_buffer_range, 128 * MIB);
    cr_assert_geq(d->max_shared_memory, 16 * 1024);
    cr_assert_str_not_empty(d->driver_name);

    /* A smaller array gets only that many entries. */
    vkt_device_info one[1];
    memset(one, 0, sizeof one);
    got = 0;
    cr_assert_eq(vkt_device_list(&got, one, NULL), VKT_OK);
    cr_assert_eq(got, 0);
    cr_assert_str_empty(one[0].name, "an entry past the count was written");

    /* VKT_DEVICE steers the preferred index too. */
    setenv("VKT_DEVICE", "llvmpipe", 1);
    got = 0;
    cr_assert_eq(vkt_device_list(&got, NULL, &preferred), VKT_OK);
    cr_assert_eq(preferred, lvp);
    free(infos);
}

// ---- The validation messenger

static int validation_logs;
static void count_validation_logs(vkt_log_level level, const char *message, void *user) {
    (void)user;
    if (level >= VKT_LOG_WARNING && strstr(message, "validation"))
        validation_logs++;
}

/* A deliberately invalid Vulkan call (a buffer of size 0) through the
 * context's own device table must be counted and logged; otherwise "zero
 * validation messages" in every other test would prove nothing. */
Test(context, validation_messenger_counts) {
    vkt_context *ctx = NULL;
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN,
                                                        .validation = true,
                                                        .log = count_validation_logs},
                                    &ctx),
                 VKT_OK, "%s", vkt_last_error());
    cr_assert(query(ctx).validation);
    exercise(ctx);
    cr_assert_eq(vkt_context_validation_messages(ctx), 0);
    cr_assert_eq(validation_logs, 0);

    vk_state *vk = vk_of(ctx);
    VkBuffer buffer = VK_NULL_HANDLE;
    VkResult vr = vk->vk.vkCreateBuffer(vk->device,
                                        &(VkBufferCreateInfo){
                                            .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                                            .size = 0, /* VUID-VkBufferCreateInfo-size-00912 */
                                            .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE},
                                        NULL, &buffer);
    if (vr == VK_SUCCESS && buffer)
        vk->vk.vkDestroyBuffer(vk->device, buffer, NULL);
    cr_assert_gt(vkt_context_validation_messages(ctx), 0);
    cr_assert_gt(validation_logs, 0);
    /* Not h_finish: this context is expected to have messages. */
    vkt_context_destroy(ctx);

    /* The CPU backend has no layer and reports none. */
    vkt_context *cpu = h_cpu();
    cr_assert_eq(vkt_context_validation_messages(cpu), 0);
    h_finish(cpu);
}
