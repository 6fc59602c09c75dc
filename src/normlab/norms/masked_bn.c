/* Fused CPU kernel of masked BatchNorm (normlab.norms.batch, kernel "fused").
 *
 * x, dy, y, dx: (n, c) row-major; pad: n bytes, 1 at padding (a torch bool tensor), or NULL for no
 * padding; weight, bias: c values or NULL (no affine).  Four passes over the (n, c) tensors, each split
 * over rows between OpenMP threads (the runtime torch itself loaded, so torch.set_num_threads
 * applies), and the per-channel arithmetic between them, so that a training forward or backward is
 * two calls from Python (plus an all-reduce of the sums in between when distributed):
 *
 *   stats:       sums = [Σ_t keep·x, Σ_t keep·x², Σ_t keep]                       (2c + 1 doubles)
 *   normalize:   mean, var (biased), inv = 1/sqrt(max(var, eps)) or 1/sqrt(var + eps),
 *                scale = inv·w, shift = b − mean·scale  ->  y = x·scale + shift
 *   grad_stats:  Σ_t dy·x, Σ_t dy  ->  d_weight, d_bias, and d_sums = [∂L/∂S₁, 2·∂L/∂S₂] (2c doubles)
 *   grad_input:  dx = dy·scale + keep·(∂L/∂S₁ + x·2·∂L/∂S₂)
 *
 * with S₁ = Σ keep·x, S₂ = Σ keep·x², keep = 1 − pad (the derivation is in batch.py).  The per-channel
 * arithmetic runs in double and is stored in the tensors' type.
 *
 * Channel sums: each thread sums BLOCK rows at a time in the input's type (vectorised), carries the
 * block sums in double, and the threads' sums are added in thread order, so the result does not
 * depend on scheduling.  Functions that allocate return 1 when out of memory, else 0.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 32

/* The pass both channel sums share: ROW_SUMS(T, t, s1, s2) adds row t to the block sums s1, s2 and
 * returns whether the row counts (is not padding); out3, when not NULL, receives the count. */
