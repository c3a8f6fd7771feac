/* cpu_sgemm.c: the fast CPU backend's matmul, C (M, N) = op(A) op(B) with
 * the matmul ops' epilogue (old C, bias, ReLU). With OpenBLAS (found by
 * meson: VKT_HAVE_OPENBLAS) it is one cblas_sgemm, beta = 1 accumulating;
 * without, a cache-blocked sgemm in plain C written for the compiler's
 * auto-vectorizer, several times slower than OpenBLAS but far faster than
 * the reference's one double dot product per element.
 *
 * Dimension legend: M N K matmul; MR x NR the register block of the
 * built-in's inner kernel, MC x KC and KC x NC its packed blocks of A and B.
 * reference: BLIS's five loops around a micro-kernel, F. Van Zee and R. van
 * de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS
 * Functionality", ACM TOMS 41(3), 2015. */
#include "cpu_fast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef VKT_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* The epilogue's bias and ReLU, a row at a time (the old C is already in:
 * sgemm's beta, or the built-in's first K block). */
static void sgemm_epilogue(const vkt_sgemm *g) {
    if (!g->bias && !g->relu)
        return;
    for (int64_t m = 0; m < g->m; m++) {
        float *c = g->c + m * g->n; // (N)
        if (g->bias)
            for (int64_t n = 0; n < g->n; n++)
                c[n] += g->bias[n];
        if (g->relu)
            for (int64_t n = 0; n < g->n; n++)
                c[n] = c[n] > 0.0f ? c[n] : 0.0f;
    }
}

// ---- The built-in sgemm

/* The inner kernel keeps an MR x NR block of C in registers: 4 x 8 floats
 * are 8 SSE registers (4 AVX), with room for a row of B and a broadcast of
 * A. MC x KC of A (32 KiB) stays in L1/L2 while NR-wide panels of the KC x
 * NC block of B (64 KiB) stream past it. Both packs together stay under
 * glibc's mmap threshold (128 KiB), so malloc hands back the same memory
 * every call instead of fresh pages that fault. */
#define MR 4
#define NR 8
#define MC 64
#define KC 128
#define NC 128

/* A's MC x KC block at (ic, pc) as MR-row panels, each KC deep with MR
 * consecutive floats per k; rows past M are zero. */
static void pack_a(const vkt_sgemm *g, int64_t ic, int64_t pc, int64_t mc, int64_t kc, float *ap) {
    int64_t sm = g->transpose_a ? 1 : g->k, sk = g->transpose_a ? g->m : 1;
    for (int64_t ip = 0; ip < mc; ip += MR) {
        for (int64_t p = 0; p < kc; p++) {
            for (int64_t i = 0; i < MR; i++) {
                int64_t m = ic + ip + i;
                ap[p * MR + i] = ip + i < mc ? g->a[m * sm + (pc + p) * sk] : 0.0f;
            }
        }
        ap += kc * MR;
    }
}

/* B's KC x NC block at (pc, jc) as NR-column panels, each KC deep with NR
 * consecutive floats per k; columns past N are zero. */
static void pack_b(const vkt_sgemm *g, int64_t pc, int64_t jc, int64_t kc, int64_t nc, float *bp) {
    int64_t sk = g->transpose_b ? 1 : g->n, sn = g->transpose_b ? g->k : 1;
    for (int64_t jp = 0; jp < nc; jp += NR) {
        for (int64_t p = 0; p < kc; p++) {
            const float *row = g->b + (pc + p) * sk;
            for (int64_t j = 0; j < NR; j++)
                bp[p * NR + j] = jp + j < nc ? row[(jc + jp + j) * sn] : 0.0f;
        }
        bp += kc * NR;
    }
}

