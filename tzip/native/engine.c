/* The integer engine in C: the decode step (tzip_step) and the teacher-forced parallel pass
 * over a segment (tzip_parallel), giving exactly the integers of the PyTorch engine
 * (engine.Decoder.step and IntModel.parallel) without thousands of interpreter round trips.
 *
 * Every value is an integer and every operation is exact: products of int8 values summed in
 * int32 (at most fan_in * 127^2, far below 2^31), requantisation in int64 (the export bounds it
 * to int32 anyway), so vectorisation, summation order and threads cannot change a result. The
 * only float operation that rounds is the RMSNorm square root, done as engine.rmsnorm does it
 * (IEEE sqrt of an integer below 2^52, then floor). tests/test_native.py pins both entry points bit
 * for bit against the PyTorch engine, for this file built with and without CPU tuning.
 *
 * Layout: weights are the int8 values widened to int16, [out][in] row-major (the portable dot
 * products), plus a copy for the AVX-512 VNNI tiles: int32 biases 128 * (sum of each output's
 * weights), then the int8 weights packed [out/32][in/4][32][4] (unsigned x + 128 times signed
 * weights, four inputs per lane, the bias taken off), with per-output-channel (mult, shift).
 * The attention's p . values sums run in float32: every partial sum is an integer below 2^24
 * (engine.check_bounds), so exact. Activations are int16 holding int8 values. The decode state
 * holds, per layer and segment, ring buffers of keys and values [nkv][keys][hd] (window ring
 * first, then memory ring) and the int32 sum of the current memory block.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tzip.h"

#define MAX_D 1024
#define MAX_OUT 2048 /* widest layer (d_ff or the qkv projection): bounds the stack scratch */
#define MAX_KEYS 4096
#define KEY_BLOCK TZIP_KEY_BLOCK /* keys per block of a key ring (block_keys, put_key) */

static inline int32_t dot16_n(const int16_t *a, const int16_t *b, int n) {
    int32_t acc = 0;
    for (int k = 0; k < n; k++) acc += (int32_t)a[k] * (int32_t)b[k];
    return acc;
}

#define DOT_FIXED(N) static int32_t dot16_##N(const int16_t *a, const int16_t *b) { \
    int32_t acc = 0; for (int k = 0; k < N; k++) acc += (int32_t)a[k] * (int32_t)b[k]; return acc; }
DOT_FIXED(32)
DOT_FIXED(128)
DOT_FIXED(384)

static inline int32_t dot16(const int16_t *a, const int16_t *b, int n) {
    switch (n) {
    case 32: return dot16_32(a, b);
    case 128: return dot16_128(a, b);
    case 384: return dot16_384(a, b);
    default: return dot16_n(a, b, n);
    }
}

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define LIN_MAX_IN 2048
static inline int32_t quad(const uint8_t *p) { int32_t v; memcpy(&v, p, sizeof v); return v; }
/* Four rows (then one at a time) by 32 outputs per tile, unsigned x + 128 times signed weights
 * (VNNI's u8 x s8 dot products, four inputs per lane) from `wp`: int32 biases 128 * sum_k w[j][k]
 * for every output of the padded blocks, then the weights packed [out/32][in/4][32][4] (zero-
 * padded). Subtracting the bias gives the integer sums of x . w exactly (|sum| < 2^31). */
static int linear_tiles(const int16_t *x, int batch, int in, const void *wp, int out, const int32_t *mult,
                        const int32_t *shift, int32_t *y) {
    const int blocks = (out + 31) / 32;
    const int32_t *bias = (const int32_t *)wp;
    const int8_t *wq = (const int8_t *)wp + (int64_t)blocks * 32 * sizeof(int32_t);
    uint8_t xu[4][LIN_MAX_IN];
    for (int b = 0; b < batch; b += 4) {
        const int rows = batch - b < 4 ? batch - b : 4;
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < in; k++) xu[r][k] = (uint8_t)(x[(int64_t)(b + r) * in + k] + 128);
        for (int jb = 0; jb < blocks; jb++) {
            const int8_t *w = wq + (int64_t)jb * in * 32;
            __m512i acc[8];
            for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_si512();
            if (rows == 4) {
                for (int k4 = 0; k4 < in / 4; k4++) {
                    const __m512i w0 = _mm512_loadu_si512(w + k4 * 128), w1 = _mm512_loadu_si512(w + k4 * 128 + 64);
                    for (int r = 0; r < 4; r++) {
                        const __m512i xr = _mm512_set1_epi32(quad(&xu[r][4 * k4]));
                        acc[2 * r] = _mm512_dpbusd_epi32(acc[2 * r], xr, w0);
                        acc[2 * r + 1] = _mm512_dpbusd_epi32(acc[2 * r + 1], xr, w1);
                    }
                }
            } else {
                for (int r = 0; r < rows; r++)
                    for (int k4 = 0; k4 < in / 4; k4++) {
                        const __m512i xr = _mm512_set1_epi32(quad(&xu[r][4 * k4]));
                        acc[2 * r] = _mm512_dpbusd_epi32(acc[2 * r], xr, _mm512_loadu_si512(w + k4 * 128));
                        acc[2 * r + 1] = _mm512_dpbusd_epi32(acc[2 * r + 1], xr, _mm512_loadu_si512(w + k4 * 128 + 64));
                    }
            }
            int32_t tile[4][32];
            for (int r = 0; r < rows; r++) {
                _mm512_storeu_si512(&tile[r][0], acc[2 * r]);
                _mm512_storeu_si512(&tile[r][16], acc[2 * r + 1]);
            }
            const int n = out - jb * 32 < 32 ? out - jb * 32 : 32;
            for (int r = 0; r < rows; r++)
                for (int jj = 0; jj < n; jj++) {
                    const int j = jb * 32 + jj;
                    y[(int64_t)(b + r) * out + j] = requant((int64_t)tile[r][jj] - bias[j], mult[j], shift[j]);
                }
        }
    }
    return batch;
}
#endif

