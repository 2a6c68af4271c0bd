/* The pixel model (tzip/pixels.py is the reference; the same integers): sixteen sub-predictors of
 * a pixel from its causal neighbours (and the channels before it), blended by their recent errors,
 * corrected by an NLMS filter and a residual filter; three logistic experts around the prediction
 * (q, the period-two model q2, and the texture model q3) are mixed with the network's frequencies
 * by weights learnt per activity cell, incoming peak, agreement and period-two cell.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mixing.h"
#include "stage.h"
#include "tzip.h"

#define PX_SUB 16
#define PX_CELLS 16
#define PX_SPATIAL 10
#define PX_PRED_OFFSET 8192 /* pixels.PRED_OFFSET: every blended numerator is non-negative */
#define PX_CHANNEL_SETS 4
#define PX_HALVE_AT 256
#define PX_LMS_TAPS (14 + PX_SUB - PX_SPATIAL + 4)
#define PX_LMS_STEP 2621
#define PX_LMS_FLOOR 1024
#define PX_LMS_WEIGHT_MAX ((int64_t)1 << 20)
#define PX_RESIDUAL_TAPS 14
#define PX_RESIDUAL_STEP 1311
#define PX_RESIDUAL_FLOOR 4096
#define PX_PEAK_BUCKETS 9
#define PX_AGREEMENT_BUCKETS 6
#define PX_TEXTURES 64
#define PX_EXPERTS 3 /* q, q2 (period two), q3 (texture) */
#define PX_WEIGHT_SETS 4 /* by cell, by f's peak, by agreement, by the period-two cell */
static const int32_t px_edges[PX_CELLS - 1] = {8, 16, 24, 32, 48, 64, 88, 120, 160, 216, 288, 400, 560, 800, 1120};

struct pixel_state {
    int64_t row, ch, len;
    const int32_t *cdf, *cost, *exp2;  /* pixels.py's exact tables, alive as long as that module */
    int32_t *errors;                   /* [len][PX_SUB]: |8x - P_k| */
    int32_t *blend_error;              /* [len]: 8x - P (blended and corrected, not yet refined) */
    int32_t *blend_miss, *lms_miss;    /* [len]: |8x - blend|, |8x - corrected blend| */
    int32_t *period_two_miss;          /* [len]: |8x - the period-two model's base| */
    int64_t lms[PX_CHANNEL_SETS][PX_LMS_TAPS], taps[PX_LMS_TAPS], blend, corrected;
    int n_taps, channel_set;
    int64_t residual_weights[PX_CHANNEL_SETS * 4][PX_RESIDUAL_TAPS], residual_taps[PX_RESIDUAL_TAPS];
    int residual_set;
    /* mixing weights of f, q, q2, q3 by cell, by f's peak, by agreement, by the period-two cell; those used here */
    int64_t w[PX_CELLS * PX_CHANNEL_SETS][PX_EXPERTS + 1], peak_w[PX_PEAK_BUCKETS * PX_CHANNEL_SETS][PX_EXPERTS + 1];
    int64_t agreement_w[PX_AGREEMENT_BUCKETS * PX_CHANNEL_SETS][PX_EXPERTS + 1];
    int64_t period_two_w[PX_CELLS * PX_CHANNEL_SETS][PX_EXPERTS + 1], *weight_sets[PX_WEIGHT_SETS];
    /* pixels.CellStats: bias, mean absolute error and count per cell of each expert */
    int64_t sum_e[PX_EXPERTS][PX_TEXTURES * PX_CHANNEL_SETS], sum_a[PX_EXPERTS][PX_TEXTURES * PX_CHANNEL_SETS];
    int64_t count[PX_EXPERTS][PX_TEXTURES * PX_CHANNEL_SETS];
    int64_t P[PX_SUB], pred, base[PX_EXPERTS], mu[PX_EXPERTS], mae[PX_EXPERTS];  /* between predict and update */
    int c[PX_EXPERTS];
    int32_t q[PX_EXPERTS][256], out[256], costs[PX_EXPERTS + 1][256];
};

