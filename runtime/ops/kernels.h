/* kernels.h: the compute kernels (one per shader) and their push-constant
 * structs. Each struct is mirrored field by field in its shader; the
 * _Static_asserts catch a C-side change that forgets the GLSL side. */
#ifndef VKT_KERNELS_H
#define VKT_KERNELS_H

#include <stdint.h>

typedef enum vkt_kernel {
    VKT_KERNEL_MATMUL,             /* shaders/matmul.comp */
    VKT_KERNEL_BIAS_ADD,           /* shaders/bias_add.comp */
    VKT_KERNEL_COLUMN_SUM,         /* shaders/column_sum.comp */
    VKT_KERNEL_ELEMENTWISE_BINARY, /* shaders/elementwise_binary.comp */
    VKT_KERNEL_ELEMENTWISE_UNARY,  /* shaders/elementwise_unary.comp */
    VKT_KERNEL_RELU_FWD,           /* shaders/relu_fwd.comp */
    VKT_KERNEL_RELU_BWD,           /* shaders/relu_bwd.comp */
    /* activation kernels */
    /* loss kernels */
    /* optimizer kernels */
    VKT_KERNEL_COUNT
} vkt_kernel;

/* Specialization constant 0 is always the workgroup's local_size_x. */

/* matmul: C (M, N) = op(A) op(B) [+ C]. Element (m, k) of op(A) is at
 * a[m * a_stride_m + k * a_stride_k]; likewise for B. */
typedef struct vkt_matmul_push {
    uint32_t m, n, k;
    uint32_t a_stride_m, a_stride_k;
    uint32_t b_stride_k, b_stride_n;
    uint32_t accumulate;
} vkt_matmul_push;
_Static_assert(sizeof(vkt_matmul_push) == 32, "mirror in shaders/matmul.comp");
/* spec: 0 local_size_x, 1 local_size_y, 2 TM rows per invocation,
 * 3 TN columns per invocation */

/* bias_add: out (rows, cols) = x + bias (cols). */
typedef struct vkt_bias_push {
    uint32_t rows, cols;
} vkt_bias_push;
_Static_assert(sizeof(vkt_bias_push) == 8, "mirror in shaders/bias_add.comp");

/* column_sum: out (cols) [+]= sum over rows of x (rows, cols). */
typedef struct vkt_column_sum_push {
    uint32_t rows, cols, accumulate;
} vkt_column_sum_push;
_Static_assert(sizeof(vkt_column_sum_push) == 12, "mirror in shaders/column_sum.comp");

/* elementwise kernels over n elements; `scalar` is the unary operand. */
typedef struct vkt_elementwise_push {
    uint32_t n;
    float scalar;
} vkt_elementwise_push;
_Static_assert(sizeof(vkt_elementwise_push) == 8, "mirror in shaders/elementwise*.comp");

/* spec 1 of elementwise_binary */
enum { VKT_BINARY_ADD = 0, VKT_BINARY_SUB = 1, VKT_BINARY_MUL = 2 };
/* spec 1 of elementwise_unary */
enum { VKT_UNARY_SCALE = 0, VKT_UNARY_FILL = 1 };

/* activation push constants */
/* loss push constants */
/* optimizer push constants */

#endif
