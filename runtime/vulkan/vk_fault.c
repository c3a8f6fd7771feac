/* vk_fault.c: injected Vulkan failures for tests (VK_FAULT, VKT_TEST_FAULT)
 * and the lost-device state; see vk_fault.h. */
#include "vk_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct fault_slot {
    atomic_uint_fast64_t nth;   /* 0: count only */
    atomic_uint_fast64_t calls; /* since armed */
    atomic_int result;          /* VkResult */
} fault_slot;

static fault_slot slots[VK_FAULT_KIND_COUNT];
/* Bit per armed kind: the fast path of an unarmed hook is one load. */
static atomic_uint armed;
static atomic_uint_fast64_t injected;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static const char *const kind_names[VK_FAULT_KIND_COUNT] = {
    [VK_FAULT_DEVICE] = "device", [VK_FAULT_ALLOCATION] = "alloc",
    [VK_FAULT_PIPELINE] = "pipeline", [VK_FAULT_SUBMIT] = "submit"};

static void arm(vk_fault_kind kind, uint64_t nth, VkResult result) {
    atomic_store(&slots[kind].nth, nth);
    atomic_store(&slots[kind].calls, 0);
    atomic_store(&slots[kind].result, (int)result);
    atomic_fetch_or(&armed, 1u << kind);
}

/* "KIND:N:RESULT[,...]"; a malformed entry is ignored rather than guessed
 * at: this runs inside whatever program the variable was set for, which has
 * no way to hear about a typo except that no fault happens. */
static void parse_one(const char *entry, size_t len) {
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return;
    memcpy(buf, entry, len);
    buf[len] = '\0';
    char *first = strchr(buf, ':');
    char *second = first ? strchr(first + 1, ':') : NULL;
    if (!second)
        return;
    *first = *second = '\0';
    char *end;
    unsigned long long nth = strtoull(first + 1, &end, 10);
    if (*end != '\0' || nth == 0)
        return;
    VkResult result = strcmp(second + 1, "oom") == 0    ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                      : strcmp(second + 1, "lost") == 0 ? VK_ERROR_DEVICE_LOST
                                                        : VK_SUCCESS;
    if (result == VK_SUCCESS)
        return;
    for (int k = 0; k < VK_FAULT_KIND_COUNT; k++)
        if (strcmp(buf, kind_names[k]) == 0)
            arm((vk_fault_kind)k, nth, result);
}

static void read_environment(void) {
    const char *env = getenv("VKT_TEST_FAULT");
    while (env && *env) {
        size_t len = strcspn(env, ",");
        parse_one(env, len);
        env += len + (env[len] == ',');
    }
}

void vk_fault_arm(vk_fault_kind kind, uint64_t nth, VkResult result) {
    VKT_ASSERT(kind < VK_FAULT_KIND_COUNT);
    pthread_once(&env_once, read_environment); /* so a later first hook cannot override this */
    arm(kind, nth, result);
}

void vk_fault_disarm(void) {
    pthread_once(&env_once, read_environment);
    atomic_store(&armed, 0);
    for (int k = 0; k < VK_FAULT_KIND_COUNT; k++) {
        atomic_store(&slots[k].nth, 0);
        atomic_store(&slots[k].calls, 0);
    }
}

uint64_t vk_fault_calls(vk_fault_kind kind) {
    VKT_ASSERT(kind < VK_FAULT_KIND_COUNT);
    return atomic_load(&slots[kind].calls);
}

uint64_t vk_fault_injected(void) { return atomic_load(&injected); }

bool vk_fault_fires(vk_fault_kind kind) {
    pthread_once(&env_once, read_environment);
    if (!(atomic_load_explicit(&armed, memory_order_relaxed) & (1u << kind)))
        return false;
    uint64_t call = atomic_fetch_add(&slots[kind].calls, 1) + 1;
    if (call != atomic_load(&slots[kind].nth))
        return false;
    atomic_fetch_add(&injected, 1);
    return true;
}

VkResult vk_fault_result(vk_fault_kind kind) { return (VkResult)atomic_load(&slots[kind].result); }

void vk_mark_lost(vkt_context *ctx) {
    /* vkt_device_list reports through a bare context without backend state. */
    if (ctx && ctx->backend == VKT_BACKEND_VULKAN && ctx->backend_state)
        vk_of(ctx)->lost = true;
}

vkt_result vk_lost_error(vkt_context *ctx, const char *what) {
    return vkt_error(ctx, VKT_ERROR_DEVICE_LOST,
                     "%s: the device was lost earlier and cannot run work any more; destroy the "
                     "context and make a new one (reload the last checkpoint to continue "
                     "training)",
                     what);
}