/* y[b][j] = requant(x[b] . W[row0 + j]) for j < out, over a batch of rows. `wp`: the same
 * weights packed for linear_tiles (used where the CPU has AVX-512 VNNI), or NULL. */
static void linear(const int16_t *x, int batch, int in, const int16_t *w, const void *wp, int row0, int out,
                   const int32_t *mult, const int32_t *shift, int32_t *y) {
    int done = 0;
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
    if (wp && row0 == 0 && in % 4 == 0 && in <= LIN_MAX_IN) done = linear_tiles(x, batch, in, wp, out, mult, shift, y);
#else
    (void)wp;
#endif
    for (int j = 0; j < out; j++) {
        const int16_t *wr = w + (int64_t)(row0 + j) * in;
        for (int b = done; b < batch; b++)
            y[(int64_t)b * out + j] = requant(dot16(x + (int64_t)b * in, wr, in), mult[row0 + j], shift[row0 + j]);
    }
}

/* engine.rmsnorm for d a power of two: int32 h[d] -> int8 x[d]. */
static void rmsnorm(const int32_t *h, int d, int norm_shift, int16_t *x) {
    int64_t ss = 0;
    for (int k = 0; k < d; k++) ss += (int64_t)h[k] * h[k];
    int64_t ms = ss * 256 / d;  /* d divides 256 * ss exactly or floors, as the float path */
    int64_t r = (int64_t)floor(sqrt((double)ms));
    if (r < 1) r = 1;
    int64_t inv = (((int64_t)1 << 32) + (r >> 1)) / r;
    int64_t half = (int64_t)1 << (norm_shift - 1);
    for (int k = 0; k < d; k++) x[k] = (int16_t)clamp32(((int64_t)h[k] * inv + half) >> norm_shift, -127, 127);
}

/* One query head from raw scores q . k (key_scores over blocked keys): the integer softmax with
 * the keys' bias, and p . values. HD is a compile-time constant in the common head sizes. */
#define ATTEND_RAW_BODY(HD)                                                                        \
    int32_t z[n_keys], top = INT32_MIN;                                                            \
    for (int j = 0; j < n_keys; j++) {                                                             \
        z[j] = requant(raw[j], score_m, score_s) + bias[j];                                        \
        if (z[j] > top) top = z[j];                                                                \
    }                                                                                              \
    int64_t total = 0;                                                                             \
    for (int j = 0; j < n_keys; j++) {                                                             \
        int64_t u = (int64_t)top - z[j];                                                           \
        z[j] = exp_full[u > u_max ? u_max : u];                                                    \
        total += z[j];                                                                             \
    }                                                                                              \
    const int64_t inv = ((int64_t)1 << (2 * prob_bits)) / total;                                   \
    float acc[HD];  /* sum p <= 2^prob_bits, |v| <= 127: every partial sum an exact float32 integer */ \
    for (int e = 0; e < HD; e++) acc[e] = 0.0f;                                                    \
    for (int j = 0; j < n_keys; j++) {                                                             \
        const int32_t p = (int32_t)((z[j] * inv) >> prob_bits);                                    \
        if (p == 0) continue;                                                                      \
        const float pf = (float)p;                                                                 \
        for (int e = 0; e < HD; e++) acc[e] += pf * (float)v[(int64_t)j * HD + e];                 \
    }                                                                                              \
    for (int e = 0; e < HD; e++) o[e] = (int32_t)acc[e];

#define ATTEND_RAW_ARGS const int32_t *raw, const int16_t *v, const int32_t *bias, int n_keys, \
    int32_t score_m, int32_t score_s, const int32_t *exp_full, int u_max, int prob_bits, int32_t *o
static void attend_raw_32(ATTEND_RAW_ARGS) { ATTEND_RAW_BODY(32) }
static void attend_raw_64(ATTEND_RAW_ARGS) { ATTEND_RAW_BODY(64) }
static void attend_raw_n(ATTEND_RAW_ARGS, int hd) { ATTEND_RAW_BODY(hd) }

static int floor_mod(int64_t a, int64_t m) { int64_t r = a % m; return (int)(r < 0 ? r + m : r); }

/* One layer's weights, as the params array holds them. */
typedef struct {
    void **lp;  /* the layer's slice of params (L_* indices) */
    const int16_t *qkv_w; const void *qkv_p;
    const int32_t *qkv_m, *qkv_s, *out_m, *out_s;
    int32_t score_m, score_s;
} LayerWeights;

static LayerWeights layer_weights(void **params, int l) {
    void **lp = params + TZIP_PARAM_COUNT + l * TZIP_LAYER_COUNT;
    LayerWeights L = {lp, lp[TZIP_LAYER_QKV_W], lp[TZIP_LAYER_QKV_P], lp[TZIP_LAYER_QKV_M], lp[TZIP_LAYER_QKV_S],
                      lp[TZIP_LAYER_OUT_M], lp[TZIP_LAYER_OUT_S],
                      ((int32_t *)lp[TZIP_LAYER_SCORE_M])[0], ((int32_t *)lp[TZIP_LAYER_SCORE_S])[0]};
    return L;
}

/* A finished memory block: pooled = floor((sum + c/2) / c), then its key and value rows
 * (the qkv projection's key/value part) into k[kh * kv_stride + e] and v likewise. */