/* pixels.inverse_cube_blend: misses < 2^17 - 4, so every weight >= 2 and the sums stay < 2^62 */
static int64_t inverse_cube_blend(const int64_t *pred, const int64_t *miss, int n) {
    int64_t num = 0, den = 0;
    for (int k = 0; k < n; k++) {
        const int64_t e = miss[k] + 4, w = ((int64_t)1 << 50) / (e * e * e);
        num += w * (pred[k] + PX_PRED_OFFSET);
        den += w;
    }
    return (num + den / 2) / den - PX_PRED_OFFSET;
}

/* pixels.cell: the activity's cell among px_edges */
static inline int px_cell(int64_t act) {
    int c = 0;
    while (c < PX_CELLS - 1 && act >= px_edges[c]) c++;
    return c;
}

/* pixels.clamp_prediction */
static inline int64_t clamp_prediction(int64_t p) { return p < -512 ? -512 : p > 2552 ? 2552 : p; }

void tzip_pixels_free(pixel_state *s) {
    if (!s) return;
    free(s->errors); free(s->blend_error); free(s->blend_miss); free(s->lms_miss); free(s->period_two_miss); free(s);
}

pixel_state *tzip_pixels_new(int64_t row, int64_t ch, int64_t len, const int32_t *cdf, const int32_t *cost,
                             const int32_t *exp2) {
    if (row < 1 || ch < 1 || len < 0) return NULL;
    pixel_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->row = row; s->ch = ch; s->len = len; s->cdf = cdf; s->cost = cost; s->exp2 = exp2;
    s->errors = calloc((size_t)(len ? len : 1) * PX_SUB, sizeof(int32_t));
    s->blend_error = calloc((size_t)(len ? len : 1), sizeof(int32_t));
    s->blend_miss = calloc((size_t)(len ? len : 1), sizeof(int32_t));
    s->lms_miss = calloc((size_t)(len ? len : 1), sizeof(int32_t));
    s->period_two_miss = calloc((size_t)(len ? len : 1), sizeof(int32_t));
    if (!s->errors || !s->blend_error || !s->blend_miss || !s->lms_miss || !s->period_two_miss) {
        tzip_pixels_free(s);
        return NULL;
    }
    static const int64_t mix_start[PX_EXPERTS + 1] = {19661, 22938, 22938, 0};
    for (int m = 0; m < PX_EXPERTS; m++)
        for (int c = 0; c < PX_TEXTURES * PX_CHANNEL_SETS; c++) { s->sum_a[m][c] = 16; s->count[m][c] = 1; }
    for (int c = 0; c < PX_CELLS * PX_CHANNEL_SETS; c++) {
        memcpy(s->w[c], mix_start, sizeof mix_start);
        memcpy(s->period_two_w[c], mix_start, sizeof mix_start);
    }
    for (int c = 0; c < PX_PEAK_BUCKETS * PX_CHANNEL_SETS; c++) memcpy(s->peak_w[c], mix_start, sizeof mix_start);
    for (int c = 0; c < PX_AGREEMENT_BUCKETS * PX_CHANNEL_SETS; c++) memcpy(s->agreement_w[c], mix_start, sizeof mix_start);
    return s;
}

/* The predictor's part of a prediction: the sub-predictors, their blend and corrections, and each
   expert's centre mu and spread mae (what hints.c reads; the network plays no part in it). */
