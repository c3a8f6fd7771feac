/* vkt-info: lists the Vulkan devices vktrain can see, their limits and
 * features, and which one a context would pick (VKT_DEVICE honoured).
 * With --json the same facts come out as one JSON object for scripts.
 *
 * "No Vulkan" is a normal outcome, not a failure: vktrain then runs on its
 * fast CPU backend, so this tool says so and exits 0. It exits 1 only when the
 * listing itself fails in an unexpected way, and 2 on bad arguments. */
#include "vktrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VKT_VERSION
#define VKT_VERSION "unknown"
#endif

/* PCI vendor ids, plus the Khronos-registered ids (VkVendorId) used by
 * drivers that have no PCI id of their own (lavapipe reports Mesa). */
static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x1002: return "AMD";
    case 0x1010: return "Imagination";
    case 0x106B: return "Apple";
    case 0x10DE: return "NVIDIA";
    case 0x13B5: return "ARM";
    case 0x1414: return "Microsoft";
    case 0x144D: return "Samsung";
    case 0x14E4: return "Broadcom";
    case 0x19E5: return "Huawei";
    case 0x1AE0: return "Google";
    case 0x5143: return "Qualcomm";
    case 0x8086: return "Intel";
    case 0x10001: return "Vivante";
    case 0x10002: return "VeriSilicon";
    case 0x10003: return "Kazan";
    case 0x10004: return "Codeplay";
    case 0x10005: return "Mesa";
    case 0x10006: return "PoCL";
    case 0x10007: return "MoltenVK";
    default: return "unknown";
    }
}

static const char *type_name(vkt_device_type type) {
    switch (type) {
    case VKT_DEVICE_INTEGRATED_GPU: return "integrated GPU";
    case VKT_DEVICE_DISCRETE_GPU: return "discrete GPU";
    case VKT_DEVICE_VIRTUAL_GPU: return "virtual GPU";
    case VKT_DEVICE_CPU: return "CPU";
    default: return "other";
    }
}

/* VK_API_VERSION_MAJOR/MINOR/PATCH, without needing vulkan.h. */
static void format_api_version(uint32_t v, char *buf, size_t size) {
    snprintf(buf, size, "%u.%u.%u", (v >> 22) & 0x7Fu, (v >> 12) & 0x3FFu, v & 0xFFFu);
}

static void format_bytes(uint64_t bytes, char *buf, size_t size) {
    if (bytes >= (1ull << 30))
        snprintf(buf, size, "%.1f GiB", (double)bytes / (double)(1ull << 30));
    else if (bytes >= (1ull << 20))
        snprintf(buf, size, "%.1f MiB", (double)bytes / (double)(1ull << 20));
    else
        snprintf(buf, size, "%.1f KiB", (double)bytes / 1024.0);
}

/* The environment variables that change what a context does. */
typedef struct environment {
    const char *backend; /* VKT_BACKEND, NULL if unset or empty */
    const char *device;  /* VKT_DEVICE, NULL if unset or empty */
    bool forced_cpu;     /* VKT_BACKEND=cpu: no device is used at all */
    bool forced_cpu_fast; /* VKT_BACKEND=cpu-fast: no device either */
    bool forced_vulkan;  /* VKT_BACKEND=vulkan: no CPU fallback */
    bool bad_backend;    /* any other VKT_BACKEND value makes every create fail */
} environment;

