/* vk_device.c: the Vulkan loader, instance, device choice and creation, the
 * validation-layer messenger, and the backend's lifetime. */
#include "vk_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

vkt_result vk_check(vkt_context *ctx, VkResult result, const char *what) {
    switch (result) {
    case VK_SUCCESS:
        return VKT_OK;
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_POOL_MEMORY:
        return vkt_error(ctx, VKT_ERROR_OUT_OF_DEVICE_MEMORY, "%s: out of device memory", what);
    case VK_ERROR_DEVICE_LOST:
        vk_mark_lost(ctx);
        return vkt_error(ctx, VKT_ERROR_DEVICE_LOST, "%s: the device was lost", what);
    default:
        return vkt_error(ctx, VKT_ERROR_VULKAN, "%s failed with VkResult %d", what, (int)result);
    }
}

/* volk's loader handle and instance-level function pointers are
 * process-wide (every context keeps its own device table). Creating and
 * destroying contexts takes this lock so contexts made on different threads
 * never race on them. */
static pthread_mutex_t volk_lock = PTHREAD_MUTEX_INITIALIZER;

void vk_global_lock(void) { pthread_mutex_lock(&volk_lock); }
void vk_global_unlock(void) { pthread_mutex_unlock(&volk_lock); }

vkt_result vk_loader_init(vkt_context *ctx) {
    if (volkGetInstanceVersion() != 0)
        return VKT_OK;
    if (volkInitialize() != VK_SUCCESS)
        return vkt_error(ctx, VKT_ERROR_NO_VULKAN,
                         "no Vulkan loader (libvulkan.so.1) could be loaded; install "
                         "libvulkan1 and a driver (mesa-vulkan-drivers gives a CPU device)");
    return VKT_OK;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)types;
    vkt_context *ctx = user;
    if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        atomic_fetch_add(&vk_of(ctx)->validation_messages, 1);
        vkt_log(ctx, severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? VKT_LOG_ERROR
                                                                             : VKT_LOG_WARNING,
                "validation: %s", data->pMessage);
    }
    return VK_FALSE;
}

static bool layer_available(const char *name) {
    uint32_t count = 0;
    vkEnumerateInstanceLayerProperties(&count, NULL);
    VkLayerProperties *layers = calloc(count ? count : 1, sizeof *layers);
    if (!layers)
        return false;
    vkEnumerateInstanceLayerProperties(&count, layers);
    bool found = false;
    for (uint32_t i = 0; i < count && !found; i++)
        found = strcmp(layers[i].layerName, name) == 0;
    free(layers);
    return found;
}

static VkDebugUtilsMessengerCreateInfoEXT messenger_info(vkt_context *ctx) {
    return (VkDebugUtilsMessengerCreateInfoEXT){
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation_message,
        .pUserData = ctx,
    };
}

/* ctx may be a bare context used only for error messages (vkt_device_list);
 * the messenger is only made when validation is on. */
vkt_result vk_instance_create(vkt_context *ctx, bool validation, VkInstance *out_instance,
                              VkDebugUtilsMessengerEXT *out_messenger) {
    if (validation && !layer_available(VALIDATION_LAYER))
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED,
                         "validation was requested but the layer %s is not installed "
                         "(Debian: apt-get install vulkan-validationlayers)", VALIDATION_LAYER);
    const char *layers[] = {VALIDATION_LAYER};
    const char *extensions[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    /* Synchronization validation proves the recorder's barriers are enough. */
    VkValidationFeatureEnableEXT enables[] = {
        VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkDebugUtilsMessengerCreateInfoEXT messenger = messenger_info(ctx);
    VkValidationFeaturesEXT features = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .pNext = &messenger,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = enables,
    };
    VkInstanceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = validation ? &features : NULL,
        .pApplicationInfo = &(VkApplicationInfo){
            .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
            .pApplicationName = "vktrain",
            .pEngineName = "vktrain",
            .apiVersion = VK_API_VERSION_1_1,
        },
        .enabledLayerCount = validation ? 1 : 0,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = validation ? 1 : 0,
        .ppEnabledExtensionNames = extensions,
    };
    VkInstance instance;
    VkResult vr = vkCreateInstance(&info, NULL, &instance);
    if (vr == VK_ERROR_INCOMPATIBLE_DRIVER)
        return vkt_error(ctx, VKT_ERROR_NO_DEVICE, "vkCreateInstance: no Vulkan 1.1 driver found");
    if (vr != VK_SUCCESS)
        return vk_check(ctx, vr, "vkCreateInstance");
    volkLoadInstanceOnly(instance);
    *out_messenger = VK_NULL_HANDLE;
    if (validation) {
        vr = vkCreateDebugUtilsMessengerEXT(instance, &messenger, NULL, out_messenger);
        if (vr != VK_SUCCESS) {
            vkDestroyInstance(instance, NULL);
            return vk_check(ctx, vr, "vkCreateDebugUtilsMessengerEXT");
        }
    }
    *out_instance = instance;
    return VKT_OK;
}