static void pixels_centre(pixel_state *s, const uint8_t *h, int64_t t) {
    const int64_t R = s->row, C = s->ch, col = t % R;
    const int left = col >= C, up = t >= R, right = col + C < R;
#define X(i) (8 * (int64_t)h[i])
    int64_t W = left ? X(t - C) : up ? X(t - R) : 1024;
    int64_t N = up ? X(t - R) : W;
    int64_t NW = up && left ? X(t - R - C) : N;
    int64_t NE = up && right ? X(t - R + C) : N;
    int64_t WW = col >= 2 * C ? X(t - 2 * C) : W;
    int64_t NN = t >= 2 * R ? X(t - 2 * R) : N;
    int64_t NNE = t >= 2 * R && right ? X(t - 2 * R + C) : NE;
    const int inter = C > 1 && col % C > 0, later = C > 2 && col % C >= 2;
    const int channel_set = (int)((col % C) < PX_CHANNEL_SETS - 1 ? (col % C) : PX_CHANNEL_SETS - 1);
    int64_t *P = s->P;
    P[0] = W; P[1] = N; P[2] = W + N - NW; P[3] = W + NE - N; P[4] = (W + NE) >> 1; P[5] = N + NE - NNE;
    P[6] = 2 * W - WW; P[7] = (N + NW) >> 1; P[8] = (W + N) >> 1; P[9] = 2 * N - NN; P[10] = 0; P[11] = 0;
    P[12] = 0; P[13] = 0; P[14] = 0; P[15] = 0;
    if (inter) {
        int64_t cur = X(t - 1);
        int64_t Nc = up ? X(t - 1 - R) : cur, Wc = left ? X(t - 1 - C) : cur;
        P[10] = N + cur - Nc;
        P[11] = W + cur - Wc;
        P[12] = NE + cur - (up && right ? X(t - 1 - R + C) : Nc);
        P[13] = ((W + N) >> 1) + cur - ((Wc + Nc) >> 1);
        int64_t NWc = up && left ? X(t - 1 - R - C) : Nc;
        P[14] = NW + cur - NWc;
        P[15] = W + N - NW + cur - (Wc + Nc - NWc);
    }
#undef X
    /* pixels.NEIGHBOURS: the ten causal positions whose errors weigh each sub-predictor */
    const int up2 = t >= 2 * R, left2 = col >= 2 * C, right2 = col + 2 * C < R;
    int64_t near[10]; int n_near = 0;
    if (left) near[n_near++] = t - C;
    if (up) near[n_near++] = t - R;
    if (up && left) near[n_near++] = t - R - C;
    if (up && right) near[n_near++] = t - R + C;
    if (left2) near[n_near++] = t - 2 * C;
    if (up2) near[n_near++] = t - 2 * R;
    if (up2 && left) near[n_near++] = t - 2 * R - C;
    if (up2 && right) near[n_near++] = t - 2 * R + C;
    if (up && left2) near[n_near++] = t - R - 2 * C;
    if (up && right2) near[n_near++] = t - R + 2 * C;
    /* pixels.PERIOD_TWO: the positions two and four away, for the period-two model */
    const int up4 = t >= 4 * R, left4 = col >= 4 * C;
    int64_t apart[6]; int n_apart = 0;
    if (left2) apart[n_apart++] = t - 2 * C;
    if (up2) apart[n_apart++] = t - 2 * R;
    if (up2 && left2) apart[n_apart++] = t - 2 * R - 2 * C;
    if (up2 && right2) apart[n_apart++] = t - 2 * R + 2 * C;
    if (left4) apart[n_apart++] = t - 4 * C;
    if (up4) apart[n_apart++] = t - 4 * R;
    const int n_sub = inter ? PX_SUB : PX_SPATIAL;
    int64_t miss[PX_SUB], miss2[PX_SUB];  /* each sub-predictor's errors summed over the two sets */
    for (int k = 0; k < n_sub; k++) {
        miss[k] = miss2[k] = 0;
        for (int j = 0; j < n_near; j++) miss[k] += s->errors[near[j] * PX_SUB + k];
        for (int j = 0; j < n_apart; j++) miss2[k] += s->errors[apart[j] * PX_SUB + k];
    }
    const int64_t blend = inverse_cube_blend(P, miss, n_sub);
    s->base[1] = inverse_cube_blend(P, miss2, n_sub);
    /* the correction stage (pixels.LMS_TAPS): the fourteen neighbours' and the inter-channel
     * sub-predictions' offsets from the blend, through this channel set's NLMS weights */
#define AT(dy, dx, fallback) (t >= (dy) * R && col + (dx) * C >= 0 && col + (dx) * C < R ? 8 * (int64_t)h[t - (dy) * R + (dx) * C] : (fallback))
    const int64_t NNW = AT(2, -1, NW);
    const int64_t values[14] = {W, N, NW, NE, WW, NN, NNE, NNW, AT(1, -2, NW), AT(1, 2, NE), AT(0, -3, WW),
                                AT(3, 0, NN), AT(2, -2, NNW), AT(2, 2, NNE)};
#undef AT
    int n_taps = 0;
    for (int k = 0; k < 14; k++) s->taps[n_taps++] = values[k] - blend;
    if (inter) for (int k = PX_SPATIAL; k < PX_SUB; k++) s->taps[n_taps++] = P[k] - blend;
    if (later) {  /* as P[10..15] from the channel two back */
        const int64_t c2 = 8 * (int64_t)h[t - 2];
        const int64_t N2 = up ? 8 * (int64_t)h[t - 2 - R] : c2, W2 = left ? 8 * (int64_t)h[t - 2 - C] : c2;
        const int64_t NE2 = up && right ? 8 * (int64_t)h[t - 2 - R + C] : N2;
        const int64_t NW2 = up && left ? 8 * (int64_t)h[t - 2 - R - C] : N2;
        s->taps[n_taps++] = N + c2 - N2 - blend;
        s->taps[n_taps++] = W + c2 - W2 - blend;
        s->taps[n_taps++] = NE + c2 - NE2 - blend;
        s->taps[n_taps++] = W + N - NW + c2 - (W2 + N2 - NW2) - blend;
    }
    s->n_taps = n_taps;
    s->channel_set = channel_set;
    int64_t acc = 0;
    for (int k = 0; k < n_taps; k++) acc += s->lms[channel_set][k] * s->taps[k];
    const int64_t corrected = clamp_prediction(blend + floor_div64(acc, 65536));
    /* the blend and its correction, weighed as the sub-predictors are by their misses nearby */
    const int64_t both[2] = {blend, corrected};
    int64_t both_miss[2] = {0, 0};
    for (int j = 0; j < n_near; j++) { both_miss[0] += s->blend_miss[near[j]]; both_miss[1] += s->lms_miss[near[j]]; }
    const int64_t pred = inverse_cube_blend(both, both_miss, 2);
    s->blend = blend; s->corrected = corrected;
    const int32_t *be = s->blend_error;
    const int64_t beside = (left ? abs64(be[t - C]) : 0) + (up ? abs64(be[t - R]) : 0)
                           + (((up && left ? abs64(be[t - R - C]) : 0) + (up && right ? abs64(be[t - R + C]) : 0)) >> 1);
    int64_t act = beside;
    if (inter) act += abs64(be[t - 1]);
    act += (abs64(W - NW) + abs64(N - NW) + abs64(N - NE)) >> 1;
    act += ((left2 ? abs64(be[t - 2 * C]) : 0) + (up2 ? abs64(be[t - 2 * R]) : 0)) >> 1;
    act += abs64(blend - corrected);
    const int c = px_cell(act) + PX_CELLS * channel_set;
    /* the residual filter (pixels.RESIDUAL_TAPS): the prediction's errors at fourteen neighbours */
    int64_t *rt = s->residual_taps;
    rt[0] = left ? be[t - C] : 0; rt[1] = up ? be[t - R] : 0;
    rt[2] = up && left ? be[t - R - C] : 0; rt[3] = up && right ? be[t - R + C] : 0;
    rt[4] = left2 ? be[t - 2 * C] : 0; rt[5] = up2 ? be[t - 2 * R] : 0;
    rt[6] = inter ? be[t - 1] : 0; rt[7] = later ? be[t - 2] : 0;
    rt[8] = up2 && left ? be[t - 2 * R - C] : 0; rt[9] = up2 && right ? be[t - 2 * R + C] : 0;
    rt[10] = up && left2 ? be[t - R - 2 * C] : 0; rt[11] = up && right2 ? be[t - R + 2 * C] : 0;
    rt[12] = inter && up ? be[t - 1 - R] : 0; rt[13] = inter && left ? be[t - 1 - C] : 0;
    s->residual_set = channel_set * 4 + ((c % PX_CELLS) >> 2);
    acc = 0;
    for (int k = 0; k < PX_RESIDUAL_TAPS; k++) acc += s->residual_weights[s->residual_set][k] * rt[k];
    const int64_t refined = clamp_prediction(pred + floor_div64(acc, 65536));
    s->base[0] = refined;
    s->pred = pred;
    /* the period-two model's activity: its own misses two and four away */
#define MISS(cond, i) ((cond) ? s->period_two_miss[i] : 0)
    int64_t act2 = MISS(left2, t - 2 * C) + MISS(up2, t - 2 * R);
    act2 += (MISS(up2 && left2, t - 2 * R - 2 * C) + MISS(up2 && right2, t - 2 * R + 2 * C)) >> 1;
    act2 += (MISS(left4, t - 4 * C) + MISS(up4, t - 4 * R)) >> 1;
    act2 += MISS(inter, t - 1);
#undef MISS
    const int texture = (W > refined) | (N > refined) << 1 | (NW > refined) << 2 | (NE > refined) << 3;
    s->base[2] = refined;
    s->c[0] = c; s->c[1] = px_cell(act2) + PX_CELLS * channel_set;
    s->c[2] = texture * 4 + ((c % PX_CELLS) >> 2) + PX_TEXTURES * channel_set;
    const int64_t local = 8 * beside / 3;

    /* each expert's centre: its base plus its cell's bias; its spread: its mean absolute error
     * (q's a quarter the errors beside) */
    for (int m = 0; m < PX_EXPERTS; m++) {
        const int cm = s->c[m];
        int64_t mu = s->base[m] + floor_div64(s->sum_e[m][cm], s->count[m][cm]);
        s->mu[m] = mu < 0 ? 0 : mu > 2040 ? 2040 : mu;
        int64_t mae = 8 * s->sum_a[m][cm] / s->count[m][cm];
        if (m == 0) mae = (3 * mae + local) / 4;
        s->mae[m] = mae < 19 ? 19 : mae;
    }
}

