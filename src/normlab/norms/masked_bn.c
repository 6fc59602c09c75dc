/* Fused CPU passes of masked BatchNorm (normlab.norms.batch, kernel "fused").
 *
 * x, dy, y, dx: (n, c) row-major; keep: n 0/1 weights or NULL (no padding); per-channel vectors: c.
 * Each function is one pass over its (n, c) inputs, split over rows between OpenMP threads (the
 * runtime torch itself loaded, so torch.set_num_threads applies).  Channel sums accumulate in double,
 * per thread, and are added up in thread order: the result does not depend on scheduling.
 *
 *   stats:      sum_x = Σ_t keep·x,   sum_sq = Σ_t keep·x²
 *   affine:     y = x·scale + shift
 *   grad_sums:  sum_dyx = Σ_t dy·x,   sum_dy = Σ_t dy
 *   grad_input: dx = dy·scale + keep·(a + x·b)
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Two per-channel accumulators for every thread; returns NULL when out of memory. */
static double *thread_sums(int64_t c, int *threads) {
    *threads = omp_get_max_threads();
    return (double *)calloc((size_t)(*threads) * 2 * (size_t)c, sizeof(double));
}

static void add_in_thread_order(const double *acc, int threads, int64_t c, double *out1, double *out2) {
    memset(out1, 0, (size_t)c * sizeof(double));
    memset(out2, 0, (size_t)c * sizeof(double));
    for (int t = 0; t < threads; t++) {
        const double *a = acc + (size_t)t * 2 * c;
        for (int64_t j = 0; j < c; j++) {
            out1[j] += a[j];
            out2[j] += a[c + j];
        }
    }
}

#define MASKED_BN_KERNELS(T, SUFFIX)                                                                  \
    int stats_##SUFFIX(const T *x, const T *keep, int64_t n, int64_t c, double *sum_x, double *sum_sq) { \
        int threads;                                                                                  \
        double *acc = thread_sums(c, &threads);                                                       \
        if (!acc) return 1;                                                                           \
        _Pragma("omp parallel num_threads(threads)") {                                                \
            double *s1 = acc + (size_t)omp_get_thread_num() * 2 * c, *s2 = s1 + c;                    \
            _Pragma("omp for schedule(static)") for (int64_t t = 0; t < n; t++) {                     \
                if (keep && keep[t] == 0) continue;                                                   \
                const T *row = x + t * c;                                                             \
                for (int64_t j = 0; j < c; j++) {                                                     \
                    double v = row[j];                                                                \
                    s1[j] += v;                                                                       \
                    s2[j] += v * v;                                                                   \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        add_in_thread_order(acc, threads, c, sum_x, sum_sq);                                          \
        free(acc);                                                                                    \
        return 0;                                                                                     \
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
    int grad_sums_##SUFFIX(const T *dy, const T *x, int64_t n, int64_t c, double *sum_dyx, double *sum_dy) { \
        int threads;                                                                                  \
        double *acc = thread_sums(c, &threads);                                                       \
        if (!acc) return 1;                                                                           \
        _Pragma("omp parallel num_threads(threads)") {                                                \
            double *s1 = acc + (size_t)omp_get_thread_num() * 2 * c, *s2 = s1 + c;                    \
            _Pragma("omp for schedule(static)") for (int64_t t = 0; t < n; t++) {                     \
                const T *g = dy + t * c, *row = x + t * c;                                            \
                for (int64_t j = 0; j < c; j++) {                                                     \
                    s1[j] += (double)g[j] * row[j];                                                   \
                    s2[j] += g[j];                                                                    \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        add_in_thread_order(acc, threads, c, sum_dyx, sum_dy);                                        \
        free(acc);                                                                                    \
        return 0;                                                                                     \
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

MASKED_BN_KERNELS(float, f32)
MASKED_BN_KERNELS(double, f64)