static vkt_device_type map_type(VkPhysicalDeviceType type) {
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return VKT_DEVICE_INTEGRATED_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return VKT_DEVICE_DISCRETE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return VKT_DEVICE_VIRTUAL_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return VKT_DEVICE_CPU;
    default: return VKT_DEVICE_OTHER;
    }
}

static bool find_compute_queue(VkPhysicalDevice pd, uint32_t *out_family, bool *out_timestamps) {
    uint32_t count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &count, NULL);
    VkQueueFamilyProperties families[32];
    if (count > 32)
        count = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &count, families);
    for (uint32_t i = 0; i < count; i++) {
        if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            *out_family = i;
            *out_timestamps = families[i].timestampValidBits > 0;
            return true;
        }
    }
    return false;
}

void vk_device_info_fill(VkPhysicalDevice pd, vkt_device_info *info) {
    VkPhysicalDeviceDriverProperties driver = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties subgroup = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &driver};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                         .pNext = &subgroup};
    VkPhysicalDeviceProperties basic;
    vkGetPhysicalDeviceProperties(pd, &basic);
    bool has_driver_props = basic.apiVersion >= VK_API_VERSION_1_2;
    if (!has_driver_props)
        subgroup.pNext = NULL;
    vkGetPhysicalDeviceProperties2(pd, &props);
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                          .pNext = basic.apiVersion >= VK_API_VERSION_1_2 ? &f16
                                                                                         : NULL};
    vkGetPhysicalDeviceFeatures2(pd, &features);
    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(pd, &mem);

    const VkPhysicalDeviceLimits *lim = &props.properties.limits;
    *info = (vkt_device_info){
        .type = map_type(props.properties.deviceType),
        .vendor_id = props.properties.vendorID,
        .device_id = props.properties.deviceID,
        .api_version = props.properties.apiVersion,
        .subgroup_size = subgroup.subgroupSize,
        .max_shared_memory = lim->maxComputeSharedMemorySize,
        .max_workgroup_invocations = lim->maxComputeWorkGroupInvocations,
        .max_workgroup_size = {lim->maxComputeWorkGroupSize[0], lim->maxComputeWorkGroupSize[1],
                               lim->maxComputeWorkGroupSize[2]},
        .max_storage_buffer_range = lim->maxStorageBufferRange,
        .fp16 = f16.shaderFloat16,
    };
    snprintf(info->name, sizeof info->name, "%s", props.properties.deviceName);
    if (has_driver_props) {
        snprintf(info->driver_name, sizeof info->driver_name, "%s", driver.driverName);
        snprintf(info->driver_info, sizeof info->driver_info, "%s", driver.driverInfo);
    }
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if ((mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mem.memoryHeaps[i].size > info->device_local_bytes)
            info->device_local_bytes = mem.memoryHeaps[i].size;
    uint32_t family;
    bool timestamps = false;
    info->suitable = true;
    if (props.properties.apiVersion < VK_API_VERSION_1_1) {
        info->suitable = false;
        snprintf(info->unsuitable_reason, sizeof info->unsuitable_reason,
                 "Vulkan 1.1 is needed");
    } else if (!find_compute_queue(pd, &family, &timestamps)) {
        info->suitable = false;
        snprintf(info->unsuitable_reason, sizeof info->unsuitable_reason, "no compute queue");
    }
    info->timestamps = timestamps && lim->timestampComputeAndGraphics;
}

static int type_rank(vkt_device_type type) {
    switch (type) {
    case VKT_DEVICE_DISCRETE_GPU: return 4;
    case VKT_DEVICE_INTEGRATED_GPU: return 3;
    case VKT_DEVICE_VIRTUAL_GPU: return 2;
    case VKT_DEVICE_CPU: return 1;
    default: return 0;
    }
}

