/* Fused CPU passes of masked BatchNorm (normlab.norms.batch, kernel "fused").
 *
 * x, dy, y, dx: (n, c) row-major; keep: n 0/1 weights or NULL (no padding); per-channel vectors: c.
 * Each function is one pass over its (n, c) inputs, split over rows between OpenMP threads (the
 * runtime torch itself loaded, so torch.set_num_threads applies).
 *
 *   stats:      sum_x = Σ_t keep·x,   sum_sq = Σ_t keep·x²
 *   affine:     y = x·scale + shift
 *   grad_sums:  sum_dyx = Σ_t dy·x,   sum_dy = Σ_t dy
 *   grad_input: dx = dy·scale + keep·(a + x·b)
 *
 * Channel sums: each thread sums BLOCK rows at a time in the input's type (vectorised), carries the
 * block sums in double, and the threads' sums are added in thread order, so the result does not
 * depend on scheduling.  The two sums return 1 when out of memory, else 0.
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 32

/* The pass both channel sums share: ROW_SUMS(T, t, s1, s2) adds row t to the block sums s1, s2. */
#define TWO_SUMS_PASS(T, n, c, out1, out2, ROW_SUMS)                                                  \
    do {                                                                                              \
        int threads = omp_get_max_threads(), failed = 0;                                              \
        double *acc = (double *)calloc((size_t)threads * 2 * (size_t)(c), sizeof(double));            \
        if (!acc) return 1;                                                                           \
        _Pragma("omp parallel num_threads(threads) reduction(|| : failed)") {                         \
            double *a = acc + (size_t)omp_get_thread_num() * 2 * (c);                                 \
            T *s1 = (T *)calloc(2 * (size_t)(c), sizeof(T)), *s2 = s1 ? s1 + (c) : NULL;              \
            int64_t rows = 0;                                                                         \
            failed = s1 == NULL;                                                                      \
            _Pragma("omp for schedule(static)") for (int64_t t = 0; t < (n); t++) {                   \
                if (failed) continue;                                                                 \
                ROW_SUMS(T, t, s1, s2);                                                                  \
                if (++rows % BLOCK == 0) flush_##T(s1, a, c);                                         \
            }                                                                                         \
            if (!failed) flush_##T(s1, a, c);                                                         \
            free(s1);                                                                                 \
        }                                                                                             \
        memset(out1, 0, (size_t)(c) * sizeof(double));                                               \
        memset(out2, 0, (size_t)(c) * sizeof(double));                                                \
        for (int th = 0; th < threads; th++)                                                          \
            for (int64_t j = 0; j < (c); j++) {                                                       \
                out1[j] += acc[(size_t)th * 2 * (c) + j];                                             \
                out2[j] += acc[(size_t)th * 2 * (c) + (c) + j];                                       \
            }                                                                                         \
        free(acc);                                                                                    \
        return failed;                                                                                \
    } while (0)

/* Add a thread's two block sums (2c values) to its double sums and clear them. */
#define FLUSH(T)                                                                                      \
    static void flush_##T(T *block, double *acc, int64_t c) {                                         \
        for (int64_t j = 0; j < 2 * c; j++) {                                                         \
            acc[j] += block[j];                                                                       \
            block[j] = 0;                                                                             \
        }                                                                                             \
    }
FLUSH(float)
FLUSH(double)

#define MASKED_BN_KERNELS(T, SUFFIX)                                                                  \
    int stats_##SUFFIX(const T *x, const T *keep, int64_t n, int64_t c, double *sum_x, double *sum_sq) { \
        TWO_SUMS_PASS(T, n, c, sum_x, sum_sq, STATS_ROW);                                             \
    }                                                                                                 \
                                                                                                      \
    int grad_sums_##SUFFIX(const T *dy, const T *x, int64_t n, int64_t c, double *sum_dyx, double *sum_dy) { \
        TWO_SUMS_PASS(T, n, c, sum_dyx, sum_dy, GRAD_ROW);                                            \
    }                                                                                                 \
                                                                                                      \
    void affine_##SUFFIX(const T *x, const T *scale, const T *shift, int64_t n, int64_t c, T *y) {   \
        _Pragma("omp parallel for schedule(static)") for (int64_t t = 0; t < n; t++) {                \
            const T *row = x + t * c;                                                                 \
            T *out = y + t * c;                                                                       \
            for (int64_t j = 0; j < c; j++) out[j] = row[j] * scale[j] + shift[j];                    \
        }                                                                                             \
    }                                                                                                 \
                                                                                                      \
    void grad_input_##SUFFIX(const T *dy, const T *x, const T *keep, const T *scale, const T *a,      \
                             const T *b, int64_t n, int64_t c, T *dx) {                               \
        _Pragma("omp parallel for schedule(static)") for (int64_t t = 0; t < n; t++) {                \
            const T *g = dy + t * c, *row = x + t * c;                                                \
            T *out = dx + t * c;                                                                      \
            if (keep && keep[t] == 0) {                                                               \
                for (int64_t j = 0; j < c; j++) out[j] = g[j] * scale[j];                             \
            } else {                                                                                  \
                for (int64_t j = 0; j < c; j++) out[j] = g[j] * scale[j] + a[j] + row[j] * b[j];      \
            }                                                                                         \
        }                                                                                             \
    }

/* Row t of the statistics pass: padding rows add nothing. */
#define STATS_ROW(T, t, s1, s2)                                                                          \
    if (!keep || keep[t] != 0) {                                                                      \
        const T *row = x + (t) * c;                                                      \
        for (int64_t j = 0; j < c; j++) {                                                             \
            s1[j] += row[j];                                                                          \
            s2[j] += row[j] * row[j];                                                                 \
        }                                                                                             \
    }

/* Row t of the gradient-sums pass: every row (outputs at padding depend on the statistics too). */
#define GRAD_ROW(T, t, s1, s2)                                                                           \
    {                                                                                                 \
        const T *g = dy + (t) * c, *row = x + (t) * c;                                   \
        for (int64_t j = 0; j < c; j++) {                                                             \
            s1[j] += g[j] * row[j];                                                                   \
            s2[j] += g[j];                                                                            \
        }                                                                                             \
    }

MASKED_BN_KERNELS(float, f32)
MASKED_BN_KERNELS(double, f64)