static void pixels_predict(pixel_state *s, const uint8_t *h, int64_t t, int32_t *freq) {
    pixels_centre(s, h, t);
    const int c = s->c[0], channel_set = s->channel_set;
    /* q, q2, q3: logistics at each centre, scale 0.7 x the spread; the CDF at each byte's upper
     * edge, z = (8v + 4 - mu) / (0.7 mae / 8) */
    for (int m = 0; m < PX_EXPERTS; m++) {
        int64_t cv[256];
        cdf_steps(s->cdf, 2560 * (4 - s->mu[m]), 20480, 7 * s->mae[m], 255, cv);
        cv[255] = PX_CDF_ONE;
        for (int v = 0; v < 256; v++) s->q[m][v] = (int32_t)(cv[v] - (v ? cv[v - 1] : 0) + 1);
    }
    /* the mixing weights: the means of the sets by cell, by the incoming peak, by agreement, by the period-two cell */
    int likeliest = 0;
    for (int v = 1; v < 256; v++) if (freq[v] > freq[likeliest]) likeliest = v;
    int peak = 0;
    while (peak < PX_PEAK_BUCKETS - 1 && freq[likeliest] >= (256 << peak)) peak++;
    const int64_t d = abs64(8 * likeliest - s->mu[0]) >> 3;
    const int agree = d == 0 ? 0 : d == 1 ? 1 : d < 4 ? 2 : d < 8 ? 3 : d < 16 ? 4 : 5;
    s->weight_sets[0] = s->w[c];
    s->weight_sets[1] = s->peak_w[peak + PX_PEAK_BUCKETS * channel_set];
    s->weight_sets[2] = s->agreement_w[agree + PX_AGREEMENT_BUCKETS * channel_set];
    s->weight_sets[3] = s->period_two_w[s->c[1]];
    int64_t w[PX_EXPERTS + 1];
    for (int i = 0; i <= PX_EXPERTS; i++) {
        w[i] = 0;
        for (int k = 0; k < PX_WEIGHT_SETS; k++) w[i] += s->weight_sets[k][i];
        w[i] /= PX_WEIGHT_SETS;
    }
    const int32_t *inputs[PX_EXPERTS + 1] = {freq, s->q[0], s->q[1], s->q[2]};
    mix_inputs(s->cost, s->exp2, PX_EXPERTS + 1, w, inputs, s->costs, s->out);
    memcpy(freq, s->out, sizeof s->out);
}

