/* The mixing primitives the pixel, sample and bit models share (tzip/pixels.py is the reference
 * for all of them): the logistic CDF stepped over a table, weights normalised to frequencies of
 * total 2^16, the logistic mixing of several inputs' frequencies with its learning step, and the
 * normalised LMS update. Private to the library; static inline, so each model's file keeps its own
 * copy to inline as it sees fit.
 */
#ifndef TZIP_MIXING_H
#define TZIP_MIXING_H

#include <stdint.h>

#include "common.h"

/* pixels.py's CDF table: PX_CDF_STEPS entries per unit over [-PX_CDF_RANGE, PX_CDF_RANGE], the
 * last PX_CDF_ONE (2^16 less one per byte value, the + 1 each frequency gets) */
#define PX_CDF_STEPS 32
#define PX_CDF_RANGE 12
#define PX_CDF_LEN (2 * PX_CDF_RANGE * PX_CDF_STEPS + 1)
#define PX_CDF_ONE ((1 << 16) - 256)
#define PX_MIX_MAX (4 << 16)
#define PX_MIX_RATE 7

/* The logistic CDF (pixels.cdf_at) at num0 + i*step for i < n, over den: quotient and remainder
 * are stepped, not divided, and the fraction scaled by a 32-bit reciprocal. */
static inline void cdf_steps(const int32_t *cdf, int64_t num0, int64_t step, int64_t den, int n, int64_t *out) {
    const int64_t rinv = ((int64_t)1 << 32) / den, step_q = step / den, step_r = step % den;
    int64_t zi = floor_div64(num0, den), frac = num0 - zi * den;
    for (int i = 0; i < n; i++) {
        int64_t idx = zi + PX_CDF_RANGE * PX_CDF_STEPS;
        out[i] = idx < 0 ? 0 : idx >= PX_CDF_LEN - 1 ? PX_CDF_ONE
               : cdf[idx] + (((int64_t)(cdf[idx + 1] - cdf[idx]) * frac * rinv) >> 32);
        zi += step_q; frac += step_r;
        if (frac >= den) { frac -= den; zi++; }
    }
}

/* pixels.normalise: weights (sum 1..2^32) to frequencies, total 2^16, each >= 1. */
static inline void normalise(const int64_t *p, int32_t *out) {
    int64_t sum = 0;
    for (int v = 0; v < 256; v++) sum += p[v];
    const int64_t r = ((int64_t)1 << 48) / sum;
    int64_t total = 0; int best = 0;
    for (int v = 0; v < 256; v++) {
        int64_t o = (p[v] * r) >> 32;
        out[v] = (int32_t)(o < 1 ? 1 : o);
        total += out[v];
        if (out[v] > out[best]) best = v;
    }
    out[best] += (int32_t)(65536 - total);
}

/* pixels.mix: p ~ f^a q^b ... over n inputs; each input's costs are kept for mixing_steps. */
static inline void mix_inputs(const int32_t *cost, const int32_t *exp2, int n, const int64_t *w,
                              const int32_t *const *in, int32_t (*costs)[256], int32_t *out) {
    int64_t z[256], zmin = INT64_MAX, p[256];
    for (int v = 0; v < 256; v++) {
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            costs[i][v] = cost[in[i][v]];
            sum += w[i] * costs[i][v];
        }
        z[v] = sum >> 16;
        if (z[v] < zmin) zmin = z[v];
    }
    for (int v = 0; v < 256; v++) {
        int64_t d = z[v] - zmin;
        p[v] = (d >> 10) < 24 ? (int64_t)exp2[d & 1023] >> (d >> 10) : 0;
    }
    normalise(p, out);
}

/* pixels.mixing_steps */
static inline void mixing_steps(const int32_t *out, int n, int32_t (*costs)[256], int sym, int64_t *steps) {
    for (int i = 0; i < n; i++) {
        int64_t expected = 0;
        for (int u = 0; u < 256; u++) expected += (int64_t)out[u] * costs[i][u];
        expected >>= 16;
        steps[i] = floor_div64((expected - costs[i][sym]) * 64, 1 << PX_MIX_RATE);
    }
}

/* pixels.learn: one step of n weights, each clamped to [0, PX_MIX_MAX] */
static inline void step_mix(int64_t *w, int n, const int64_t *steps) {
    for (int i = 0; i < n; i++) {
        int64_t nw = w[i] + steps[i];
        w[i] = nw < 0 ? 0 : nw > PX_MIX_MAX ? PX_MIX_MAX : nw;
    }
}

/* pixels.nlms: w += floor(floor(err * step * 2^16 / (floor + sum taps^2)) * tap / 2^16), clamped */
static inline void nlms(int64_t *w, const int64_t *taps, int n, int64_t err, int64_t step, int64_t floor,
                        int64_t limit) {
    int64_t energy = floor;
    for (int k = 0; k < n; k++) energy += taps[k] * taps[k];
    const int64_t factor = floor_div64(err * step * 65536, energy);
    for (int k = 0; k < n; k++) {
        int64_t v = w[k] + floor_div64(factor * taps[k], 65536);
        w[k] = v < -limit ? -limit : v > limit ? limit : v;
    }
}

#endif
