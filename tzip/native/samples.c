/* The sample model (tzip/samples.py is the reference; the same integers): 16-bit PCM samples,
 * each coded as two bytes. A cascade of two NLMS filters per channel predicts the sample; the high
 * byte's frequencies come from a logistic around the prediction with a spread learnt per activity
 * cell, the low byte's from the same logistic given the high byte, each mixed with the network's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mixing.h"
#include "stage.h"
#include "tzip.h"

#define SM_ORDER 64
#define SM_STEP 2048
#define SM_ORDER2 16
#define SM_STEP2 6554
#define SM_NORM_FLOOR2 25600
#define SM_WEIGHT_MAX ((int64_t)1 << 24)
#define SM_PRED_MAX ((int64_t)1 << 20)
#define SM_NORM_FLOOR 1000
#define SM_CELLS 12
#define SM_HALVE_AT 128
#define SM_MAX_CHANNELS 16

struct sample_state {
    int64_t channels, frames;
    const int32_t *cdf, *cost, *exp2;
    int32_t *samples, *errors;                          /* [channels][frames]: values, first-stage errors */
    int64_t weights[SM_MAX_CHANNELS][SM_ORDER], weights2[SM_MAX_CHANNELS][SM_ORDER2], recent[SM_MAX_CHANNELS][3];
    int64_t sum_a[SM_MAX_CHANNELS][SM_CELLS], count[SM_MAX_CHANNELS][SM_CELLS];
    int64_t mix[2][SM_CELLS][2];
    int64_t taps[SM_ORDER], taps2[SM_ORDER2], pred1, pred, den;  /* this sample's prediction */
    int cell, active, half;
    int32_t q[256], out[256], costs[2][256];
};

void tzip_samples_free(sample_state *s) {
    if (!s) return;
    free(s->samples); free(s->errors); free(s);
}

sample_state *tzip_samples_new(int64_t channels, int64_t len, const int32_t *cdf, const int32_t *cost,
                               const int32_t *exp2) {
    if (channels < 1 || channels > SM_MAX_CHANNELS || len < 0) return NULL;
    sample_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->channels = channels; s->frames = len / (2 * channels); s->cdf = cdf; s->cost = cost; s->exp2 = exp2;
    s->samples = calloc((size_t)(s->frames ? s->frames : 1) * channels, sizeof(int32_t));
    s->errors = calloc((size_t)(s->frames ? s->frames : 1) * channels, sizeof(int32_t));
    if (!s->samples || !s->errors) { tzip_samples_free(s); return NULL; }
    for (int ch = 0; ch < channels; ch++)
        for (int c = 0; c < SM_CELLS; c++) { s->sum_a[ch][c] = 200 * 16; s->count[ch][c] = 1; }
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < SM_CELLS; c++) { s->mix[h][c][0] = 32768; s->mix[h][c][1] = 32768; }
    return s;
}

static inline int64_t sm_signed(int64_t v) { return v >= 32768 ? v - 65536 : v; }
static inline int64_t sm_clamp(int64_t p) { return p < -SM_PRED_MAX ? -SM_PRED_MAX : p > SM_PRED_MAX ? SM_PRED_MAX : p; }

/* The filters' part of a prediction at t (the network plays no part): at a high byte, the
   sample's prediction pred (in 1/16), its activity cell and the logistic's scale den. */
static void samples_centre(sample_state *s, int64_t t) {
    const int64_t frame = t / (2 * s->channels), rest = t % (2 * s->channels), ch = rest >> 1;
    s->active = frame < s->frames;
    if (!s->active) return;
    s->half = (int)(rest & 1);
    if (!s->half) {
        const int32_t *x = s->samples + ch * s->frames;
        int64_t acc = 0;
        for (int k = 0; k < SM_ORDER; k++) {
            s->taps[k] = frame - 1 - k >= 0 ? x[frame - 1 - k] : 0;
            acc += s->weights[ch][k] * s->taps[k];
        }
        s->pred1 = sm_clamp(16 * (2 * s->taps[0] - s->taps[1]) + floor_div64(acc, 1 << 12));
        const int32_t *r1 = s->errors + ch * s->frames;
        acc = 0;
        for (int k = 0; k < SM_ORDER2; k++) {
            s->taps2[k] = frame - 1 - k >= 0 ? r1[frame - 1 - k] : 0;
            acc += s->weights2[ch][k] * s->taps2[k];
        }
        s->pred = sm_clamp(s->pred1 + floor_div64(acc, 1 << 16));
        const int64_t *r = s->recent[ch];
        int64_t act = abs64(r[0]) + (abs64(r[1]) >> 1) + (abs64(r[2]) >> 2), edge = 64;
        int c = 0;
        while (c < SM_CELLS - 1 && act >= edge) { c++; edge *= 2; }
        s->cell = c;
        int64_t mae = s->sum_a[ch][c] / s->count[ch][c];
        s->den = 5 * (mae < 8 ? 8 : mae);
    }
}