#define TWO_SUMS_PASS(T, n, c, out1, out2, out3, ROW_SUMS)                                            \
    do {                                                                                              \
        int threads = omp_get_max_threads(), failed = 0;                                              \
        double *o1 = (out1), *o2 = (out2), *o3 = (out3);                                              \
        double *acc = (double *)calloc((size_t)threads * (2 * (size_t)(c) + 1), sizeof(double));      \
        if (!acc) return 1;                                                                           \
        _Pragma("omp parallel num_threads(threads) reduction(|| : failed)") {                         \
            double *a = acc + (size_t)omp_get_thread_num() * (2 * (size_t)(c) + 1);                   \
            T *s1 = (T *)calloc(2 * (size_t)(c), sizeof(T)), *s2 = s1 ? s1 + (c) : NULL;              \
            int64_t rows = 0, counted = 0;                                                            \
            failed = s1 == NULL;                                                                      \
            _Pragma("omp for schedule(static)") for (int64_t t = 0; t < (n); t++) {                   \
                if (failed) continue;                                                                 \
                counted += ROW_SUMS(T, t, s1, s2);                                                    \
                if (++rows % BLOCK == 0) flush_##T(s1, a, c);                                         \
            }                                                                                         \
            if (!failed) flush_##T(s1, a, c);                                                         \
            a[2 * (c)] = (double)counted;                                                             \
            free(s1);                                                                                 \
        }                                                                                             \
        memset(o1, 0, (size_t)(c) * sizeof(double));                                                  \
        memset(o2, 0, (size_t)(c) * sizeof(double));                                                  \
        double total = 0;                                                                             \
        for (int th = 0; th < threads; th++) {                                                        \
            const double *a = acc + (size_t)th * (2 * (size_t)(c) + 1);                               \
            for (int64_t j = 0; j < (c); j++) {                                                       \
                o1[j] += a[j];                                                                        \
                o2[j] += a[(c) + j];                                                                  \
            }                                                                                         \
            total += a[2 * (c)];                                                                      \
        }                                                                                             \
        if (o3) *o3 = total;                                                                          \
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

/* Row t of the statistics pass: padding rows add nothing. */
#define STATS_ROW(T, t, s1, s2)                                                                       \
    ((!pad || !pad[t]) ? (add_squares_##T(x + (t) * c, c, s1, s2), 1) : 0)

/* Row t of the gradient-sums pass: every row (outputs at padding depend on the statistics too). */
#define GRAD_ROW(T, t, s1, s2) (add_products_##T(dy + (t) * c, x + (t) * c, c, s1, s2), 0)

#define MASKED_BN_KERNELS(T, SUFFIX)                                                                  \
    static inline void add_squares_##T(const T *row, int64_t c, T *s1, T *s2) {                       \
        for (int64_t j = 0; j < c; j++) {                                                             \
            s1[j] += row[j];                                                                          \
            s2[j] += row[j] * row[j];                                                                 \
        }                                                                                             \
    }                                                                                                 \
                                                                                                      \
    static inline void add_products_##T(const T *g, const T *row, int64_t c, T *s1, T *s2) {          \
        for (int64_t j = 0; j < c; j++) {                                                             \
            s1[j] += g[j] * row[j];                                                                   \
            s2[j] += g[j];                                                                            \
        }                                                                                             \
    }                                                                                                 \
                                                                                                      \
    /* the first pass of grad_stats */                                                               \
    static int grad_sums_##SUFFIX(const T *dy, const T *x, int64_t n, int64_t c, double *sum_dyx,     \
                                  double *sum_dy) {                                                   \
        TWO_SUMS_PASS(T, n, c, sum_dyx, sum_dy, (double *)NULL, GRAD_ROW);                            \
    }                                                                                                 \
                                                                                                      \
    int stats_##SUFFIX(const T *x, const uint8_t *pad, int64_t n, int64_t c, double *sums) {          \
        TWO_SUMS_PASS(T, n, c, sums, sums + c, sums + 2 * c, STATS_ROW);                              \
    }                                                                                                 \
                                                                                                      \
    /* chan: 4c outputs, rows mean, var, inv, scale. */                                               \
    int normalize_##SUFFIX(const T *x, const double *sums, const T *weight, const T *bias, double eps, \
                           int clamp, int64_t n, int64_t c, T *y, T *chan) {                          \
        T *shift = (T *)malloc((size_t)c * sizeof(T));                                                \
        if (!shift) return 1;                                                                         \
        T *mean = chan, *var = chan + c, *inv = chan + 2 * c, *scale = chan + 3 * c;                  \
        double count = sums[2 * c] > 1.0 ? sums[2 * c] : 1.0;                                         \
        for (int64_t j = 0; j < c; j++) {                                                             \
            double m = sums[j] / count, v = sums[c + j] / count - m * m;                              \
            v = v > 0.0 ? v : 0.0; /* round-off */                                                    \
            double i = clamp ? 1.0 / sqrt(v > eps ? v : eps) : 1.0 / sqrt(v + eps);                   \
            double s = weight ? i * weight[j] : i;                                                    \
            mean[j] = (T)m, var[j] = (T)v, inv[j] = (T)i, scale[j] = (T)s;                            \
            shift[j] = (T)((bias ? bias[j] : 0.0) - m * s);                                           \
        }                                                                                             \
        _Pragma("omp parallel for schedule(static)") for (int64_t t = 0; t < n; t++) {                \
            const T *row = x + t * c;                                                                 \
            T *out = y + t * c;                                                                       \
            for (int64_t j = 0; j < c; j++) out[j] = row[j] * scale[j] + shift[j];                    \
        }                                                                                             \
        free(shift);                                                                                  \
        return 0;                                                                                     \
    }                                                                                                 \
                                                                                                      \
    /* d_mean, d_var: gradients reaching the returned statistics (RBN's penalty), or NULL. */         \
    int grad_stats_##SUFFIX(const T *dy, const T *x, const T *chan, const T *weight, const T *d_mean,  \
                            const T *d_var, double count, double eps, int clamp, int64_t n, int64_t c, \
                            T *d_weight, T *d_bias, double *d_sums) {                                 \
        double *sum_dyx = d_sums, *sum_dy = d_sums + c;                                               \
        if (dy) {                                                                                     \
            int failed = grad_sums_##SUFFIX(dy, x, n, c, sum_dyx, sum_dy);                            \
            if (failed) return failed;                                                                \
        } else {                                                                                      \
            memset(d_sums, 0, 2 * (size_t)c * sizeof(double));                                        \
        }                                                                                             \
        const T *mean = chan, *var = chan + c, *inv = chan + 2 * c, *scale = chan + 3 * c;            \
        count = count > 1.0 ? count : 1.0;                                                            \
        for (int64_t j = 0; j < c; j++) {                                                             \
            double d_scale_net = sum_dyx[j] - mean[j] * sum_dy[j]; /* reaching inv·w */                \
            if (d_weight) d_weight[j] = (T)(d_scale_net * inv[j]);                                    \
            if (d_bias) d_bias[j] = (T)sum_dy[j];                                                     \
            double d_inv = weight ? d_scale_net * weight[j] : d_scale_net;                            \
            double i = inv[j], dv = -0.5 * i * i * i * d_inv;                                         \
            if (clamp && !(var[j] >= eps)) dv = 0.0;                                                  \
            if (d_var) dv += d_var[j];                                                                \
            double dm = (d_mean ? d_mean[j] : 0.0) - sum_dy[j] * scale[j];                            \
            d_sums[j] = (dm - 2.0 * mean[j] * dv) / count; /* ∂L/∂S₁ */                               \
            d_sums[c + j] = 2.0 * dv / count;              /* 2·∂L/∂S₂ */                             \
        }                                                                                             \
        return 0;                                                                                     \
    }                                                                                                 \
                                                                                                      \
    int grad_input_##SUFFIX(const T *dy, const T *x, const uint8_t *pad, const T *chan,               \
                            const double *d_sums, int64_t n, int64_t c, T *dx) {                      \
        T *a = (T *)malloc(2 * (size_t)c * sizeof(T)), *b = a ? a + c : NULL;                         \
        if (!a) return 1;                                                                             \
        const T *scale = chan + 3 * c;                                                                \
        for (int64_t j = 0; j < c; j++) a[j] = (T)d_sums[j], b[j] = (T)d_sums[c + j];                 \
        _Pragma("omp parallel for schedule(static)") for (int64_t t = 0; t < n; t++) {                \
            const T *g = dy ? dy + t * c : NULL, *row = x + t * c;                                    \
            T *out = dx + t * c;                                                                      \
            if (pad && pad[t]) {                                                                      \
                if (g) for (int64_t j = 0; j < c; j++) out[j] = g[j] * scale[j];                      \
                else memset(out, 0, (size_t)c * sizeof(T));                                           \
            } else if (g) {                                                                           \
                for (int64_t j = 0; j < c; j++) out[j] = g[j] * scale[j] + a[j] + row[j] * b[j];      \
            } else {                                                                                  \
                for (int64_t j = 0; j < c; j++) out[j] = a[j] + row[j] * b[j];                        \
            }                                                                                         \
        }                                                                                             \
        free(a);                                                                                      \
        return 0;                                                                                     \
    }

MASKED_BN_KERNELS(float, f32)
MASKED_BN_KERNELS(double, f64)