static void memory_slot(const int32_t *cfg, const int16_t *qkv_w, const int32_t *qkv_m, const int32_t *qkv_s,
                        const int32_t *sum, int16_t *k, int16_t *v, int64_t k_stride, int64_t v_stride) {
    const int d = cfg[TZIP_CFG_D_MODEL], c = cfg[TZIP_CFG_BLOCK], hd = d / cfg[TZIP_CFG_N_HEADS];
    const int nkv = cfg[TZIP_CFG_N_KV_HEADS], kvd = nkv * hd;
    int16_t pooled[d];
    int32_t mkv[2 * kvd];
    for (int i = 0; i < d; i++) {
        int32_t x = sum[i] + c / 2;  /* floor division, as torch.div(..., rounding_mode="floor") */
        pooled[i] = (int16_t)(x >= 0 ? x / c : -((-x + c - 1) / c));
    }
    linear(pooled, 1, d, qkv_w, NULL, d, 2 * kvd, qkv_m, qkv_s, mkv);
    for (int kh = 0; kh < nkv; kh++)
        for (int e = 0; e < hd; e++) {
            k[kh * k_stride + e] = (int16_t)clamp32(mkv[kh * hd + e], -127, 127);
            v[kh * v_stride + e] = (int16_t)clamp32(mkv[kvd + kh * hd + e], -127, 127);
        }
}

/* engine.embed for one position: the phase row plus one table row per feature byte and per hint
   (hint: this position's TZIP_N_HINTS values, or NULL for none). */
static void embed(const int32_t *cfg, void **params, int64_t t, const uint8_t *bytes, const int32_t *offsets,
                  int modality, int period, const int16_t *hint, int32_t *h) {
    const int d = cfg[TZIP_CFG_D_MODEL], nf = cfg[TZIP_CFG_N_FEATURES];
    const int64_t res_limit = cfg[TZIP_CFG_RES_LIMIT];
    const int32_t *features = params[TZIP_PARAM_FEATURES];
    const int32_t *row = (const int32_t *)params[TZIP_PARAM_PHASE]
                         + (int64_t)(modality * cfg[TZIP_CFG_PHASES] + floor_mod(t, period)) * d;
    for (int k = 0; k < d; k++) h[k] = row[k];
    for (int s = 0; s < nf; s++) {
        int64_t off = offsets[s], src = t - off;
        int f = (off > 0 && src >= 0) ? bytes[src] : 256;
        const int32_t *e = features + ((int64_t)s * 257 + f) * d;
        for (int k = 0; k < d; k++) h[k] += e[k];
    }
    const int32_t *hint_tables = params[TZIP_PARAM_HINTS];
    for (int s = 0; s < cfg[TZIP_CFG_N_HINTS]; s++) {
        const int f = hint && hint[s] >= 0 && hint[s] < 256 ? hint[s] : 256;
        const int32_t *e = hint_tables + ((int64_t)s * 257 + f) * d;
        for (int k = 0; k < d; k++) h[k] += e[k];
    }
    for (int k = 0; k < d; k++) h[k] = clamp32(h[k], -res_limit, res_limit);
}

/* One query head's o[hd], the int32 attention accumulator, from its raw scores against n_keys keys. */
static void attend_raw(int hd, const int32_t *raw, const int16_t *v, const int32_t *bias, int n_keys,
                       int32_t score_m, int32_t score_s, const int32_t *cfg, const int32_t *exp_full, int32_t *o) {
    const int u_max = cfg[TZIP_CFG_U_MAX], prob_bits = cfg[TZIP_CFG_PROB_BITS];
    switch (hd) {
    case 32: attend_raw_32(raw, v, bias, n_keys, score_m, score_s, exp_full, u_max, prob_bits, o); break;
    case 64: attend_raw_64(raw, v, bias, n_keys, score_m, score_s, exp_full, u_max, prob_bits, o); break;
    default: attend_raw_n(raw, v, bias, n_keys, score_m, score_s, exp_full, u_max, prob_bits, o, hd);
    }
}

/* Keys [n][hd] int16 -> blocks of 16 keys, each [hd/2][16] int32 pairs of dims (as VNNI reads
   them: one load per pair of dims gives 16 keys), zero-padded to whole blocks. */
static void block_keys(const int16_t *k, int64_t n, int hd, int32_t *kb) {
    const int hd2 = hd / 2;
    memset(kb, 0, sizeof(int32_t) * (size_t)((n + KEY_BLOCK - 1) / KEY_BLOCK) * hd2 * KEY_BLOCK);
    for (int64_t j = 0; j < n; j++)
        for (int e2 = 0; e2 < hd2; e2++)
            memcpy(&kb[((j / KEY_BLOCK) * hd2 + e2) * KEY_BLOCK + j % KEY_BLOCK], &k[j * hd + 2 * e2], sizeof(int32_t));
}

/* Raw scores q . k of keys from..from+n-1 of blocked keys kb (block_keys), into raw[0..n-1]:
   whole blocks of 16 keys per VNNI step where the CPU has it. Integer sums: the same values. */