/* c (mr x nr of an MR x NR block, row stride ldc) = [c +] ap bp over kc.
 * The fixed-size loops are what the vectorizer turns into whole-register
 * multiply-adds across j. */
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp,
                         float *restrict c, int64_t ldc, int64_t mr, int64_t nr, bool add) {
    float acc[MR][NR] = {{0.0f}};
    for (int64_t p = 0; p < kc; p++)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] += ap[p * MR + i] * bp[p * NR + j];
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++)
            c[i * ldc + j] = add ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The old C is added by the first K block (add = accumulate), later blocks
 * add to what the earlier ones wrote. */
static void builtin_blocks(const vkt_sgemm *g, float *ap, float *bp) {
    for (int64_t jc = 0; jc < g->n; jc += NC) {
        int64_t nc = min64(NC, g->n - jc);
        for (int64_t pc = 0; pc < g->k; pc += KC) {
            int64_t kc = min64(KC, g->k - pc);
            pack_b(g, pc, jc, kc, nc, bp);
            bool add = pc > 0 || g->accumulate;
            for (int64_t ic = 0; ic < g->m; ic += MC) {
                int64_t mc = min64(MC, g->m - ic);
                pack_a(g, ic, pc, mc, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        float *c = g->c + (ic + ir) * g->n + jc + jr;
                        micro_kernel(kc, ap + ir * kc, bp + jr * kc, c, g->n, min64(MR, mc - ir),
                                     min64(NR, nc - jr), add);
                    }
                }
            }
        }
    }
}

void vkt_cpu_sgemm_builtin(const vkt_sgemm *g) {
    /* Padded to whole panels: MC and NC are multiples of MR and NR. */
    float *pack = malloc((size_t)(MC * KC + KC * NC) * sizeof(float));
    if (!pack) {
        /* No memory for the packs: the unblocked loop needs none. */
        for (int64_t m = 0; m < g->m; m++) {
            for (int64_t n = 0; n < g->n; n++) {
                float sum = g->accumulate ? g->c[m * g->n + n] : 0.0f;
                for (int64_t k = 0; k < g->k; k++)
                    sum += (g->transpose_a ? g->a[k * g->m + m] : g->a[m * g->k + k]) *
                           (g->transpose_b ? g->b[n * g->k + k] : g->b[k * g->n + n]);
                g->c[m * g->n + n] = sum;
            }
        }
    } else {
        builtin_blocks(g, pack, pack + MC * KC);
        free(pack);
    }
    sgemm_epilogue(g);
}

// ---- Dispatch

#ifdef VKT_HAVE_OPENBLAS

/* beta = 0 never reads C (BLAS's rule), so stale NaNs in C stay out. */
void vkt_cpu_sgemm(const vkt_sgemm *g) {
    blasint lda = (blasint)(g->transpose_a ? g->m : g->k);
    blasint ldb = (blasint)(g->transpose_b ? g->k : g->n);
    cblas_sgemm(CblasRowMajor, g->transpose_a ? CblasTrans : CblasNoTrans,
                g->transpose_b ? CblasTrans : CblasNoTrans, (blasint)g->m, (blasint)g->n,
                (blasint)g->k, 1.0f, g->a, lda, g->b, ldb, g->accumulate ? 1.0f : 0.0f, g->c,
                (blasint)g->n);
    sgemm_epilogue(g);
}

/* openblas_get_config() starts "OpenBLAS 0.3.21 ...": the library that is
 * loaded, which may be newer than the headers. */
void vkt_cpu_fast_describe(char *buf, size_t size) {
    const char *config = openblas_get_config();
    const char *end = strchr(config, ' ');
    if (end)
        end = strchr(end + 1, ' ');
    int len = end ? (int)(end - config) : (int)strlen(config);
    int threads = openblas_get_num_threads();
    snprintf(buf, size, "CPU (%.*s, %d thread%s)", len, config, threads, threads == 1 ? "" : "s");
}

#else

void vkt_cpu_sgemm(const vkt_sgemm *g) { vkt_cpu_sgemm_builtin(g); }

void vkt_cpu_fast_describe(char *buf, size_t size) { snprintf(buf, size, "CPU (built-in sgemm)"); }

#endif