static bool contains_ignore_case(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static bool is_index(const char *s) {
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Chooses among `infos`: the request (index or name substring) if given,
 * else the best-ranked suitable device. Returns UINT32_MAX with a message
 * in ctx when nothing fits. */
static uint32_t choose(vkt_context *ctx, const vkt_device_info *infos, uint32_t count,
                       const char *request) {
    if (request && *request) {
        if (is_index(request)) {
            unsigned long idx = strtoul(request, NULL, 10);
            if (idx >= count) {
                vkt_error(ctx, VKT_ERROR_NO_DEVICE, "device index %lu requested but only %u "
                          "Vulkan device(s) exist", idx, count);
                return UINT32_MAX;
            }
            if (!infos[idx].suitable) {
                vkt_error(ctx, VKT_ERROR_NO_DEVICE, "device %lu '%s' cannot be used: %s", idx,
                          infos[idx].name, infos[idx].unsuitable_reason);
                return UINT32_MAX;
            }
            return (uint32_t)idx;
        }
        for (uint32_t i = 0; i < count; i++)
            if (infos[i].suitable && contains_ignore_case(infos[i].name, request))
                return i;
        vkt_error(ctx, VKT_ERROR_NO_DEVICE, "no suitable Vulkan device's name contains '%s'",
                  request);
        return UINT32_MAX;
    }
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < count; i++)
        if (infos[i].suitable &&
            (best == UINT32_MAX || type_rank(infos[i].type) > type_rank(infos[best].type)))
            best = i;
    if (best == UINT32_MAX)
        vkt_error(ctx, VKT_ERROR_NO_DEVICE, "none of the %u Vulkan device(s) is suitable", count);
    return best;
}

static const char *device_request(const char *from_desc) {
    const char *env = getenv("VKT_DEVICE");
    return env && *env ? env : from_desc;
}

static vkt_result enumerate(vkt_context *ctx, VkInstance instance, VkPhysicalDevice **out_devices,
                            vkt_device_info **out_infos, uint32_t *out_count) {
    uint32_t count = 0;
    VK_TRY(ctx, vkEnumeratePhysicalDevices(instance, &count, NULL));
    if (count == 0)
        return vkt_error(ctx, VKT_ERROR_NO_DEVICE, "the Vulkan loader reports no device");
    VkPhysicalDevice *devices = calloc(count, sizeof *devices);
    vkt_device_info *infos = calloc(count, sizeof *infos);
    if (!devices || !infos) {
        free(devices);
        free(infos);
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    VkResult vr = vkEnumeratePhysicalDevices(instance, &count, devices);
    if (vr != VK_SUCCESS && vr != VK_INCOMPLETE) {
        free(devices);
        free(infos);
        return vk_check(ctx, vr, "vkEnumeratePhysicalDevices");
    }
    for (uint32_t i = 0; i < count; i++)
        vk_device_info_fill(devices[i], &infos[i]);
    *out_devices = devices;
    *out_infos = infos;
    *out_count = count;
    return VKT_OK;
}

vkt_result vk_pick_device(vkt_context *ctx, VkInstance instance, const char *request,
                          VkPhysicalDevice *out_device, uint32_t *out_index) {
    VkPhysicalDevice *devices;
    vkt_device_info *infos;
    uint32_t count;
    vkt_result r = enumerate(ctx, instance, &devices, &infos, &count);
    if (r != VKT_OK)
        return r;
    uint32_t pick = choose(ctx, infos, count, device_request(request));
    if (pick != UINT32_MAX) {
        *out_device = devices[pick];
        *out_index = pick;
        vkt_log(ctx, VKT_LOG_INFO, "using Vulkan device %u: %s", pick, infos[pick].name);
    }
    free(devices);
    free(infos);
    return pick == UINT32_MAX ? VKT_ERROR_NO_DEVICE : VKT_OK;
}

vkt_result vkt_device_list(uint32_t *inout_count, vkt_device_info *out_infos,
                           uint32_t *out_preferred) {
    vkt_context scratch = {0}; /* only carries the error message */
    if (!inout_count)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_device_list: inout_count is NULL");
    vk_global_lock();
    vkt_result r = vk_loader_init(&scratch);
    VkInstance instance = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT messenger;
    if (r == VKT_OK)
        r = vk_instance_create(&scratch, false, &instance, &messenger);
    VkPhysicalDevice *devices = NULL;
    vkt_device_info *infos = NULL;
    uint32_t count = 0;
    if (r == VKT_OK)
        r = enumerate(&scratch, instance, &devices, &infos, &count);
    if (r == VKT_OK) {
        if (out_preferred)
            *out_preferred = choose(&scratch, infos, count, device_request(NULL));
        if (out_infos) {
            uint32_t n = *inout_count < count ? *inout_count : count;
            memcpy(out_infos, infos, n * sizeof *infos);
            *inout_count = n;
        } else {
            *inout_count = count;
        }
    }
    free(devices);
    free(infos);
    if (instance)
        vkDestroyInstance(instance, NULL);
    vk_global_unlock();
    if (r != VKT_OK)
        vkt_error(NULL, r, "vkt_device_list: %s", scratch.error);
    return r;
}