static void key_scores(const int16_t *q, int hd, const int32_t *kb, int64_t from, int n, int32_t *raw) {
    if (n <= 0) return;
    const int hd2 = hd / 2;
    const int64_t first = from / KEY_BLOCK, last = (from + n - 1) / KEY_BLOCK;
    int32_t lane[(MAX_KEYS / KEY_BLOCK + 2) * KEY_BLOCK];
    for (int64_t ib = first; ib <= last; ib++) {
        int32_t *out = lane + (ib - first) * KEY_BLOCK;
        const int32_t *blk = kb + ib * hd2 * KEY_BLOCK;
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
        __m512i acc = _mm512_setzero_si512();
        for (int e2 = 0; e2 < hd2; e2++) {
            int32_t qp; memcpy(&qp, q + 2 * e2, sizeof qp);
            acc = _mm512_dpwssd_epi32(acc, _mm512_set1_epi32(qp), _mm512_loadu_si512(blk + e2 * KEY_BLOCK));
        }
        _mm512_storeu_si512(out, acc);
#else
        for (int l = 0; l < KEY_BLOCK; l++) {
            int32_t acc = 0;
            for (int e2 = 0; e2 < hd2; e2++) {
                const int32_t pr = blk[e2 * KEY_BLOCK + l];
                acc += (int32_t)q[2 * e2] * (int16_t)(pr & 0xffff) + (int32_t)q[2 * e2 + 1] * (int16_t)(pr >> 16);
            }
            out[l] = acc;
        }
#endif
    }
    memcpy(raw, lane + from % KEY_BLOCK, sizeof(int32_t) * n);
}

/* Key j of a decoder's ring kept as block_keys lays them out (its blocks zero-padded), so the
   step scores 16 keys per VNNI step too: one key written where the ring's slot j is. */
static void put_key(int32_t *kb, int64_t j, int hd, const int16_t *key) {
    for (int e2 = 0; e2 < hd / 2; e2++)
        memcpy(&kb[((j / KEY_BLOCK) * (hd / 2) + e2) * KEY_BLOCK + j % KEY_BLOCK], &key[2 * e2], sizeof(int32_t));
}

/* The rest of a layer over `rows` rows: h += proj(o); h += down(relu(up(norm(h)))).
 * Scratch: acc [rows * max(d, ff)] int32, xn [rows * d] and a [rows * ff] int16. */
static void finish_layer(const int32_t *cfg, void **lp, int rows, const int16_t *o8, int32_t *h, int32_t *acc,
                         int16_t *xn, int16_t *a) {
    const int d = cfg[TZIP_CFG_D_MODEL], ff = cfg[TZIP_CFG_D_FF], norm_shift = cfg[TZIP_CFG_NORM_SHIFT];
    const int64_t res_limit = cfg[TZIP_CFG_RES_LIMIT];
    linear(o8, rows, d, lp[TZIP_LAYER_PROJ_W], lp[TZIP_LAYER_PROJ_P], 0, d, lp[TZIP_LAYER_PROJ_M],
           lp[TZIP_LAYER_PROJ_S], acc);
    for (int64_t i = 0; i < (int64_t)rows * d; i++) h[i] = clamp32((int64_t)h[i] + acc[i], -res_limit, res_limit);
    for (int b = 0; b < rows; b++) rmsnorm(h + (int64_t)b * d, d, norm_shift, xn + (int64_t)b * d);
    linear(xn, rows, d, lp[TZIP_LAYER_UP_W], lp[TZIP_LAYER_UP_P], 0, ff, lp[TZIP_LAYER_UP_M], lp[TZIP_LAYER_UP_S], acc);
    for (int64_t i = 0; i < (int64_t)rows * ff; i++) a[i] = (int16_t)clamp32(acc[i], 0, 127);
    linear(a, rows, ff, lp[TZIP_LAYER_DOWN_W], lp[TZIP_LAYER_DOWN_P], 0, d, lp[TZIP_LAYER_DOWN_M],
           lp[TZIP_LAYER_DOWN_S], acc);
    for (int64_t i = 0; i < (int64_t)rows * d; i++) h[i] = clamp32((int64_t)h[i] + acc[i], -res_limit, res_limit);
}

/* Final norm and head over `rows` rows, then logits -> frequencies (each >= 1, summing to
 * 2^freq_bits, the deficit to the first maximum as torch.argmax). */
static void output(const int32_t *cfg, void **params, int rows, const int32_t *h, int16_t *xn, int32_t *freq) {
    const int d = cfg[TZIP_CFG_D_MODEL], u_max = cfg[TZIP_CFG_U_MAX], exp_bits = cfg[TZIP_CFG_EXP_BITS];
    const int freq_bits = cfg[TZIP_CFG_FREQ_BITS];
    const int32_t *exp_full = params[TZIP_PARAM_EXP];
    for (int b = 0; b < rows; b++) rmsnorm(h + (int64_t)b * d, d, cfg[TZIP_CFG_NORM_SHIFT], xn + (int64_t)b * d);
    linear(xn, rows, d, params[TZIP_PARAM_HEAD_W], params[TZIP_PARAM_HEAD_P], 0, 256, params[TZIP_PARAM_HEAD_M],
           params[TZIP_PARAM_HEAD_S], freq);
    const int64_t spread = ((int64_t)1 << freq_bits) - 256;
    for (int b = 0; b < rows; b++) {
        int32_t *z = freq + (int64_t)b * 256, e[256];
        int top = 0;
        for (int k = 1; k < 256; k++)
            if (z[k] > z[top]) top = k;
        int64_t total = 0, sum = 0;
        for (int k = 0; k < 256; k++) {
            int64_t u = (int64_t)z[top] - z[k];
            e[k] = exp_full[u > u_max ? u_max : u];
            total += e[k];
        }
        const int64_t inv = (spread << exp_bits) / total;
        for (int k = 0; k < 256; k++) {
            z[k] = (int32_t)(((int64_t)e[k] * inv) >> exp_bits) + 1;
            sum += z[k];
        }
        z[top] += (int32_t)(((int64_t)1 << freq_bits) - sum);
    }
}

#define CHUNK 32 /* segments per pass over the weights (bounds the stack scratch) */