/* What the predictor learns from the byte at t (everything but the mixing weights). */
void pixels_learn(pixel_state *s, const uint8_t *h, int64_t t) {
    const int64_t v = 8 * (int64_t)h[t];
    for (int k = 0; k < PX_SUB; k++) s->errors[t * PX_SUB + k] = (int32_t)abs64(v - s->P[k]);
    s->blend_error[t] = (int32_t)(v - s->pred);
    s->blend_miss[t] = (int32_t)abs64(v - s->blend);
    s->lms_miss[t] = (int32_t)abs64(v - s->corrected);
    s->period_two_miss[t] = (int32_t)abs64(v - s->base[1]);
    nlms(s->lms[s->channel_set], s->taps, s->n_taps, v - s->corrected, PX_LMS_STEP, PX_LMS_FLOOR, PX_LMS_WEIGHT_MAX);
    nlms(s->residual_weights[s->residual_set], s->residual_taps, PX_RESIDUAL_TAPS, v - s->base[0], PX_RESIDUAL_STEP,
         PX_RESIDUAL_FLOOR, PX_LMS_WEIGHT_MAX);
    for (int m = 0; m < PX_EXPERTS; m++) {
        const int c = s->c[m];
        s->sum_e[m][c] += v - s->base[m];
        s->sum_a[m][c] += abs64(v - s->mu[m]);
        if (++s->count[m][c] > PX_HALVE_AT) {
            s->sum_e[m][c] = floor_div64(s->sum_e[m][c], 2);
            s->sum_a[m][c] >>= 1;
            s->count[m][c] >>= 1;
        }
    }
}