static const char *env_or_null(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Where vkt_context_create with a zero desc ends up, following the same
 * rules as the runtime: the environment first, then the preferred device,
 * then the CPU fallback for a default backend, which a VKT_DEVICE that
 * matches nothing does not get (the runtime fails rather than silently
 * ignore a device the user named). */
typedef enum outcome { OUTCOME_VULKAN, OUTCOME_CPU, OUTCOME_CPU_FAST, OUTCOME_FAILS } outcome;

static outcome default_outcome(const environment *env, uint32_t preferred) {
    if (env->bad_backend)
        return OUTCOME_FAILS;
    if (env->forced_cpu)
        return OUTCOME_CPU;
    if (env->forced_cpu_fast)
        return OUTCOME_CPU_FAST;
    if (preferred != UINT32_MAX)
        return OUTCOME_VULKAN;
    return env->forced_vulkan || env->device ? OUTCOME_FAILS : OUTCOME_CPU_FAST;
}

static const char *outcome_name(outcome o) {
    switch (o) {
    case OUTCOME_VULKAN: return "vulkan";
    case OUTCOME_CPU: return "cpu";
    case OUTCOME_CPU_FAST: return "cpu-fast";
    case OUTCOME_FAILS: break;
    }
    return "none";
}

// ---- Text output

static void print_device_text(uint32_t index, const vkt_device_info *d, bool picked,
                              const environment *env) {
    char api[32], shared[32], range[32], local[32];
    format_api_version(d->api_version, api, sizeof api);
    format_bytes(d->max_shared_memory, shared, sizeof shared);
    format_bytes(d->max_storage_buffer_range, range, sizeof range);
    format_bytes(d->device_local_bytes, local, sizeof local);
    const char *mark = "";
    if (picked)
        mark = default_outcome(env, index) == OUTCOME_VULKAN
                   ? "   <- vktrain picks this one"
                   : "   <- preferred device (unused because of VKT_BACKEND)";
    printf("Device %u: %s%s\n", index, d->name, mark);
    printf("  type                     %s\n", type_name(d->type));
    printf("  vendor                   %s (0x%04x), device id 0x%04x\n", vendor_name(d->vendor_id),
           d->vendor_id, d->device_id);
    printf("  driver                   %s%s%s\n", d->driver_name[0] ? d->driver_name : "(not reported)",
           d->driver_info[0] ? ", " : "", d->driver_info);
    printf("  API version              %s\n", api);
    printf("  subgroup size            %u\n", d->subgroup_size);
    printf("  shared memory            %s per workgroup\n", shared);
    printf("  workgroup invocations    %u max\n", d->max_workgroup_invocations);
    printf("  workgroup size           %u x %u x %u max\n", d->max_workgroup_size[0],
           d->max_workgroup_size[1], d->max_workgroup_size[2]);
    printf("  storage buffer range     %s (%llu bytes)\n", range,
           (unsigned long long)d->max_storage_buffer_range);
    printf("  device-local memory      %s (largest heap)\n", local);
    printf("  fp16 arithmetic          %s\n", d->fp16 ? "yes" : "no");
    printf("  compute timestamps       %s\n", d->timestamps ? "yes" : "no");
    if (d->suitable)
        printf("  usable by vktrain        yes\n");
    else
        printf("  usable by vktrain        no: %s\n", d->unsuitable_reason);
}

/* The closing sentence: what a program calling vkt_context_create gets. */
static void print_outcome_text(const environment *env, uint32_t preferred,
                               const vkt_device_info *infos) {
    switch (default_outcome(env, preferred)) {
    case OUTCOME_VULKAN:
        printf("vktrain uses device %u (%s) unless the context desc names another.\n", preferred,
               infos[preferred].name);
        break;
    case OUTCOME_CPU:
        printf("VKT_BACKEND=cpu: contexts use the CPU reference backend, no Vulkan device.\n");
        break;
    case OUTCOME_CPU_FAST:
        if (env->forced_cpu_fast)
            printf("VKT_BACKEND=cpu-fast: contexts use the fast CPU backend, no Vulkan device.\n");
        else
            printf("No usable Vulkan device: contexts fall back to the fast CPU backend.\n");
        break;
    case OUTCOME_FAILS:
        if (env->bad_backend)
            printf("VKT_BACKEND=%s is not 'cpu', 'cpu-fast' or 'vulkan': every context creation "
                   "fails.\n", env->backend);
        else if (env->forced_vulkan)
            printf("VKT_BACKEND=vulkan but no usable device%s%s: creating a context fails;\n"
                   "unset VKT_BACKEND to fall back to the CPU backend.\n",
                   env->device ? " matches VKT_DEVICE=" : "", env->device ? env->device : "");
        else
            printf("No usable Vulkan device matches VKT_DEVICE=%s: creating a context fails\n"
                   "(a named device is never silently replaced); unset VKT_DEVICE to fall back to\n"
                   "the fast CPU backend.\n",
                   env->device);
        break;
    }
}

static void print_text(const vkt_device_info *infos, uint32_t count, uint32_t preferred,
                       const environment *env) {
    printf("vktrain %s: %u Vulkan device%s\n", VKT_VERSION, count, count == 1 ? "" : "s");
    if (env->device)
        printf("VKT_DEVICE=%s\n", env->device);
    if (env->backend)
        printf("VKT_BACKEND=%s\n", env->backend);
    for (uint32_t i = 0; i < count; i++) {
        printf("\n");
        print_device_text(i, &infos[i], i == preferred, env);
    }
    printf("\n");
    print_outcome_text(env, preferred, infos);
}

static void print_no_vulkan_text(vkt_result r, const environment *env) {
    printf("vktrain %s: no Vulkan %s\n", VKT_VERSION,
           r == VKT_ERROR_NO_VULKAN ? "loader (libvulkan.so.1 could not be loaded)" : "device");
    printf("  reason: %s\n", vkt_last_error());
    if (default_outcome(env, UINT32_MAX) == OUTCOME_FAILS)
        printf("VKT_BACKEND=%s is set, so creating a context fails; unset it to use the fast\n"
               "CPU backend.\n", env->backend);
    else
        printf("The CPU backends still work: contexts fall back to the fast one automatically\n"
               "(or force it with VKT_BACKEND=cpu-fast; VKT_BACKEND=cpu is the reference).\n");
    /* The loader's own message already says what to install. */
    if (r == VKT_ERROR_NO_DEVICE)
        printf("On Debian, 'apt-get install mesa-vulkan-drivers' gives a Vulkan device even\n"
               "without a GPU (lavapipe, which runs on the CPU).\n");
}

// ---- JSON output

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_env(const char *key, const char *value) {
    printf("  \"%s\": ", key);
    if (value)
        json_string(value);
    else
        printf("null");
    printf(",\n");
}

static void print_device_json(uint32_t index, const vkt_device_info *d, bool picked, bool last) {
    char api[32];
    format_api_version(d->api_version, api, sizeof api);
    printf("    {\n      \"index\": %u,\n      \"name\": ", index);
    json_string(d->name);
    printf(",\n      \"type\": \"%s\",\n", type_name(d->type));
    printf("      \"vendor_id\": %u,\n      \"vendor\": \"%s\",\n", d->vendor_id,
           vendor_name(d->vendor_id));
    printf("      \"device_id\": %u,\n      \"driver_name\": ", d->device_id);
    json_string(d->driver_name);
    printf(",\n      \"driver_info\": ");
    json_string(d->driver_info);
    printf(",\n      \"api_version\": \"%s\",\n", api);
    printf("      \"subgroup_size\": %u,\n", d->subgroup_size);
    printf("      \"max_shared_memory\": %u,\n", d->max_shared_memory);
    printf("      \"max_workgroup_invocations\": %u,\n", d->max_workgroup_invocations);
    printf("      \"max_workgroup_size\": [%u, %u, %u],\n", d->max_workgroup_size[0],
           d->max_workgroup_size[1], d->max_workgroup_size[2]);
    printf("      \"max_storage_buffer_range\": %llu,\n",
           (unsigned long long)d->max_storage_buffer_range);
    printf("      \"device_local_bytes\": %llu,\n", (unsigned long long)d->device_local_bytes);
    printf("      \"fp16\": %s,\n", d->fp16 ? "true" : "false");
    printf("      \"timestamps\": %s,\n", d->timestamps ? "true" : "false");
    printf("      \"suitable\": %s,\n      \"unsuitable_reason\": ", d->suitable ? "true" : "false");
    if (d->suitable)
        printf("null");
    else
        json_string(d->unsuitable_reason);
    printf(",\n      \"preferred\": %s\n    }%s\n", picked ? "true" : "false", last ? "" : ",");
}

/* `error` is NULL when the listing worked. */
static void print_json(const vkt_device_info *infos, uint32_t count, uint32_t preferred,
                       const environment *env, const char *error) {
    printf("{\n  \"version\": \"%s\",\n", VKT_VERSION);
    json_env("VKT_BACKEND", env->backend);
    json_env("VKT_DEVICE", env->device);
    printf("  \"vulkan\": %s,\n  \"error\": ", error ? "false" : "true");
    if (error)
        json_string(error);
    else
        printf("null");
    /* The backend a default context ends up on, so a script need not
     * repeat vktrain's fallback rules. */
    printf(",\n  \"backend\": \"%s\",\n", outcome_name(default_outcome(env, preferred)));
    printf("  \"preferred\": ");
    if (preferred == UINT32_MAX)
        printf("null");
    else
        printf("%u", preferred);
    printf(",\n  \"devices\": [\n");
    for (uint32_t i = 0; i < count; i++)
        print_device_json(i, &infos[i], i == preferred, i + 1 == count);
    printf("  ]\n}\n");
}

static void usage(FILE *f) {
    fprintf(f, "usage: vkt-info [--json]\n"
               "Lists the Vulkan devices vktrain can use and marks the one it would pick.\n"
               "Honours VKT_DEVICE (index or name substring) and VKT_BACKEND.\n");
}

int main(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vkt-info: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    environment env = {.backend = env_or_null("VKT_BACKEND"), .device = env_or_null("VKT_DEVICE")};
    env.forced_cpu = env.backend && strcmp(env.backend, "cpu") == 0;
    env.forced_cpu_fast = env.backend && strcmp(env.backend, "cpu-fast") == 0;
    env.forced_vulkan = env.backend && strcmp(env.backend, "vulkan") == 0;
    env.bad_backend = env.backend && !env.forced_cpu && !env.forced_cpu_fast && !env.forced_vulkan;

    uint32_t count = 0, preferred = UINT32_MAX;
    vkt_result r = vkt_device_list(&count, NULL, NULL);
    vkt_device_info *infos = NULL;
    if (r == VKT_OK) {
        infos = calloc(count ? count : 1, sizeof *infos);
        if (!infos) {
            fprintf(stderr, "vkt-info: out of memory\n");
            return 1;
        }
        r = vkt_device_list(&count, infos, &preferred);
    }
    int status = 0;
    if (r == VKT_OK) {
        if (json)
            print_json(infos, count, preferred, &env, NULL);
        else
            print_text(infos, count, preferred, &env);
    } else if (r == VKT_ERROR_NO_VULKAN || r == VKT_ERROR_NO_DEVICE) {
        if (json)
            print_json(NULL, 0, UINT32_MAX, &env, vkt_last_error());
        else
            print_no_vulkan_text(r, &env);
    } else {
        fprintf(stderr, "vkt-info: listing Vulkan devices failed: %s\n", vkt_last_error());
        if (json)
            print_json(NULL, 0, UINT32_MAX, &env, vkt_last_error());
        status = 1;
    }
    free(infos);
    return status;
}