static void step_chunk(const int32_t *cfg, void **params, int64_t t, int batch,
                       const uint8_t *history, int64_t stride, const int32_t *offsets, const int32_t *modality,
                       const int32_t *period, const int16_t *hints, int16_t *keys, int16_t *vals, int32_t *block_sum, int64_t key_stride,
                       int64_t ring_stride, int64_t sum_stride, int32_t *freq) {
    const int d = cfg[TZIP_CFG_D_MODEL], n_layers = cfg[TZIP_CFG_N_LAYERS], nh = cfg[TZIP_CFG_N_HEADS];
    const int nkv = cfg[TZIP_CFG_N_KV_HEADS], ff = cfg[TZIP_CFG_D_FF], w = cfg[TZIP_CFG_WINDOW];
    const int c = cfg[TZIP_CFG_BLOCK], m = cfg[TZIP_CFG_MEM_SLOTS], ring = cfg[TZIP_CFG_RING];
    const int use_memory = cfg[TZIP_CFG_USE_MEMORY], nf = cfg[TZIP_CFG_N_FEATURES], norm_shift = cfg[TZIP_CFG_NORM_SHIFT];
    const int64_t masked = cfg[TZIP_CFG_MASKED];
    const int hd = d / nh, g = nh / nkv, kvd = nkv * hd, qkv_out = d + 2 * kvd;
    const int n_keys = w + (use_memory ? ring : 0), kpad = (n_keys + KEY_BLOCK - 1) / KEY_BLOCK * KEY_BLOCK;
    const int32_t *exp_full = params[TZIP_PARAM_EXP], *alibi = params[TZIP_PARAM_ALIBI];

    int32_t h[batch][d], acc[batch * (qkv_out > ff ? qkv_out : ff)], raw[n_keys];
    int16_t xn[batch][d], o8[batch][d], a[batch][ff], qkv[batch][qkv_out];
    int32_t bias[nh][n_keys];

    for (int b = 0; b < batch; b++)
        embed(cfg, params, t, history + b * stride, offsets + b * nf, modality[b], period[b],
              hints ? hints + b * TZIP_N_HINTS : NULL, h[b]);

    /* ALiBi bias of every ring slot at position t (Decoder.bias) */
    int64_t hi = t - w + 1 >= 0 ? (t - w + 1) / c : 0, lo = hi - m > 0 ? hi - m : 0;
    for (int j = 0; j < n_keys; j++) {
        int64_t dist;
        int vis;
        if (j < w) {
            dist = floor_mod(t - j, w);
            vis = t - dist >= 0;
        } else {
            int64_t slot = hi - 1 - floor_mod(hi - 1 - (j - w), ring);
            vis = slot >= lo && slot < hi;
            dist = t - (slot * c + c / 2);
        }
        for (int q = 0; q < nh; q++) bias[q][j] = vis ? (int32_t)(-(int64_t)alibi[q] * dist) : (int32_t)masked;
    }

    const int block_done = use_memory && (t + 1) % c == 0;
    const int wpos = (int)(t % w), mpos = w + floor_mod((t + 1) / c - 1, ring);
    for (int l = 0; l < n_layers; l++) {
        const LayerWeights L = layer_weights(params, l);
        int16_t *lk = keys + l * key_stride, *lv = vals + l * ring_stride;
        int32_t *lsum = block_sum + l * sum_stride;

        for (int b = 0; b < batch; b++) rmsnorm(h[b], d, norm_shift, xn[b]);
        linear(&xn[0][0], batch, d, L.qkv_w, L.qkv_p, 0, qkv_out, L.qkv_m, L.qkv_s, acc);
        for (int b = 0; b < batch; b++)
            for (int k = 0; k < qkv_out; k++) qkv[b][k] = (int16_t)clamp32(acc[b * qkv_out + k], -127, 127);

        /* keys: [nkv][kpad * hd / 2] int32 blocks (put_key); values: [nkv][n_keys][hd] */
        for (int b = 0; b < batch; b++) {
            int32_t *bk = (int32_t *)(lk + (int64_t)b * nkv * kpad * hd);
            int16_t *bv = lv + (int64_t)b * nkv * n_keys * hd;
            for (int kh = 0; kh < nkv; kh++) {
                put_key(bk + (int64_t)kh * kpad * hd / 2, wpos, hd, &qkv[b][d + kh * hd]);
                memcpy(bv + ((int64_t)kh * n_keys + wpos) * hd, &qkv[b][d + kvd + kh * hd], hd * sizeof(int16_t));
            }
            if (!use_memory) continue;
            int32_t *sum = lsum + (int64_t)b * d;
            for (int k = 0; k < d; k++) sum[k] += xn[b][k];
            if (!block_done) continue;
            int16_t mk[kvd];
            memory_slot(cfg, L.qkv_w, L.qkv_m, L.qkv_s, sum, mk, bv + (int64_t)mpos * hd, hd, (int64_t)n_keys * hd);
            for (int kh = 0; kh < nkv; kh++) put_key(bk + (int64_t)kh * kpad * hd / 2, mpos, hd, mk + kh * hd);
            memset(sum, 0, sizeof(int32_t) * d);
        }

        /* attention per segment and head: integer softmax over window + memory ring */
        for (int b = 0; b < batch; b++) {
            const int32_t *bk = (const int32_t *)(lk + (int64_t)b * nkv * kpad * hd);
            const int16_t *bv = lv + (int64_t)b * nkv * n_keys * hd;
            for (int q = 0; q < nh; q++) {
                int32_t o[hd];
                key_scores(&qkv[b][q * hd], hd, bk + (int64_t)(q / g) * kpad * hd / 2, 0, n_keys, raw);
                attend_raw(hd, raw, bv + (int64_t)(q / g) * n_keys * hd, bias[q], n_keys, L.score_m, L.score_s, cfg,
                           exp_full, o);
                for (int e = 0; e < hd; e++)
                    o8[b][q * hd + e] = (int16_t)clamp32(requant(o[e], L.out_m[q * hd + e], L.out_s[q * hd + e]), -127, 127);
            }
        }
        finish_layer(cfg, L.lp, batch, &o8[0][0], &h[0][0], acc, &xn[0][0], &a[0][0]);
    }
    output(cfg, params, batch, &h[0][0], &xn[0][0], freq);
}