static void pixels_update(pixel_state *s, const uint8_t *h, int64_t t) {
    pixels_learn(s, h, t);
    int64_t steps[PX_EXPERTS + 1];
    mixing_steps(s->out, PX_EXPERTS + 1, s->costs, h[t], steps);
    for (int i = 0; i < PX_WEIGHT_SETS; i++) step_mix(s->weight_sets[i], PX_EXPERTS + 1, steps);
}

/* hints.c's view of the pixel model: the centre at t, as a byte and a spread bucket (the spread
   of 19/64 of a level and up, two buckets an octave). */
void pixels_hint(pixel_state *s, const uint8_t *h, int64_t t, int16_t *out) {
    pixels_centre(s, h, t);
    out[0] = (int16_t)((s->mu[0] + 4) >> 3);
    out[1] = (int16_t)octave_bucket(s->mae[0], 2, 8);
}

int tzip_pixels_scan(int64_t row, int64_t ch, const int32_t *cdf, const int32_t *cost, const int32_t *exp2,
                     const uint8_t *sym, int64_t n, int32_t *freqs) {
    pixel_state *s = tzip_pixels_new(row, ch, n, cdf, cost, exp2);
    SCAN_WITH(pixels, s)
}

BATCH_STEPS(pixels, pixel_state)