static void samples_predict(sample_state *s, const uint8_t *h, int64_t t, int32_t *freq) {
    samples_centre(s, t);
    if (!s->active) return;
    if (!s->half) {
        int64_t edges[257];
        cdf_steps(s->cdf, 320 * (16 * 256 * -128 - 8 - s->pred), 320 * 16 * 256, s->den, 257, edges);
        edges[0] = 0; edges[256] = PX_CDF_ONE;
        for (int i = 0; i < 256; i++) s->q[(i + 128) & 255] = (int32_t)(edges[i + 1] - edges[i] + 1);
    } else {
        int64_t edges[257], p[256];
        cdf_steps(s->cdf, 320 * (16 * sm_signed((int64_t)h[t - 1] << 8) - 8 - s->pred), 320 * 16, s->den, 257, edges);
        for (int l = 0; l < 256; l++) p[l] = 256 * (edges[l + 1] - edges[l]) + 1;
        normalise(p, s->q);
    }
    const int32_t *inputs[2] = {freq, s->q};
    mix_inputs(s->cost, s->exp2, 2, s->mix[s->half][s->cell], inputs, s->costs, s->out);
    memcpy(freq, s->out, sizeof s->out);
}

/* What the filters learn from the byte at t (everything but the mixing weights). */
void samples_learn(sample_state *s, const uint8_t *h, int64_t t) {
    if (!s->active || !s->half) return;
    const int64_t frame = t / (2 * s->channels), ch = (t % (2 * s->channels)) >> 1;
    const int64_t v = sm_signed(((int64_t)h[t - 1] << 8) | h[t]), e = 16 * v - s->pred, e1 = 16 * v - s->pred1;
    nlms(s->weights[ch], s->taps, SM_ORDER, e1, SM_STEP, SM_NORM_FLOOR, SM_WEIGHT_MAX);
    nlms(s->weights2[ch], s->taps2, SM_ORDER2, e, SM_STEP2, SM_NORM_FLOOR2, SM_WEIGHT_MAX);
    s->samples[ch * s->frames + frame] = (int32_t)v;
    s->errors[ch * s->frames + frame] = (int32_t)e1;
    const int c = s->cell;
    s->sum_a[ch][c] += abs64(e);
    if (++s->count[ch][c] > SM_HALVE_AT) { s->sum_a[ch][c] >>= 1; s->count[ch][c] >>= 1; }
    s->recent[ch][2] = s->recent[ch][1]; s->recent[ch][1] = s->recent[ch][0]; s->recent[ch][0] = e;
}

static void samples_update(sample_state *s, const uint8_t *h, int64_t t) {
    if (!s->active) return;
    int64_t steps[2];
    mixing_steps(s->out, 2, s->costs, h[t], steps);
    step_mix(s->mix[s->half][s->cell], 2, steps);
    samples_learn(s, h, t);
}

/* hints.c's view of the sample model: at a high byte, the predicted sample's high byte; at a low
   byte, the predicted sample's low byte within the high byte already known; and the spread, an
   octave a bucket from half a level up. Past the last whole frame: no hint. */
void samples_hint(sample_state *s, const uint8_t *h, int64_t t, int16_t *out) {
    samples_centre(s, t);
    if (!s->active) { out[0] = out[1] = 256; return; }
    int64_t v = floor_div64(s->pred + 8, 16);
    v = v < -32768 ? -32768 : v > 32767 ? 32767 : v;
    if (!s->half) {
        out[0] = (int16_t)(((v + 65536) >> 8) & 255);
    } else {
        const int64_t low = v - sm_signed((int64_t)h[t - 1] << 8);
        out[0] = (int16_t)(low < 0 ? 0 : low > 255 ? 255 : low);
    }
    out[1] = (int16_t)octave_bucket(s->den / 5, 1, 3);
}

int tzip_samples_scan(int64_t channels, const int32_t *cdf, const int32_t *cost, const int32_t *exp2,
                      const uint8_t *sym, int64_t n, int32_t *freqs) {
    sample_state *s = tzip_samples_new(channels, n, cdf, cost, exp2);
    SCAN_WITH(samples, s)
}

BATCH_STEPS(samples, sample_state)
