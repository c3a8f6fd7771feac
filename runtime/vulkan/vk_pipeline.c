/* vk_pipeline.c: shader modules, descriptor-set and pipeline layouts, and
 * compute pipelines specialized per device (workgroup and tile sizes are
 * specialization constants), cached by (kernel, constants). */
#include "vk_internal.h"

#include <stdlib.h>
#include <string.h>

/* Every kernel has one descriptor set of storage buffers (inputs first, then
 * outputs; some kernels read inputs as uniform texel buffers instead) and up
 * to 128 bytes of push constants, the minimum every device guarantees. */
#define PUSH_CONSTANT_BYTES 128

vkt_result vk_pipelines_init(vkt_context *ctx) {
    vk_state *vk = vk_of(ctx);
    VkDescriptorSetLayoutBinding bindings[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < VK_MAX_BINDINGS; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    for (uint32_t n = 1; n <= VK_MAX_BINDINGS; n++) {
        VK_TRY(ctx, vk->vk.vkCreateDescriptorSetLayout(
                        vk->device,
                        &(VkDescriptorSetLayoutCreateInfo){
                            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                            .bindingCount = n,
                            .pBindings = bindings},
                        NULL, &vk->set_layouts[n]));
        VK_TRY(ctx, vk->vk.vkCreatePipelineLayout(
                        vk->device,
                        &(VkPipelineLayoutCreateInfo){
                            .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                            .setLayoutCount = 1,
                            .pSetLayouts = &vk->set_layouts[n],
                            .pushConstantRangeCount = 1,
                            .pPushConstantRanges = &(VkPushConstantRange){
                                .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
                                .size = PUSH_CONSTANT_BYTES}},
                        NULL, &vk->pipeline_layouts[n]));
    }
    VK_TRY(ctx, vk->vk.vkCreatePipelineCache(
                    vk->device,
                    &(VkPipelineCacheCreateInfo){.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO},
                    NULL, &vk->pipeline_cache));
    return VKT_OK;
}

static vkt_result layout_create(vkt_context *ctx, uint32_t count, uint32_t texel_mask,
                                VkDescriptorSetLayout *out_set, VkPipelineLayout *out_layout) {
    vk_state *vk = vk_of(ctx);
    VkDescriptorSetLayoutBinding bindings[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < count; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = (texel_mask >> i) & 1 ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                    : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VK_TRY(ctx, vk->vk.vkCreateDescriptorSetLayout(
                    vk->device,
                    &(VkDescriptorSetLayoutCreateInfo){
                        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                        .bindingCount = count,
                        .pBindings = bindings},
                    NULL, out_set));
    VK_TRY(ctx, vk->vk.vkCreatePipelineLayout(
                    vk->device,
                    &(VkPipelineLayoutCreateInfo){
                        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                        .setLayoutCount = 1,
                        .pSetLayouts = out_set,
                        .pushConstantRangeCount = 1,
                        .pPushConstantRanges = &(VkPushConstantRange){
                            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
                            .size = PUSH_CONSTANT_BYTES}},
                    NULL, out_layout));
    return VKT_OK;
}

vkt_result vk_layout_get(vkt_context *ctx, uint32_t binding_count, uint32_t texel_mask,
                         VkDescriptorSetLayout *out_set, VkPipelineLayout *out_layout) {
    vk_state *vk = vk_of(ctx);
    VKT_ASSERT(binding_count >= 1 && binding_count <= VK_MAX_BINDINGS);
    texel_mask &= (1u << binding_count) - 1;
    if (!texel_mask) {
        *out_set = vk->set_layouts[binding_count];
        *out_layout = vk->pipeline_layouts[binding_count];
        return VKT_OK;
    }
    for (uint32_t i = 0; i < vk->texel_layout_count; i++) {
        const vk_texel_layout *l = &vk->texel_layouts[i];
        if (l->binding_count == binding_count && l->texel_mask == texel_mask) {
            *out_set = l->set;
            *out_layout = l->pipeline;
            return VKT_OK;
        }
    }
    /* A handful of kernels use texel buffers, each with one mask. */
    if (vk->texel_layout_count == VK_MAX_TEXEL_LAYOUTS)
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED, "more than %d texel-buffer layouts",
                         VK_MAX_TEXEL_LAYOUTS);
    vk_texel_layout *l = &vk->texel_layouts[vk->texel_layout_count];
    *l = (vk_texel_layout){.binding_count = binding_count, .texel_mask = texel_mask};
    vkt_result r = layout_create(ctx, binding_count, texel_mask, &l->set, &l->pipeline);
    if (r != VKT_OK) {
        if (l->set)
            vk->vk.vkDestroyDescriptorSetLayout(vk->device, l->set, NULL);
        return r;
    }
    vk->texel_layout_count++;
    *out_set = l->set;
    *out_layout = l->pipeline;
    return VKT_OK;
}

void vk_pipelines_destroy(vk_state *vk) {
    for (uint32_t i = 0; i < vk->pipeline_count; i++)
        vk->vk.vkDestroyPipeline(vk->device, vk->pipelines[i].pipeline, NULL);
    free(vk->pipelines);
    vk->pipelines = NULL;
    vk->pipeline_count = vk->pipeline_capacity = 0;
    for (uint32_t k = 0; k < VKT_KERNEL_COUNT; k++)
        if (vk->modules[k])
            vk->vk.vkDestroyShaderModule(vk->device, vk->modules[k], NULL);
    for (uint32_t n = 1; n <= VK_MAX_BINDINGS; n++) {
        if (vk->pipeline_layouts[n])
            vk->vk.vkDestroyPipelineLayout(vk->device, vk->pipeline_layouts[n], NULL);
        if (vk->set_layouts[n])
            vk->vk.vkDestroyDescriptorSetLayout(vk->device, vk->set_layouts[n], NULL);
    }
    for (uint32_t i = 0; i < vk->texel_layout_count; i++) {
        vk->vk.vkDestroyPipelineLayout(vk->device, vk->texel_layouts[i].pipeline, NULL);
        vk->vk.vkDestroyDescriptorSetLayout(vk->device, vk->texel_layouts[i].set, NULL);
    }
    vk->texel_layout_count = 0;
    if (vk->pipeline_cache)
        vk->vk.vkDestroyPipelineCache(vk->device, vk->pipeline_cache, NULL);
}

static vkt_result module_get(vkt_context *ctx, vkt_kernel kernel, VkShaderModule *out_module) {
    vk_state *vk = vk_of(ctx);
    if (!vk->modules[kernel]) {
        size_t bytes;
        const char *name;
        const uint32_t *words = vk_kernel_spirv(kernel, &bytes, &name);
        VkResult vr = VK_FAULT(PIPELINE, vk->vk.vkCreateShaderModule(
            vk->device,
            &(VkShaderModuleCreateInfo){.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                        .codeSize = bytes,
                                        .pCode = words},
            NULL, &vk->modules[kernel]));
        if (vr != VK_SUCCESS)
            return vk_check(ctx, vr, name);
    }
    *out_module = vk->modules[kernel];
    return VKT_OK;
}

/* The number of bindings a kernel declares is the number its dispatches
 * bind; a pipeline is made for the layout of its first use. */
vkt_result vk_pipeline_get(vkt_context *ctx, vkt_kernel kernel, const uint32_t *spec,
                           uint32_t spec_count, uint32_t binding_count, uint32_t texel_mask,
                           VkPipeline *out_pipeline) {
    vk_state *vk = vk_of(ctx);
    VKT_ASSERT(spec_count <= VK_MAX_SPEC && binding_count >= 1 && binding_count <= VK_MAX_BINDINGS);
    for (uint32_t i = 0; i < vk->pipeline_count; i++) {
        const vk_pipeline *p = &vk->pipelines[i];
        if (p->kernel == kernel && p->spec_count == spec_count && p->texel_mask == texel_mask &&
            memcmp(p->spec, spec, spec_count * sizeof *spec) == 0) {
            *out_pipeline = p->pipeline;
            return VKT_OK;
        }
    }
    VkShaderModule module = VK_NULL_HANDLE;
    vkt_result r = module_get(ctx, kernel, &module);
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    if (r == VKT_OK)
        r = vk_layout_get(ctx, binding_count, texel_mask, &set_layout, &layout);
    if (r != VKT_OK)
        return r;
    if (vk->pipeline_count == vk->pipeline_capacity) {
        uint32_t cap = vk->pipeline_capacity ? vk->pipeline_capacity * 2 : 16;
        vk_pipeline *p = realloc(vk->pipelines, cap * sizeof *p);
        if (!p)
            return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        vk->pipelines = p;
        vk->pipeline_capacity = cap;
    }
    VkSpecializationMapEntry entries[VK_MAX_SPEC];
    for (uint32_t i = 0; i < spec_count; i++)
        entries[i] = (VkSpecializationMapEntry){.constantID = i,
                                                .offset = i * (uint32_t)sizeof(uint32_t),
                                                .size = sizeof(uint32_t)};
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = module,
            .pName = "main",
            .pSpecializationInfo = &(VkSpecializationInfo){
                .mapEntryCount = spec_count,
                .pMapEntries = entries,
                .dataSize = spec_count * sizeof(uint32_t),
                .pData = spec},
        },
        .layout = layout,
    };
    VkPipeline pipeline;
    size_t bytes;
    const char *name;
    vk_kernel_spirv(kernel, &bytes, &name);
    VkResult vr = VK_FAULT(PIPELINE, vk->vk.vkCreateComputePipelines(
                                         vk->device, vk->pipeline_cache, 1, &info, NULL,
                                         &pipeline));
    if (vr != VK_SUCCESS)
        return vk_check(ctx, vr, name);
    vk_pipeline *p = &vk->pipelines[vk->pipeline_count++];
    *p = (vk_pipeline){.kernel = kernel, .spec_count = spec_count, .texel_mask = texel_mask,
                       .pipeline = pipeline};
    memcpy(p->spec, spec, spec_count * sizeof *spec);
    *out_pipeline = pipeline;
    return VKT_OK;
}