/* One position t for `batch` segments.
 * history [batch][stride] uint8, offsets [batch][n_features], modality/period [batch];
 * keys [layers][batch][nkv][kpad * hd] int16 in blocks of 16 keys (put_key; kpad = n_keys rounded up
 * to KEY_BLOCK, zeros at first), vals [layers][batch][nkv][n_keys][hd] int16; block_sum [layers][batch][d];
 * freq out [batch][256] int32. Returns 0, or -1 for a configuration outside the limits. */
int tzip_step(const int32_t *cfg, void **params, int64_t t, int batch,
              const uint8_t *history, int64_t stride, const int32_t *offsets, const int32_t *modality,
              const int32_t *period, const int16_t *hints, int16_t *keys, int16_t *vals, int32_t *block_sum,
              int32_t *freq) {
    const int d = cfg[TZIP_CFG_D_MODEL], nh = cfg[TZIP_CFG_N_HEADS], nkv = cfg[TZIP_CFG_N_KV_HEADS],
              ff = cfg[TZIP_CFG_D_FF];
    const int n_keys = cfg[TZIP_CFG_WINDOW] + (cfg[TZIP_CFG_USE_MEMORY] ? cfg[TZIP_CFG_RING] : 0),
              nf = cfg[TZIP_CFG_N_FEATURES];
    if (d > MAX_D || ff > MAX_OUT || d + 2 * nkv * (d / nh) > MAX_OUT || n_keys > MAX_KEYS || batch < 1 || d % nh ||
        nh % nkv || (d & (d - 1)))
        return -1;
    const int64_t kpad = (n_keys + KEY_BLOCK - 1) / KEY_BLOCK * KEY_BLOCK, seg_keys = nkv * kpad * (d / nh);
    const int64_t seg_ring = (int64_t)nkv * n_keys * (d / nh), ring_stride = batch * seg_ring;
    const int64_t sum_stride = (int64_t)batch * d;
    for (int b0 = 0; b0 < batch; b0 += CHUNK) {
        const int nb = batch - b0 < CHUNK ? batch - b0 : CHUNK;
        step_chunk(cfg, params, t, nb, history + b0 * stride, stride, offsets + b0 * nf, modality + b0,
                   period + b0, hints ? hints + b0 * TZIP_N_HINTS : NULL, keys + b0 * seg_keys, vals + b0 * seg_ring, block_sum + (int64_t)b0 * d,
                   batch * seg_keys, ring_stride, sum_stride, freq + (int64_t)b0 * 256);
    }
    return 0;
}

#define ROWS 64 /* positions per pass over the weights in the parallel pass */

/* The layers of the parallel pass over buffers tzip_parallel allocated: h [T][d], sums [blocks][d],
 * q [T][d], k and v [nkv][T][hd], mk and mv [nkv][blocks][hd]. */
