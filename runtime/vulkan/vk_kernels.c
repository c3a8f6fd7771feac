/* vk_kernels.c: the SPIR-V of every kernel, compiled from shaders/ by glslc
 * at build time and embedded here; nothing is read from disk at run time. */
#include "vk_internal.h"

#define SPIRV(name) static const uint32_t name##_spv[] =
SPIRV(matmul)
#include "matmul.spv.h"
;
SPIRV(bias_add)
#include "bias_add.spv.h"
;
SPIRV(column_sum)
#include "column_sum.spv.h"
;
SPIRV(elementwise_binary)
#include "elementwise_binary.spv.h"
;
SPIRV(elementwise_unary)
#include "elementwise_unary.spv.h"
;
SPIRV(relu_fwd)
#include "relu_fwd.spv.h"
;
SPIRV(relu_bwd)
#include "relu_bwd.spv.h"
;
/* activation spirv */
/* loss spirv */
/* optimizer spirv */

typedef struct kernel_source {
    const char *name;
    const uint32_t *words;
    size_t bytes;
} kernel_source;

#define KERNEL(id, name) [id] = {#name, name##_spv, sizeof name##_spv}
static const kernel_source kernels[VKT_KERNEL_COUNT] = {
    KERNEL(VKT_KERNEL_MATMUL, matmul),
    KERNEL(VKT_KERNEL_BIAS_ADD, bias_add),
    KERNEL(VKT_KERNEL_COLUMN_SUM, column_sum),
    KERNEL(VKT_KERNEL_ELEMENTWISE_BINARY, elementwise_binary),
    KERNEL(VKT_KERNEL_ELEMENTWISE_UNARY, elementwise_unary),
    KERNEL(VKT_KERNEL_RELU_FWD, relu_fwd),
    KERNEL(VKT_KERNEL_RELU_BWD, relu_bwd),
    /* activation kernels */
    /* loss kernels */
    /* optimizer kernels */
};

const uint32_t *vk_kernel_spirv(vkt_kernel kernel, size_t *out_bytes, const char **out_name) {
    *out_bytes = kernels[kernel].bytes;
    *out_name = kernels[kernel].name;
    return kernels[kernel].words;
}