static void parallel_layers(const int32_t *cfg, void **params, const uint8_t *data, int64_t t0, int64_t T,
                            const int32_t *offsets, int32_t modality, int32_t period, const int16_t *hints,
                            int64_t skip, int32_t *freq,
                            int32_t *h, int32_t *sums, int16_t *q,
                            int16_t *k, int16_t *v, int16_t *mk, int16_t *mv, int32_t *kt, int32_t *mkt,
                            int64_t n_blocks, int64_t nb1) {
    const int d = cfg[TZIP_CFG_D_MODEL], n_layers = cfg[TZIP_CFG_N_LAYERS], nh = cfg[TZIP_CFG_N_HEADS];
    const int nkv = cfg[TZIP_CFG_N_KV_HEADS], ff = cfg[TZIP_CFG_D_FF], w = cfg[TZIP_CFG_WINDOW];
    const int c = cfg[TZIP_CFG_BLOCK], m = cfg[TZIP_CFG_MEM_SLOTS];
    const int use_memory = cfg[TZIP_CFG_USE_MEMORY], norm_shift = cfg[TZIP_CFG_NORM_SHIFT];
    const int hd = d / nh, g = nh / nkv, kvd = nkv * hd, qkv_out = d + 2 * kvd;
    const int widest = qkv_out > ff ? qkv_out : (ff > 256 ? ff : 256);
    const int32_t *exp_full = params[TZIP_PARAM_EXP], *alibi = params[TZIP_PARAM_ALIBI];
    const int64_t tb = (T + KEY_BLOCK - 1) / KEY_BLOCK, mb = (nb1 + KEY_BLOCK - 1) / KEY_BLOCK;  /* key blocks */

    int32_t acc[ROWS * widest], bias[w + m], o[hd], raw[w + m];
    int16_t xn[ROWS * d], a[ROWS * ff], o8[ROWS * d], vbuf[(w + m) * hd];
    for (int64_t t = 0; t < T; t++)
        embed(cfg, params, t0 + t, data, offsets, modality, period, hints ? hints + (t0 + t) * TZIP_N_HINTS : NULL,
              h + t * d);

    for (int l = 0; l < n_layers; l++) {
        const LayerWeights L = layer_weights(params, l);

        /* queries, keys and values of every position; block sums for the memory */
        if (use_memory) memset(sums, 0, sizeof(int32_t) * nb1 * d);
        for (int64_t r0 = 0; r0 < T; r0 += ROWS) {
            const int rows = T - r0 < ROWS ? (int)(T - r0) : ROWS;
            for (int r = 0; r < rows; r++) rmsnorm(h + (r0 + r) * d, d, norm_shift, xn + r * d);
            linear(xn, rows, d, L.qkv_w, L.qkv_p, 0, qkv_out, L.qkv_m, L.qkv_s, acc);
            for (int r = 0; r < rows; r++) {
                const int64_t t = r0 + r;
                const int32_t *row = acc + (int64_t)r * qkv_out;
                for (int i = 0; i < d; i++) q[t * d + i] = (int16_t)clamp32(row[i], -127, 127);
                for (int kh = 0; kh < nkv; kh++)
                    for (int e = 0; e < hd; e++) {
                        k[((int64_t)kh * T + t) * hd + e] = (int16_t)clamp32(row[d + kh * hd + e], -127, 127);
                        v[((int64_t)kh * T + t) * hd + e] = (int16_t)clamp32(row[d + kvd + kh * hd + e], -127, 127);
                    }
                if (t / c < n_blocks)
                    for (int i = 0; i < d; i++) sums[(t / c) * d + i] += xn[r * d + i];
            }
        }
        for (int64_t b = 0; b < n_blocks; b++)
            memory_slot(cfg, L.qkv_w, L.qkv_m, L.qkv_s, sums + b * d, mk + b * hd, mv + b * hd, nb1 * hd, nb1 * hd);
        for (int kh = 0; kh < nkv; kh++) {
            block_keys(k + (int64_t)kh * T * hd, T, hd, kt + (int64_t)kh * tb * (hd / 2) * KEY_BLOCK);
            block_keys(mk + (int64_t)kh * nb1 * hd, nb1, hd, mkt + (int64_t)kh * mb * (hd / 2) * KEY_BLOCK);
        }

        /* attention, then the rest of the layer, ROWS positions at a time */
        for (int64_t r0 = 0; r0 < T; r0 += ROWS) {
            const int rows = T - r0 < ROWS ? (int)(T - r0) : ROWS;
            for (int r = 0; r < rows; r++) {
                const int64_t t = r0 + r, p0 = t - w + 1 > 0 ? t - w + 1 : 0;
                const int nw = (int)(t - p0 + 1);
                const int64_t hi = use_memory && t - w + 1 >= 0 ? (t - w + 1) / c : 0, lo = hi - m > 0 ? hi - m : 0;
                const int nm = (int)(hi - lo);
                for (int kh = 0; kh < nkv; kh++) {
                    memcpy(vbuf, v + ((int64_t)kh * T + p0) * hd, sizeof(int16_t) * nw * hd);
                    memcpy(vbuf + nw * hd, mv + ((int64_t)kh * nb1 + lo) * hd, sizeof(int16_t) * nm * hd);
                    const int32_t *kth = kt + (int64_t)kh * tb * (hd / 2) * KEY_BLOCK;
                    const int32_t *mkth = mkt + (int64_t)kh * mb * (hd / 2) * KEY_BLOCK;
                    for (int qh = kh * g; qh < (kh + 1) * g; qh++) {
                        const int16_t *qv = q + t * d + qh * hd;
                        for (int j = 0; j < nw; j++) bias[j] = (int32_t)(-(int64_t)alibi[qh] * (t - (p0 + j)));
                        for (int j = 0; j < nm; j++)
                            bias[nw + j] = (int32_t)(-(int64_t)alibi[qh] * (t - ((lo + j) * c + c / 2)));
                        key_scores(qv, hd, kth, p0, nw, raw);
                        key_scores(qv, hd, mkth, lo, nm, raw + nw);
                        attend_raw(hd, raw, vbuf, bias, nw + nm, L.score_m, L.score_s, cfg, exp_full, o);
                        for (int e = 0; e < hd; e++)
                            o8[r * d + qh * hd + e] =
                                (int16_t)clamp32(requant(o[e], L.out_m[qh * hd + e], L.out_s[qh * hd + e]), -127, 127);
                    }
                }
            }
            finish_layer(cfg, L.lp, rows, o8, h + r0 * d, acc, xn, a);
        }
    }
    for (int64_t r0 = skip; r0 < T; r0 += ROWS) {
        const int rows = T - r0 < ROWS ? (int)(T - r0) : ROWS;
        output(cfg, params, rows, h + r0 * d, xn, freq + (r0 - skip) * 256);
    }
}

/* Positions t0..t0+T-1 of a segment (data: the whole segment's bytes) computed as if the segment
 * began at t0, their frequencies from position t0 + skip on written to freq. */
typedef struct {
    const int32_t *cfg; void **params; const uint8_t *data; int64_t t0, T, skip;
    const int32_t *offsets; int32_t modality, period; const int16_t *hints; int32_t *freq; int status;
} parallel_chunk;

static void *run_chunk(void *arg) {
    parallel_chunk *ch = arg;
    const int32_t *cfg = ch->cfg;
    const int64_t T = ch->T;
    const int d = cfg[TZIP_CFG_D_MODEL], nh = cfg[TZIP_CFG_N_HEADS], nkv = cfg[TZIP_CFG_N_KV_HEADS];
    const int c = cfg[TZIP_CFG_BLOCK], hd = d / nh;
    const int64_t n_blocks = cfg[TZIP_CFG_USE_MEMORY] ? T / c : 0, nb1 = n_blocks > 0 ? n_blocks : 1;
    int32_t *h = malloc(sizeof(int32_t) * T * d), *sums = calloc(nb1 * d, sizeof(int32_t));
    int16_t *q = malloc(sizeof(int16_t) * T * d), *k = malloc(sizeof(int16_t) * nkv * T * hd);
    int16_t *v = malloc(sizeof(int16_t) * nkv * T * hd), *mk = calloc((size_t)nkv * nb1 * hd, sizeof(int16_t));
    int16_t *mv = malloc(sizeof(int16_t) * nkv * nb1 * hd);
    const int64_t tb = (T + KEY_BLOCK - 1) / KEY_BLOCK, mb = (nb1 + KEY_BLOCK - 1) / KEY_BLOCK;
    int32_t *kt = malloc(sizeof(int32_t) * nkv * tb * (hd / 2) * KEY_BLOCK);
    int32_t *mkt = malloc(sizeof(int32_t) * nkv * mb * (hd / 2) * KEY_BLOCK);
    const int ok = h && sums && q && k && v && mk && mv && kt && mkt;
    if (ok) parallel_layers(cfg, ch->params, ch->data, ch->t0, T, ch->offsets, ch->modality, ch->period, ch->hints, ch->skip,
                            ch->freq, h, sums, q, k, v, mk, mv, kt, mkt, n_blocks, nb1);
    free(h); free(sums); free(q); free(k); free(v); free(mk); free(mv); free(kt); free(mkt);
    ch->status = ok ? 0 : -2;
    return NULL;
}

#define SPLIT_MIN 16384  /* segments shorter than this are not split between threads */

/* Rows row0..row0+rows-1 as a chunk starting `reach` positions (a whole number of memory blocks)
 * earlier, or at the segment's start: from there on every value equals the whole pass's. */
static parallel_chunk rows_chunk(const int32_t *cfg, void **params, const uint8_t *data, const int32_t *offsets,
                                 int32_t modality, int32_t period, const int16_t *hints, int64_t row0, int64_t rows, int64_t reach,
                                 int32_t *freq) {
    const int c = cfg[TZIP_CFG_BLOCK];
    const int64_t t0 = row0 > reach ? (row0 - reach) / c * c : 0;
    parallel_chunk ch = {cfg, params, data, t0, row0 + rows - t0, row0 - t0, offsets, modality, period, hints, freq, 0};
    return ch;
}

/* Teacher-forced pass over one segment of T bytes (compression): freq [rows][256] for positions
 * row0..row0+rows-1 (a caller bounds its memory by asking for a segment's rows in pieces), the
 * same integers as the decode step gives. Layer by layer over all positions;
 * each query attends to exactly its visible keys (window positions, then memory slots), which
 * equals the step's masked ring because a masked key's weight is exactly 0.
 * With threads = 2 the second half runs on a second thread, started `reach` positions early
 * (a whole number of memory blocks): a position sees at most w - 1 + c + m*c positions back per
 * layer (window, the block in progress, the memory slots), so from there on every value equals
 * the one-thread pass (tests pin it), and the positions before are computed and dropped.
 * Returns 0, -1 for a configuration outside the limits, -2 when memory runs out. */
int tzip_parallel_rows(const int32_t *cfg, void **params, const uint8_t *data, int64_t T, const int32_t *offsets,
                       int32_t modality, int32_t period, const int16_t *hints, int64_t row0, int64_t rows, int32_t *freq, int32_t threads) {
    const int d = cfg[TZIP_CFG_D_MODEL], nh = cfg[TZIP_CFG_N_HEADS], nkv = cfg[TZIP_CFG_N_KV_HEADS];
    const int ff = cfg[TZIP_CFG_D_FF], w = cfg[TZIP_CFG_WINDOW], c = cfg[TZIP_CFG_BLOCK], m = cfg[TZIP_CFG_MEM_SLOTS];
    if (d > MAX_D || ff > MAX_OUT || d + 2 * nkv * (d / nh) > MAX_OUT || w + m > MAX_KEYS || d % nh || nh % nkv ||
        (d & (d - 1)))
        return -1;
    if (row0 < 0 || rows < 0 || row0 + rows > T) return -1;
    if (rows == 0) return 0;
    const int64_t per_layer = w - 1 + c + (cfg[TZIP_CFG_USE_MEMORY] ? (int64_t)m * c : 0);
    const int64_t reach = (cfg[TZIP_CFG_N_LAYERS] * per_layer / c + 2) * c;
    const int64_t half = rows / 2 / c * c;
    parallel_chunk whole = rows_chunk(cfg, params, data, offsets, modality, period, hints, row0, rows, reach, freq);
    if (threads < 2 || rows < SPLIT_MIN || half <= reach) {
        run_chunk(&whole);
        return whole.status;
    }
    parallel_chunk first = rows_chunk(cfg, params, data, offsets, modality, period, hints, row0, half, reach, freq);
    parallel_chunk second = rows_chunk(cfg, params, data, offsets, modality, period, hints, row0 + half, rows - half, reach,
                                       freq + half * 256);
    pthread_t other;
    if (pthread_create(&other, NULL, run_chunk, &second) != 0) {
        run_chunk(&whole);
        return whole.status;
    }
    run_chunk(&first);
    pthread_join(other, NULL);
    return first.status ? first.status : second.status;
}

int tzip_parallel(const int32_t *cfg, void **params, const uint8_t *data, int64_t T, const int32_t *offsets,
                  int32_t modality, int32_t period, const int16_t *hints, int32_t *freq, int32_t threads) {
    return tzip_parallel_rows(cfg, params, data, T, offsets, modality, period, hints, 0, T, freq, threads);
}
