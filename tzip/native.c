/* The integer engine in C: the decode step (tzip_step) and the teacher-forced parallel pass
 * over a segment (tzip_parallel), giving exactly the integers of the PyTorch engine
 * (engine.Decoder.step and IntModel.parallel) without thousands of interpreter round trips.
 *
 * Every value is an integer and every operation is exact: products of int8 values summed in
 * int32 (at most fan_in * 127^2, far below 2^31), requantisation in int64 (the export bounds it
 * to int32 anyway), so vectorisation, summation order and threads cannot change a result. The
 * only float operation that rounds is the RMSNorm square root, done as engine.rmsnorm does it (IEEE sqrt of an integer
 * below 2^52, then floor). tests/test_native.py pins both entry points bit for bit against the
 * PyTorch engine, for this file built with and without CPU tuning.
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

enum {
    C_D, C_LAYERS, C_HEADS, C_KV_HEADS, C_FF, C_WINDOW, C_BLOCK, C_SLOTS, C_RING, C_USE_MEMORY,
    C_N_FEATURES, C_PHASES, C_U_MAX, C_PROB_BITS, C_EXP_BITS, C_FREQ_BITS, C_NORM_SHIFT,
    C_RES_LIMIT, C_MASKED, C_COUNT
};

enum { P_FEATURES, P_PHASE, P_EXP, P_ALIBI, P_HEAD_W, P_HEAD_M, P_HEAD_S, P_HEAD_P, P_LAYER0 };
enum { L_QKV_W, L_QKV_M, L_QKV_S, L_QKV_P, L_PROJ_W, L_PROJ_M, L_PROJ_S, L_PROJ_P, L_UP_W, L_UP_M, L_UP_S,
       L_UP_P, L_DOWN_W, L_DOWN_M, L_DOWN_S, L_DOWN_P, L_SCORE_M, L_SCORE_S, L_OUT_M, L_OUT_S, L_COUNT };

#define MAX_D 1024
#define MAX_OUT 2048 /* widest layer (d_ff or the qkv projection): bounds the stack scratch */
#define MAX_KEYS 4096

static inline int32_t clamp32(int64_t v, int64_t lo, int64_t hi) {
    return (int32_t)(v < lo ? lo : (v > hi ? hi : v));
}

static inline int32_t requant(int64_t acc, int32_t mult, int32_t shift) {
    return (int32_t)((acc * mult + ((int64_t)1 << (shift - 1))) >> shift);
}

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
    void **lp = params + P_LAYER0 + l * L_COUNT;
    LayerWeights L = {lp, lp[L_QKV_W], lp[L_QKV_P], lp[L_QKV_M], lp[L_QKV_S], lp[L_OUT_M], lp[L_OUT_S],
                      ((int32_t *)lp[L_SCORE_M])[0], ((int32_t *)lp[L_SCORE_S])[0]};
    return L;
}

/* A finished memory block: pooled = floor((sum + c/2) / c), then its key and value rows
 * (the qkv projection's key/value part) into k[kh * kv_stride + e] and v likewise. */
static void memory_slot(const int32_t *cfg, const int16_t *qkv_w, const int32_t *qkv_m, const int32_t *qkv_s,
                        const int32_t *sum, int16_t *k, int16_t *v, int64_t k_stride, int64_t v_stride) {
    const int d = cfg[C_D], c = cfg[C_BLOCK], hd = d / cfg[C_HEADS], nkv = cfg[C_KV_HEADS], kvd = nkv * hd;
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

/* engine.embed for one position: the phase row plus one table row per feature byte. */
static void embed(const int32_t *cfg, void **params, int64_t t, const uint8_t *bytes, const int32_t *offsets,
                  int modality, int period, int32_t *h) {
    const int d = cfg[C_D], nf = cfg[C_N_FEATURES];
    const int64_t res_limit = cfg[C_RES_LIMIT];
    const int32_t *features = params[P_FEATURES];
    const int32_t *row = (const int32_t *)params[P_PHASE] + (int64_t)(modality * cfg[C_PHASES] + floor_mod(t, period)) * d;
    for (int k = 0; k < d; k++) h[k] = row[k];
    for (int s = 0; s < nf; s++) {
        int64_t off = offsets[s], src = t - off;
        int f = (off > 0 && src >= 0) ? bytes[src] : 256;
        const int32_t *e = features + ((int64_t)s * 257 + f) * d;
        for (int k = 0; k < d; k++) h[k] += e[k];
    }
    for (int k = 0; k < d; k++) h[k] = clamp32(h[k], -res_limit, res_limit);
}

/* One query head's o[hd], the int32 attention accumulator, from its raw scores against n_keys keys. */
static void attend_raw(int hd, const int32_t *raw, const int16_t *v, const int32_t *bias, int n_keys,
                       int32_t score_m, int32_t score_s, const int32_t *cfg, const int32_t *exp_full, int32_t *o) {
    const int u_max = cfg[C_U_MAX], prob_bits = cfg[C_PROB_BITS];
    switch (hd) {
    case 32: attend_raw_32(raw, v, bias, n_keys, score_m, score_s, exp_full, u_max, prob_bits, o); break;
    case 64: attend_raw_64(raw, v, bias, n_keys, score_m, score_s, exp_full, u_max, prob_bits, o); break;
    default: attend_raw_n(raw, v, bias, n_keys, score_m, score_s, exp_full, u_max, prob_bits, o, hd);
    }
}

#define KEY_BLOCK 16
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
    const int d = cfg[C_D], ff = cfg[C_FF], norm_shift = cfg[C_NORM_SHIFT];
    const int64_t res_limit = cfg[C_RES_LIMIT];
    linear(o8, rows, d, lp[L_PROJ_W], lp[L_PROJ_P], 0, d, lp[L_PROJ_M], lp[L_PROJ_S], acc);
    for (int64_t i = 0; i < (int64_t)rows * d; i++) h[i] = clamp32((int64_t)h[i] + acc[i], -res_limit, res_limit);
    for (int b = 0; b < rows; b++) rmsnorm(h + (int64_t)b * d, d, norm_shift, xn + (int64_t)b * d);
    linear(xn, rows, d, lp[L_UP_W], lp[L_UP_P], 0, ff, lp[L_UP_M], lp[L_UP_S], acc);
    for (int64_t i = 0; i < (int64_t)rows * ff; i++) a[i] = (int16_t)clamp32(acc[i], 0, 127);
    linear(a, rows, ff, lp[L_DOWN_W], lp[L_DOWN_P], 0, d, lp[L_DOWN_M], lp[L_DOWN_S], acc);
    for (int64_t i = 0; i < (int64_t)rows * d; i++) h[i] = clamp32((int64_t)h[i] + acc[i], -res_limit, res_limit);
}

/* Final norm and head over `rows` rows, then logits -> frequencies (each >= 1, summing to
 * 2^freq_bits, the deficit to the first maximum as torch.argmax). */
static void output(const int32_t *cfg, void **params, int rows, const int32_t *h, int16_t *xn, int32_t *freq) {
    const int d = cfg[C_D], u_max = cfg[C_U_MAX], exp_bits = cfg[C_EXP_BITS], freq_bits = cfg[C_FREQ_BITS];
    const int32_t *exp_full = params[P_EXP];
    for (int b = 0; b < rows; b++) rmsnorm(h + (int64_t)b * d, d, cfg[C_NORM_SHIFT], xn + (int64_t)b * d);
    linear(xn, rows, d, params[P_HEAD_W], params[P_HEAD_P], 0, 256, params[P_HEAD_M], params[P_HEAD_S], freq);
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
                       const int32_t *period, int16_t *keys, int16_t *vals, int32_t *block_sum, int64_t key_stride,
                       int64_t ring_stride, int64_t sum_stride, int32_t *freq) {
    const int d = cfg[C_D], n_layers = cfg[C_LAYERS], nh = cfg[C_HEADS], nkv = cfg[C_KV_HEADS];
    const int ff = cfg[C_FF], w = cfg[C_WINDOW], c = cfg[C_BLOCK], m = cfg[C_SLOTS], ring = cfg[C_RING];
    const int use_memory = cfg[C_USE_MEMORY], nf = cfg[C_N_FEATURES], norm_shift = cfg[C_NORM_SHIFT];
    const int64_t masked = cfg[C_MASKED];
    const int hd = d / nh, g = nh / nkv, kvd = nkv * hd, qkv_out = d + 2 * kvd;
    const int n_keys = w + (use_memory ? ring : 0), kpad = (n_keys + KEY_BLOCK - 1) / KEY_BLOCK * KEY_BLOCK;
    const int32_t *exp_full = params[P_EXP], *alibi = params[P_ALIBI];

    int32_t h[batch][d], acc[batch * (qkv_out > ff ? qkv_out : ff)], raw[n_keys];
    int16_t xn[batch][d], o8[batch][d], a[batch][ff], qkv[batch][qkv_out];
    int32_t bias[nh][n_keys];

    for (int b = 0; b < batch; b++)
        embed(cfg, params, t, history + b * stride, offsets + b * nf, modality[b], period[b], h[b]);

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
              const int32_t *period, int16_t *keys, int16_t *vals, int32_t *block_sum, int32_t *freq) {
    const int d = cfg[C_D], nh = cfg[C_HEADS], nkv = cfg[C_KV_HEADS], ff = cfg[C_FF];
    const int n_keys = cfg[C_WINDOW] + (cfg[C_USE_MEMORY] ? cfg[C_RING] : 0), nf = cfg[C_N_FEATURES];
    if (d > MAX_D || ff > MAX_OUT || d + 2 * nkv * (d / nh) > MAX_OUT || n_keys > MAX_KEYS || batch < 1 || d % nh ||
        nh % nkv || (d & (d - 1)))
        return -1;
    const int64_t kpad = (n_keys + KEY_BLOCK - 1) / KEY_BLOCK * KEY_BLOCK, seg_keys = nkv * kpad * (d / nh);
    const int64_t seg_ring = (int64_t)nkv * n_keys * (d / nh), ring_stride = batch * seg_ring;
    const int64_t sum_stride = (int64_t)batch * d;
    for (int b0 = 0; b0 < batch; b0 += CHUNK) {
        const int nb = batch - b0 < CHUNK ? batch - b0 : CHUNK;
        step_chunk(cfg, params, t, nb, history + b0 * stride, stride, offsets + b0 * nf, modality + b0,
                   period + b0, keys + b0 * seg_keys, vals + b0 * seg_ring, block_sum + (int64_t)b0 * d,
                   batch * seg_keys, ring_stride, sum_stride, freq + (int64_t)b0 * 256);
    }
    return 0;
}

#define ROWS 64 /* positions per pass over the weights in the parallel pass */

/* The layers of the parallel pass over buffers tzip_parallel allocated: h [T][d], sums [blocks][d],
 * q [T][d], k and v [nkv][T][hd], mk and mv [nkv][blocks][hd]. */
static void parallel_layers(const int32_t *cfg, void **params, const uint8_t *data, int64_t t0, int64_t T,
                            const int32_t *offsets, int32_t modality, int32_t period, int64_t skip, int32_t *freq,
                            int32_t *h, int32_t *sums, int16_t *q,
                            int16_t *k, int16_t *v, int16_t *mk, int16_t *mv, int32_t *kt, int32_t *mkt,
                            int64_t n_blocks, int64_t nb1) {
    const int d = cfg[C_D], n_layers = cfg[C_LAYERS], nh = cfg[C_HEADS], nkv = cfg[C_KV_HEADS];
    const int ff = cfg[C_FF], w = cfg[C_WINDOW], c = cfg[C_BLOCK], m = cfg[C_SLOTS];
    const int use_memory = cfg[C_USE_MEMORY], norm_shift = cfg[C_NORM_SHIFT];
    const int hd = d / nh, g = nh / nkv, kvd = nkv * hd, qkv_out = d + 2 * kvd;
    const int widest = qkv_out > ff ? qkv_out : (ff > 256 ? ff : 256);
    const int32_t *exp_full = params[P_EXP], *alibi = params[P_ALIBI];
    const int64_t tb = (T + KEY_BLOCK - 1) / KEY_BLOCK, mb = (nb1 + KEY_BLOCK - 1) / KEY_BLOCK;  /* key blocks */

    int32_t acc[ROWS * widest], bias[w + m], o[hd], raw[w + m];
    int16_t xn[ROWS * d], a[ROWS * ff], o8[ROWS * d], vbuf[(w + m) * hd];
    for (int64_t t = 0; t < T; t++) embed(cfg, params, t0 + t, data, offsets, modality, period, h + t * d);

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

/* Teacher-forced pass over one segment of T bytes (compression): freq [T][256] for every
 * position, the same integers as the decode step gives. Layer by layer over all positions;
 * each query attends to exactly its visible keys (window positions, then memory slots), which
 * equals the step's masked ring because a masked key's weight is exactly 0.
 * Returns 0, -1 for a configuration outside the limits, -2 when memory runs out. */
/* Positions t0..t0+T-1 of a segment (data: the whole segment's bytes) computed as if the segment
 * began at t0, their frequencies from position t0 + skip on written to freq. */
typedef struct {
    const int32_t *cfg; void **params; const uint8_t *data; int64_t t0, T, skip;
    const int32_t *offsets; int32_t modality, period; int32_t *freq; int status;
} parallel_chunk;

static void *run_chunk(void *arg) {
    parallel_chunk *ch = arg;
    const int32_t *cfg = ch->cfg;
    const int64_t T = ch->T;
    const int d = cfg[C_D], nh = cfg[C_HEADS], nkv = cfg[C_KV_HEADS], c = cfg[C_BLOCK], hd = d / nh;
    const int64_t n_blocks = cfg[C_USE_MEMORY] ? T / c : 0, nb1 = n_blocks > 0 ? n_blocks : 1;
    int32_t *h = malloc(sizeof(int32_t) * T * d), *sums = calloc(nb1 * d, sizeof(int32_t));
    int16_t *q = malloc(sizeof(int16_t) * T * d), *k = malloc(sizeof(int16_t) * nkv * T * hd);
    int16_t *v = malloc(sizeof(int16_t) * nkv * T * hd), *mk = calloc((size_t)nkv * nb1 * hd, sizeof(int16_t));
    int16_t *mv = malloc(sizeof(int16_t) * nkv * nb1 * hd);
    const int64_t tb = (T + KEY_BLOCK - 1) / KEY_BLOCK, mb = (nb1 + KEY_BLOCK - 1) / KEY_BLOCK;
    int32_t *kt = malloc(sizeof(int32_t) * nkv * tb * (hd / 2) * KEY_BLOCK);
    int32_t *mkt = malloc(sizeof(int32_t) * nkv * mb * (hd / 2) * KEY_BLOCK);
    const int ok = h && sums && q && k && v && mk && mv && kt && mkt;
    if (ok) parallel_layers(cfg, ch->params, ch->data, ch->t0, T, ch->offsets, ch->modality, ch->period, ch->skip,
                            ch->freq, h, sums, q, k, v, mk, mv, kt, mkt, n_blocks, nb1);
    free(h); free(sums); free(q); free(k); free(v); free(mk); free(mv); free(kt); free(mkt);
    ch->status = ok ? 0 : -2;
    return NULL;
}

#define SPLIT_MIN 16384  /* segments shorter than this are not split between threads */

/* Teacher-forced pass over one segment of T bytes (compression): freq [T][256] for every
 * position, the same integers as the decode step gives. Layer by layer over all positions;
 * each query attends to exactly its visible keys (window positions, then memory slots), which
 * equals the step's masked ring because a masked key's weight is exactly 0.
 * With threads = 2 the second half runs on a second thread, started `reach` positions early
 * (a whole number of memory blocks): a position sees at most w - 1 + c + m*c positions back per
 * layer (window, the block in progress, the memory slots), so from there on every value equals
 * the one-thread pass (tests pin it), and the positions before are computed and dropped.
 * Returns 0, -1 for a configuration outside the limits, -2 when memory runs out. */
int tzip_parallel(const int32_t *cfg, void **params, const uint8_t *data, int64_t T, const int32_t *offsets,
                  int32_t modality, int32_t period, int32_t *freq, int32_t threads) {
    const int d = cfg[C_D], nh = cfg[C_HEADS], nkv = cfg[C_KV_HEADS], ff = cfg[C_FF];
    const int w = cfg[C_WINDOW], c = cfg[C_BLOCK], m = cfg[C_SLOTS];
    if (d > MAX_D || ff > MAX_OUT || d + 2 * nkv * (d / nh) > MAX_OUT || w + m > MAX_KEYS || d % nh || nh % nkv ||
        (d & (d - 1)))
        return -1;
    if (T <= 0) return 0;
    const int64_t per_layer = w - 1 + c + (cfg[C_USE_MEMORY] ? (int64_t)m * c : 0);
    const int64_t reach = (cfg[C_LAYERS] * per_layer / c + 2) * c;
    const int64_t half = T / 2 / c * c;
    parallel_chunk whole = {cfg, params, data, 0, T, 0, offsets, modality, period, freq, 0};
    if (threads < 2 || T < SPLIT_MIN || half <= reach) {
        run_chunk(&whole);
        return whole.status;
    }
    parallel_chunk first = whole, second = whole;
    first.T = half;
    second.t0 = half - reach; second.T = T - second.t0; second.skip = reach; second.freq = freq + half * 256;
    pthread_t other;
    if (pthread_create(&other, NULL, run_chunk, &second) != 0) {
        run_chunk(&whole);
        return whole.status;
    }
    run_chunk(&first);
    pthread_join(other, NULL);
    return first.status ? first.status : second.status;
}

/* ---- The match model (tzip/match.py is the reference; the same integers) ----------------------- */

#define MATCH_MIN 4
#define MATCH_HASH_BITS 16
#define MATCH_RATE 4
#define MATCH_LENS 24
#define MATCH_PROBS 16
#define MATCH_ONE 65536
#define MATCH_Q_MIN 256
enum { MS_PTR, MS_LEN, MS_PRED, MS_CELL, MS_Q };
#define MS_TABLE (MS_Q + MATCH_LENS * MATCH_PROBS)
#define MS_SIZE (MS_TABLE + (1 << MATCH_HASH_BITS))

static inline int match_len_cell(int32_t n) {
    return n < 16 ? n : (16 + (n - 16) / 16 < MATCH_LENS - 1 ? 16 + (n - 16) / 16 : MATCH_LENS - 1);
}

static inline int bit_length(uint32_t v) {
    int n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

static void match_predict(int32_t *s, const uint8_t *hist, int32_t *f) {
    if (s[MS_LEN] == 0) { s[MS_PRED] = -1; return; }
    int pred = hist[s[MS_PTR]];
    int64_t fb = f[pred];
    int cell = match_len_cell(s[MS_LEN]) * MATCH_PROBS + bit_length((uint32_t)fb) - 1;
    int64_t q = s[MS_Q + cell];
    q = q < MATCH_Q_MIN ? MATCH_Q_MIN : (q > MATCH_ONE - MATCH_Q_MIN ? MATCH_ONE - MATCH_Q_MIN : q);
    s[MS_PRED] = pred;
    s[MS_CELL] = cell;
    int64_t scale = (MATCH_ONE - q) * (((int64_t)1 << 32) / (MATCH_ONE - fb)), sum = 0;
    for (int x = 0; x < 256; x++) {
        int64_t v = ((int64_t)f[x] * scale) >> 32;
        f[x] = (int32_t)(v < 1 ? 1 : v);
        sum += f[x];
    }
    f[pred] = (int32_t)(MATCH_ONE - (sum - f[pred]));
}

static void match_update(int32_t *s, const uint8_t *hist, int64_t t) {
    int sym = hist[t];
    if (s[MS_PRED] >= 0) {
        int32_t *q = &s[MS_Q + s[MS_CELL]];
        *q = sym == s[MS_PRED] ? *q + ((MATCH_ONE - *q) >> MATCH_RATE) : *q - (*q >> MATCH_RATE);
    }
    if (s[MS_LEN] > 0 && hist[s[MS_PTR]] == sym) { s[MS_LEN]++; s[MS_PTR]++; }
    else s[MS_LEN] = 0;
    if (t + 1 >= MATCH_MIN) {
        uint32_t c = ((uint32_t)hist[t - 3] << 24) | ((uint32_t)hist[t - 2] << 16) | ((uint32_t)hist[t - 1] << 8) | hist[t];
        int32_t *slot = &s[MS_TABLE + ((uint32_t)(c * 2654435761u) >> (32 - MATCH_HASH_BITS))];
        int32_t cand = *slot;
        if (s[MS_LEN] == 0 && cand && memcmp(hist + cand - MATCH_MIN, hist + t + 1 - MATCH_MIN, MATCH_MIN) == 0) {
            s[MS_PTR] = cand;
            s[MS_LEN] = 1;
        }
        *slot = (int32_t)(t + 1);
    }
}

static void match_init(int32_t *s) {
    memset(s, 0, sizeof(int32_t) * MS_SIZE);
    s[MS_PRED] = -1;
    for (int l = 0; l < MATCH_LENS; l++)
        for (int p = 0; p < MATCH_PROBS; p++) s[MS_Q + l * MATCH_PROBS + p] = 3 << p >> 1;
}

/* A whole segment (compression): freqs [n][256] rescaled in place. */
int tzip_match_scan(const uint8_t *sym, int64_t n, int32_t *freqs) {
    int32_t *s = malloc(sizeof(int32_t) * MS_SIZE);
    if (!s) return -2;
    match_init(s);
    for (int64_t t = 0; t < n; t++) {
        match_predict(s, sym, freqs + t * 256);
        match_update(s, sym, t);
    }
    free(s);
    return 0;
}

/* One decode step of a batch: states [b][MS_SIZE], history [b][stride], freqs [b][256]. */
void tzip_match_predict(int32_t *states, int64_t b, const uint8_t *hist, int64_t stride, const uint8_t *use,
                        int32_t *freqs) {
    for (int64_t i = 0; i < b; i++)
        if (use[i]) match_predict(states + i * MS_SIZE, hist + i * stride, freqs + i * 256);
}

void tzip_match_update(int32_t *states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t, const uint8_t *use) {
    for (int64_t i = 0; i < b; i++)
        if (use[i]) match_update(states + i * MS_SIZE, hist + i * stride, t);
}

int64_t tzip_match_state_size(void) { return MS_SIZE; }

/* ---- The context-count model (tzip/counts.py is the reference; the same integers) --------------- */

#define COUNT_MAX_ORDERS 8
#define COUNT_N_CELLS 10
#define COUNT_D_CELLS 6
#define COUNT_LIMIT 255
static const int32_t count_n_edges[COUNT_N_CELLS] = {1, 2, 3, 4, 6, 9, 16, 32, 64, 128};
static const int32_t count_d_edges[COUNT_D_CELLS] = {1, 2, 3, 4, 8, 16};

typedef struct {
    int64_t cap, contexts;       /* hash slots (a power of two, at most half used) and contexts in them */
    uint64_t *key;               /* the context's bytes */
    int32_t *head, *total;       /* first successor node, sum of its counts (0 = empty slot) */
    int32_t *distinct;           /* successors whose count is not zero */
    int64_t nodes, node_cap;     /* successor nodes: next node (-1 = end), byte, count */
    int32_t *next;
    uint8_t *sym;
    int32_t *count;
} count_table;

typedef struct {
    int orders;
    int order[COUNT_MAX_ORDERS];
    int32_t beta[COUNT_MAX_ORDERS][COUNT_N_CELLS][COUNT_D_CELLS];
    count_table t[COUNT_MAX_ORDERS];
} count_state;

static void count_table_free(count_table *c) {
    free(c->key); free(c->head); free(c->total); free(c->distinct); free(c->next); free(c->sym); free(c->count);
}

void tzip_counts_free(count_state *s) {
    if (!s) return;
    for (int k = 0; k < s->orders; k++) count_table_free(&s->t[k]);
    free(s);
}

static int count_table_alloc(count_table *c, int64_t cap) {
    c->cap = cap;
    c->key = malloc(cap * sizeof(uint64_t));
    c->head = malloc(cap * sizeof(int32_t));
    c->total = calloc(cap, sizeof(int32_t));
    c->distinct = malloc(cap * sizeof(int32_t));
    return c->key && c->head && c->total && c->distinct ? 0 : -2;
}

/* orders[k] context bytes per table; beta [orders][COUNT_N_CELLS][COUNT_D_CELLS]. Tables grow as
   contexts appear, so a state costs what its segment has taught it, not its maximum. */
count_state *tzip_counts_new(int32_t orders, const int32_t *order, const int32_t *beta) {
    if (orders < 1 || orders > COUNT_MAX_ORDERS) return NULL;
    count_state *s = calloc(1, sizeof(count_state));
    if (!s) return NULL;
    s->orders = orders;
    memcpy(s->beta, beta, (size_t)orders * sizeof(s->beta[0]));
    for (int k = 0; k < orders; k++) {
        count_table *c = &s->t[k];
        s->order[k] = order[k];
        c->node_cap = 256;
        c->next = malloc(c->node_cap * sizeof(int32_t));
        c->sym = malloc(c->node_cap);
        c->count = malloc(c->node_cap * sizeof(int32_t));
        if (count_table_alloc(c, 256) || !c->next || !c->sym || !c->count) { tzip_counts_free(s); return NULL; }
    }
    return s;
}

static inline uint64_t count_context(const uint8_t *hist, int64_t t, int k) {
    uint64_t v = 0;
    for (int i = 1; i <= k; i++) v = (v << 8) | hist[t - i];
    return v;
}

/* The slot of a context: found, or the empty one where it would go (-1 - slot). */
static inline int64_t count_slot(const count_table *c, uint64_t v) {
    uint64_t i = (v * 0x9E3779B97F4A7C15ull) >> 20;
    for (;; i++) {
        int64_t j = (int64_t)(i & (uint64_t)(c->cap - 1));
        if (c->total[j] == 0) return -1 - j; /* a used slot's total stays >= 1, even after halving */
        if (c->key[j] == v) return j;
    }
}

/* Twice the slots, every context moved to its new slot (statistics are exact, so the integers
   predicted do not depend on where a context lives). */
static int count_grow(count_table *c) {
    count_table old = *c;
    if (count_table_alloc(c, old.cap * 2)) {
        free(c->key); free(c->head); free(c->total); free(c->distinct);
        c->key = old.key; c->head = old.head; c->total = old.total; c->distinct = old.distinct; c->cap = old.cap;
        return -2;
    }
    for (int64_t j = 0; j < old.cap; j++) {
        if (!old.total[j]) continue;
        int64_t i = -1 - count_slot(c, old.key[j]);
        c->key[i] = old.key[j]; c->head[i] = old.head[j]; c->total[i] = old.total[j]; c->distinct[i] = old.distinct[j];
    }
    free(old.key); free(old.head); free(old.total); free(old.distinct);
    return 0;
}

static int count_grow_nodes(count_table *c) {
    int64_t cap = c->node_cap * 2;
    int32_t *next = realloc(c->next, cap * sizeof(int32_t));
    if (next) c->next = next;
    uint8_t *sym = realloc(c->sym, cap);
    if (sym) c->sym = sym;
    int32_t *count = realloc(c->count, cap * sizeof(int32_t));
    if (count) c->count = count;
    if (!next || !sym || !count) return -2;
    c->node_cap = cap;
    return 0;
}

static inline int count_cell(int32_t v, const int32_t *edges, int cells) {
    int i = 0;
    while (i + 1 < cells && v >= edges[i + 1]) i++;
    return i;
}

static void counts_predict(count_state *s, const uint8_t *hist, int64_t t, int32_t *f) {
    int64_t q[256];
    for (int k = 0; k < s->orders; k++) {
        int order = s->order[k];
        if (t < order) continue;
        count_table *c = &s->t[k];
        int64_t j = count_slot(c, count_context(hist, t, order));
        if (j < 0 || c->total[j] == 0) continue;
        int64_t beta = s->beta[k][count_cell(c->total[j], count_n_edges, COUNT_N_CELLS)]
                              [count_cell(c->distinct[j], count_d_edges, COUNT_D_CELLS)];
        int64_t r = ((int64_t)1 << 32) / (c->total[j] + beta);
        for (int x = 0; x < 256; x++) q[x] = (beta * f[x] * r) >> 32;
        for (int32_t n = c->head[j]; n >= 0; n = c->next[n]) {
            int x = c->sym[n];
            q[x] = ((((int64_t)c->count[n]) << 16) + beta * f[x]) * r >> 32;
        }
        int64_t sum = 0, top = 0;
        for (int x = 0; x < 256; x++) {
            q[x] = q[x] < 1 ? 1 : q[x];
            sum += q[x];
            top = q[x] > top ? q[x] : top;
        }
        int best = 0;
        while (q[best] != top) best++;
        q[best] += 65536 - sum;
        for (int x = 0; x < 256; x++) f[x] = (int32_t)q[x];
    }
}

static int counts_update(count_state *s, const uint8_t *hist, int64_t t) {
    int sym = hist[t];
    for (int k = 0; k < s->orders; k++) {
        int order = s->order[k];
        if (t < order) continue;
        count_table *c = &s->t[k];
        uint64_t v = count_context(hist, t, order);
        int64_t j = count_slot(c, v);
        if (j < 0) {
            if (2 * (c->contexts + 1) > c->cap) {
                if (count_grow(c)) return -2;
                j = count_slot(c, v);
            }
            j = -1 - j;
            c->key[j] = v;
            c->head[j] = -1;
            c->total[j] = 0;
            c->distinct[j] = 0;
            c->contexts++;
        }
        int32_t n = c->head[j];
        while (n >= 0 && c->sym[n] != sym) n = c->next[n];
        if (n < 0) {
            if (c->nodes == c->node_cap && count_grow_nodes(c)) return -2;
            n = (int32_t)c->nodes++;
            c->sym[n] = (uint8_t)sym;
            c->count[n] = 0;
            c->next[n] = c->head[j];
            c->head[j] = n;
        }
        if (c->count[n]++ == 0) c->distinct[j]++;
        c->total[j]++;
        if (c->count[n] >= COUNT_LIMIT) {
            c->total[j] = c->distinct[j] = 0;
            for (int32_t m = c->head[j]; m >= 0; m = c->next[m]) {
                c->count[m] >>= 1;
                c->total[j] += c->count[m];
                c->distinct[j] += c->count[m] > 0;
            }
        }
    }
    return 0;
}

int tzip_counts_scan(int32_t orders, const int32_t *order, const int32_t *beta, const uint8_t *sym, int64_t n,
                     int32_t *freqs) {
    count_state *s = tzip_counts_new(orders, order, beta);
    if (!s) return -2;
    for (int64_t t = 0; t < n; t++) {
        counts_predict(s, sym, t, freqs + t * 256);
        if (counts_update(s, sym, t)) { tzip_counts_free(s); return -2; }
    }
    tzip_counts_free(s);
    return 0;
}

void tzip_counts_predict(count_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                         const uint8_t *use, int32_t *freqs) {
    for (int64_t i = 0; i < b; i++)
        if (use[i]) counts_predict(states[i], hist + i * stride, t, freqs + i * 256);
}

int tzip_counts_update(count_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                       const uint8_t *use) {
    for (int64_t i = 0; i < b; i++)
        if (use[i] && counts_update(states[i], hist + i * stride, t)) return -2;
    return 0;
}

/* A whole segment through stage NAME's new state s (NULL: out of memory), as compression runs it. */
#define SCAN_WITH(NAME, s)                                                                         \
    if (!s) return -2;                                                                             \
    for (int64_t t = 0; t < n; t++) {                                                              \
        NAME##_predict(s, sym, t, freqs + t * 256);                                                \
        NAME##_update(s, sym, t);                                                                  \
    }                                                                                              \
    tzip_##NAME##_free(s);                                                                         \
    return 0;

/* A decode batch's entry points for a stage NAME with state type STATE: predict rewrites the
   frequencies of, and update learns for, the segments `use` flags. */
#define BATCH_STEPS(NAME, STATE)                                                                   \
    void tzip_##NAME##_predict(STATE **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t, \
                               const uint8_t *use, int32_t *freqs) {                             \
        for (int64_t i = 0; i < b; i++)                                                            \
            if (use[i]) NAME##_predict(states[i], hist + i * stride, t, freqs + i * 256);         \
    }                                                                                              \
    void tzip_##NAME##_update(STATE **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t, \
                              const uint8_t *use) {                                              \
        for (int64_t i = 0; i < b; i++)                                                            \
            if (use[i]) NAME##_update(states[i], hist + i * stride, t);                            \
    }

/* ---- The pixel model (tzip/pixels.py is the reference; the same integers) ----------------------- */

#define PX_SUB 16
#define PX_CELLS 16
#define PX_SPATIAL 10
#define PX_PRED_OFFSET 8192 /* pixels.PRED_OFFSET: every blended numerator is non-negative */
#define PX_CHANNEL_SETS 4
#define PX_HALVE_AT 256
#define PX_CDF_STEPS 32
#define PX_CDF_RANGE 12
#define PX_CDF_LEN (2 * PX_CDF_RANGE * PX_CDF_STEPS + 1)
#define PX_CDF_ONE ((1 << 16) - 256)
#define PX_MIX_MAX (4 << 16)
#define PX_MIX_RATE 7
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

typedef struct {
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
    int64_t P[PX_SUB], pred, base[PX_EXPERTS], mu[PX_EXPERTS];  /* between predict and update */
    int c[PX_EXPERTS];
    int32_t q[PX_EXPERTS][256], out[256], costs[PX_EXPERTS + 1][256];
} pixel_state;

static inline int64_t floor_div64(int64_t a, int64_t b) {  /* b > 0 */
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
static inline int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

/* The logistic CDF (pixels.cdf_at) at num0 + i*step for i < n, over den: quotient and remainder
 * are stepped, not divided, and the fraction scaled by a 32-bit reciprocal. */
static void cdf_steps(const int32_t *cdf, int64_t num0, int64_t step, int64_t den, int n, int64_t *out) {
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
static void normalise(const int64_t *p, int32_t *out) {
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
static void mix_inputs(const int32_t *cost, const int32_t *exp2, int n, const int64_t *w, const int32_t *const *in,
                       int32_t (*costs)[256], int32_t *out) {
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
static void mixing_steps(const int32_t *out, int n, int32_t (*costs)[256], int sym, int64_t *steps) {
    for (int i = 0; i < n; i++) {
        int64_t expected = 0;
        for (int u = 0; u < 256; u++) expected += (int64_t)out[u] * costs[i][u];
        expected >>= 16;
        steps[i] = floor_div64((expected - costs[i][sym]) * 64, 1 << PX_MIX_RATE);
    }
}

/* pixels.learn: one step of n weights, each clamped to [0, PX_MIX_MAX] */
static void step_mix(int64_t *w, int n, const int64_t *steps) {
    for (int i = 0; i < n; i++) {
        int64_t nw = w[i] + steps[i];
        w[i] = nw < 0 ? 0 : nw > PX_MIX_MAX ? PX_MIX_MAX : nw;
    }
}

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

/* pixels.nlms: w += floor(floor(err * step * 2^16 / (floor + sum taps^2)) * tap / 2^16), clamped */
static void nlms(int64_t *w, const int64_t *taps, int n, int64_t err, int64_t step, int64_t floor, int64_t limit) {
    int64_t energy = floor;
    for (int k = 0; k < n; k++) energy += taps[k] * taps[k];
    const int64_t factor = floor_div64(err * step * 65536, energy);
    for (int k = 0; k < n; k++) {
        int64_t v = w[k] + floor_div64(factor * taps[k], 65536);
        w[k] = v < -limit ? -limit : v > limit ? limit : v;
    }
}

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

static void pixels_predict(pixel_state *s, const uint8_t *h, int64_t t, int32_t *freq) {
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

    /* q, q2, q3: logistics at each base plus its cell's bias, scale 0.7 x its mean absolute error
     * (q's a quarter the errors beside); the CDF at each byte's upper edge, z = (8v + 4 - mu) / (0.7 mae / 8) */
    for (int m = 0; m < PX_EXPERTS; m++) {
        const int cm = s->c[m];
        int64_t mu = s->base[m] + floor_div64(s->sum_e[m][cm], s->count[m][cm]);
        mu = mu < 0 ? 0 : mu > 2040 ? 2040 : mu;
        int64_t mae = 8 * s->sum_a[m][cm] / s->count[m][cm];
        if (m == 0) mae = (3 * mae + local) / 4;
        if (mae < 19) mae = 19;
        s->mu[m] = mu;
        int64_t cv[256];
        cdf_steps(s->cdf, 2560 * (4 - mu), 20480, 7 * mae, 255, cv);
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

static void pixels_update(pixel_state *s, const uint8_t *h, int64_t t) {
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
    int64_t steps[PX_EXPERTS + 1];
    mixing_steps(s->out, PX_EXPERTS + 1, s->costs, h[t], steps);
    for (int i = 0; i < PX_WEIGHT_SETS; i++) step_mix(s->weight_sets[i], PX_EXPERTS + 1, steps);
}

int tzip_pixels_scan(int64_t row, int64_t ch, const int32_t *cdf, const int32_t *cost, const int32_t *exp2,
                     const uint8_t *sym, int64_t n, int32_t *freqs) {
    pixel_state *s = tzip_pixels_new(row, ch, n, cdf, cost, exp2);
    SCAN_WITH(pixels, s)
}

BATCH_STEPS(pixels, pixel_state)

/* ---- The sample model (tzip/samples.py is the reference; the same integers) ---------------------- */

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

typedef struct {
    int64_t channels, frames;
    const int32_t *cdf, *cost, *exp2;
    int32_t *samples, *errors;                          /* [channels][frames]: values, first-stage errors */
    int64_t weights[SM_MAX_CHANNELS][SM_ORDER], weights2[SM_MAX_CHANNELS][SM_ORDER2], recent[SM_MAX_CHANNELS][3];
    int64_t sum_a[SM_MAX_CHANNELS][SM_CELLS], count[SM_MAX_CHANNELS][SM_CELLS];
    int64_t mix[2][SM_CELLS][2];
    int64_t taps[SM_ORDER], taps2[SM_ORDER2], pred1, pred, den;  /* this sample's prediction */
    int cell, active, half;
    int32_t q[256], out[256], costs[2][256];
} sample_state;

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

static void samples_predict(sample_state *s, const uint8_t *h, int64_t t, int32_t *freq) {
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

static void samples_update(sample_state *s, const uint8_t *h, int64_t t) {
    if (!s->active) return;
    int64_t steps[2];
    mixing_steps(s->out, 2, s->costs, h[t], steps);
    step_mix(s->mix[s->half][s->cell], 2, steps);
    if (!s->half) return;
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

int tzip_samples_scan(int64_t channels, const int32_t *cdf, const int32_t *cost, const int32_t *exp2,
                      const uint8_t *sym, int64_t n, int32_t *freqs) {
    sample_state *s = tzip_samples_new(channels, n, cdf, cost, exp2);
    SCAN_WITH(samples, s)
}

BATCH_STEPS(samples, sample_state)

/* ---- The bit mixer (tzip/bits.py is the reference; the same integers) ------------------------------ */

#define BM_SLOT_BITS 22           /* 2^22 words: 2^18 buckets of 16 */
#define BM_CONTEXTS 10
#define BM_INPUTS (BM_CONTEXTS + 2)
#define BM_LIMIT 127
#define BM_RATE 6
#define BM_W_START 8000
#define BM_W_MAX (1 << 24)
#define BM_APM_RATE 7
#define BM_EVAL_SHIFT 8
#define BM_COL_MAX 60

typedef struct {
    int32_t x[BM_INPUTS];
    int32_t d1, d2, pr, apm1, apm2;   /* the mixers' outputs, the mixed probability, the curves' cells */
    int32_t w1, w2;                   /* the weight sets' offsets */
} bm_node;

typedef struct {
    const int32_t *squash, *stretch;
    uint32_t *slots;            /* buckets of 16 words: a check, then 15 nodes' p (16 bits) << 16 | count */
    int32_t *w1, *w2;           /* mixing weights: by node, by node and which of the last three contexts are known */
    uint16_t *apm1, *apm2;      /* 33-entry refinement curves: by node, by node and the previous byte */
    uint32_t word, word1, word2, above;
    int64_t line_start, previous_line;
    uint32_t ctx[BM_CONTEXTS];  /* position t's contexts, from predict */
    int64_t cum[257];           /* the incoming frequencies' cumulative sums, from predict */
    bm_node nodes[256];         /* the nodes predict evaluated (by c0), which update learns from as they were */
    uint8_t evaluated[256];
} bits_state;

static inline uint32_t bm_hash(uint32_t a, uint32_t b) {
    uint32_t h = a * 0x9E3779B1u ^ (b + 0x7F4A7C15u) * 0x85EBCA77u;
    return h ^ (h >> 15);
}

static inline int32_t bm_squash(const bits_state *s, int64_t d) {
    return s->squash[(d < -2047 ? -2047 : d > 2047 ? 2047 : d) + 2048];
}

void tzip_bits_free(bits_state *s) {
    if (!s) return;
    free(s->slots); free(s->w1); free(s->w2); free(s->apm1); free(s->apm2); free(s);
}

bits_state *tzip_bits_new(const int32_t *squash, const int32_t *stretch) {
    bits_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->squash = squash; s->stretch = stretch;
    s->slots = calloc((size_t)1 << BM_SLOT_BITS, sizeof *s->slots);
    s->w1 = malloc(sizeof *s->w1 * 256 * BM_INPUTS);
    s->w2 = malloc(sizeof *s->w2 * 2048 * BM_INPUTS);
    s->apm1 = malloc(sizeof *s->apm1 * 256 * 33);
    s->apm2 = malloc(sizeof *s->apm2 * 65536 * 33);
    if (!s->slots || !s->w1 || !s->w2 || !s->apm1 || !s->apm2) { tzip_bits_free(s); return NULL; }
    for (int i = 0; i < 256 * BM_INPUTS; i++) s->w1[i] = i % BM_INPUTS ? BM_W_START : 65536;
    for (int i = 0; i < 2048 * BM_INPUTS; i++) s->w2[i] = i % BM_INPUTS ? BM_W_START : 65536;
    uint16_t curve[33];
    for (int j = 0; j < 33; j++) curve[j] = (uint16_t)(bm_squash(s, (j - 16) * 128) * 16);
    for (int i = 0; i < 256; i++) memcpy(s->apm1 + i * 33, curve, sizeof curve);
    for (int i = 0; i < 65536; i++) memcpy(s->apm2 + i * 33, curve, sizeof curve);
    return s;
}

/* The contexts of position t: orders 1-4 and 6, the word so far, with one and two words before,
   with the column, and the byte above (same column, previous line) with the last byte. */
static void bm_contexts(bits_state *s, const uint8_t *h, int64_t t) {
    uint32_t c[7] = {0};
    for (int k = 1; k <= 6 && k <= t; k++) c[k] = h[t - k];
    const uint32_t o4 = c[1] | c[2] << 8 | c[3] << 16 | c[4] << 24;
    const uint32_t words = bm_hash(s->word, s->word1);
    const int64_t col = t - s->line_start;
    const uint32_t v[BM_CONTEXTS] = {
        c[1], c[1] | c[2] << 8, c[1] | c[2] << 8 | c[3] << 16, o4, bm_hash(bm_hash(o4, c[5]), c[6]),
        s->word, words, bm_hash(words, s->word2), bm_hash(s->word, (uint32_t)(col < BM_COL_MAX ? col : BM_COL_MAX)),
        bm_hash(s->above, c[1]),
    };
    for (int i = 0; i < BM_CONTEXTS; i++) s->ctx[i] = bm_hash((uint32_t)i + 1, v[i]);
}

/* Context i's bucket for a nibble (0: the first; 16 + the high nibble: the second): one of two
   neighbouring buckets whose check matches, or NULL (read) / the one with the lower count at its
   first node, emptied (write). */
static uint32_t *bm_bucket(bits_state *s, int i, uint32_t nibble, int write) {
    const uint32_t hh = bm_hash(s->ctx[i], nibble), check = hh | 1;
    uint32_t *b0 = s->slots + (hh & ((1u << BM_SLOT_BITS) - 16)), *b1 = s->slots + ((hh & ((1u << BM_SLOT_BITS) - 16)) ^ 16);
    if (b0[0] == check) return b0;
    if (b1[0] == check) return b1;
    if (!write) return NULL;
    uint32_t *r = (b1[1] & 0xff) < (b0[1] & 0xff) ? b1 : b0;
    memset(r, 0, 16 * sizeof *r);
    r[0] = check;
    return r;
}

static void bm_buckets(bits_state *s, uint32_t nibble, int write, uint32_t **out) {
    for (int i = 0; i < BM_CONTEXTS; i++) out[i] = bm_bucket(s, i, nibble, write);
}

/* A node's word in its nibble's bucket: 1, then 2-3, 4-7, 8-15 by the bits known in the nibble. */
static inline int bm_word(int c0, int depth) {
    return depth < 4 ? c0 : (1 << (depth - 4)) | (c0 & ((1 << (depth - 4)) - 1));
}

/* Node c0 (1..255: a leading 1, then the bits known) at `depth`: its inputs and mixed probability
   of a 1 (12 bits); reads the state only. */
static void bm_eval(const bits_state *s, uint32_t *const *bucket, uint32_t c1, int c0, int depth, bm_node *nd) {
    const int64_t *cum = s->cum;
    const int base = (c0 - (1 << depth)) << (8 - depth), half = 1 << (7 - depth);
    const int64_t total = cum[base + 2 * half] - cum[base], one = cum[base + 2 * half] - cum[base + half];
    const int64_t pf = (one * 4096 + total / 2) / total;
    nd->x[0] = s->stretch[pf < 1 ? 1 : pf > 4095 ? 4095 : pf];
    const int word = bm_word(c0, depth);
    int known = 0;
    for (int i = 0; i < BM_CONTEXTS; i++) {
        const uint32_t v = bucket[i] ? bucket[i][word] : 0;
        nd->x[1 + i] = (v & 0xff) ? s->stretch[v >> 20] : 0;
        if (i >= BM_CONTEXTS - 3) known = known * 2 + ((v & 0xff) != 0);
    }
    nd->x[BM_INPUTS - 1] = 256;
    nd->w1 = c0 * BM_INPUTS;
    nd->w2 = (c0 * 8 + known) * BM_INPUTS;
    int64_t a = 0, b = 0;
    for (int i = 0; i < BM_INPUTS; i++) { a += (int64_t)nd->x[i] * s->w1[nd->w1 + i]; b += (int64_t)nd->x[i] * s->w2[nd->w2 + i]; }
    nd->d1 = (int32_t)(a >> 16); nd->d2 = (int32_t)(b >> 16);
    const int32_t pr = bm_squash(s, ((int64_t)nd->d1 + nd->d2) >> 1);
    const int32_t st = s->stretch[pr] + 2048, lo = st >> 7, wgt = st & 127;
    const int32_t i1 = c0 * 33 + lo, i2 = (int32_t)((uint32_t)c0 | c1 << 8) * 33 + lo;
    const int32_t p1 = (s->apm1[i1] * (128 - wgt) + s->apm1[i1 + 1] * wgt) >> 11;
    const int32_t p2 = (s->apm2[i2] * (128 - wgt) + s->apm2[i2 + 1] * wgt) >> 11;
    const int32_t p = (2 * pr + p1 + p2 + 2) >> 2;
    nd->pr = p < 1 ? 1 : p > 4095 ? 4095 : p;
    nd->apm1 = i1 + (wgt >> 6); nd->apm2 = i2 + (wgt >> 6);
}

/* Mass of every byte under node c0 (holding `mass`): split by the mixed probability where f gives
   the node at least 1/256 of its total, else shared out as f does inside the node. */
static void bm_descend(bits_state *s, uint32_t *const *bucket, const int32_t *f, uint32_t c1, int c0, int depth,
                       int64_t mass, int64_t *p) {
    const int64_t *cum = s->cum;
    const int base = (c0 - (1 << depth)) << (8 - depth), width = 1 << (8 - depth);
    if (depth == 8) { p[base] = mass; return; }
    const int64_t sub = cum[base + width] - cum[base];
    if (sub << BM_EVAL_SHIFT < cum[256]) {
        const int64_t share = (mass << 16) / sub;
        for (int v = base; v < base + width; v++) p[v] = (f[v] * share) >> 16;
        return;
    }
    uint32_t *second[BM_CONTEXTS];
    if (depth == 4) { bm_buckets(s, 16 + (uint32_t)(c0 & 15), 0, second); bucket = second; }
    bm_node *nd = &s->nodes[c0];
    bm_eval(s, bucket, c1, c0, depth, nd);
    s->evaluated[c0] = 1;
    const int64_t m1 = (mass * nd->pr) >> 12;
    bm_descend(s, bucket, f, c1, 2 * c0, depth + 1, mass - m1, p);
    bm_descend(s, bucket, f, c1, 2 * c0 + 1, depth + 1, m1, p);
}

static void bm_cumulative(const int32_t *f, int64_t *cum) {
    cum[0] = 0;
    for (int v = 0; v < 256; v++) cum[v + 1] = cum[v] + f[v];
}

static void bits_predict(bits_state *s, const uint8_t *h, int64_t t, int32_t *freq) {
    int64_t p[256];
    uint32_t *first[BM_CONTEXTS];
    bm_contexts(s, h, t);
    bm_cumulative(freq, s->cum);
    memset(s->evaluated, 0, sizeof s->evaluated);
    bm_buckets(s, 0, 0, first);
    bm_descend(s, first, freq, t > 0 ? h[t - 1] : 0, 1, 0, (int64_t)1 << 32, p);
    normalise(p, freq);
}

static inline int32_t bm_clamp_weight(int64_t w) { return (int32_t)(w < -BM_W_MAX ? -BM_W_MAX : w > BM_W_MAX ? BM_W_MAX : w); }

/* After byte t (predicted just before: its contexts, incoming frequencies and evaluated nodes are
   kept): every node on its path learns, then the word and line state moves on. */
static void bits_update(bits_state *s, const uint8_t *h, int64_t t) {
    const uint32_t c1 = t > 0 ? h[t - 1] : 0;
    const int y = h[t];
    uint32_t *bucket[BM_CONTEXTS];
    int c0 = 1;
    for (int depth = 0; depth < 8; depth++) {
        const int bit = (y >> (7 - depth)) & 1;
        bm_node nd = s->nodes[c0];
        if (depth % 4 == 0) bm_buckets(s, depth ? 16 + (uint32_t)(c0 & 15) : 0, 1, bucket);
        if (!s->evaluated[c0]) bm_eval(s, bucket, c1, c0, depth, &nd);
        const int32_t e1 = ((bit << 12) - bm_squash(s, nd.d1)) * BM_RATE, e2 = ((bit << 12) - bm_squash(s, nd.d2)) * BM_RATE;
        for (int i = 0; i < BM_INPUTS; i++) {
            s->w1[nd.w1 + i] = bm_clamp_weight((int64_t)s->w1[nd.w1 + i] + ((nd.x[i] * e1) >> 14));
            s->w2[nd.w2 + i] = bm_clamp_weight((int64_t)s->w2[nd.w2 + i] + ((nd.x[i] * e2) >> 14));
        }
        const int32_t g = (bit << 16) + (bit << BM_APM_RATE) - 2 * bit;
        s->apm1[nd.apm1] = (uint16_t)(s->apm1[nd.apm1] + ((g - s->apm1[nd.apm1]) >> BM_APM_RATE));
        s->apm2[nd.apm2] = (uint16_t)(s->apm2[nd.apm2] + ((g - s->apm2[nd.apm2]) >> BM_APM_RATE));
        const int word = bm_word(c0, depth);
        for (int i = 0; i < BM_CONTEXTS; i++) {
            uint32_t *slot = &bucket[i][word];
            const int32_t n = *slot & 0xff;
            int32_t q = n ? (int32_t)(*slot >> 16) : 32768;
            q += (int32_t)(((int64_t)((bit << 16) - q) * (131072 / (2 * n + 3))) >> 16);
            q = q < 0 ? 0 : q > 65535 ? 65535 : q;
            *slot = (uint32_t)q << 16 | (uint32_t)(n < BM_LIMIT ? n + 1 : BM_LIMIT);
        }
        c0 = 2 * c0 + bit;
    }
    const int lower = y >= 'A' && y <= 'Z' ? y + 32 : y;
    if (lower >= 'a' && lower <= 'z') s->word = bm_hash(s->word, (uint32_t)lower);
    else if (s->word) { s->word2 = s->word1; s->word1 = s->word; s->word = 0; }
    if (y == '\n') { s->previous_line = s->line_start; s->line_start = t + 1; }
    const int64_t above = s->previous_line + (t + 1 - s->line_start);
    s->above = above < s->line_start ? h[above] : 0;
}

int tzip_bits_scan(const int32_t *squash, const int32_t *stretch, const uint8_t *sym, int64_t n, int32_t *freqs) {
    bits_state *s = tzip_bits_new(squash, stretch);
    SCAN_WITH(bits, s)
}

BATCH_STEPS(bits, bits_state)

/* ---- Decoding's stages in one call per step (coder.decode_segments) ----------------------------- */

enum { STAGE_MATCH, STAGE_COUNTS, STAGE_PIXELS, STAGE_SAMPLES, STAGE_BITS };

/* Each stage in turn rewrites the step's frequencies of the segments its mask flags; states[k] is
   the match model's state array or the other stages' array of handles. */
void tzip_stages_predict(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks, int64_t b,
                         const uint8_t *hist, int64_t stride, int64_t t, int32_t *freqs) {
    for (int64_t k = 0; k < n; k++) {
        switch (kinds[k]) {
        case STAGE_MATCH: tzip_match_predict((int32_t *)states[k], b, hist, stride, masks[k], freqs); break;
        case STAGE_COUNTS: tzip_counts_predict((count_state **)states[k], b, hist, stride, t, masks[k], freqs); break;
        case STAGE_PIXELS: tzip_pixels_predict((pixel_state **)states[k], b, hist, stride, t, masks[k], freqs); break;
        case STAGE_SAMPLES: tzip_samples_predict((sample_state **)states[k], b, hist, stride, t, masks[k], freqs); break;
        case STAGE_BITS: tzip_bits_predict((bits_state **)states[k], b, hist, stride, t, masks[k], freqs); break;
        }
    }
}

/* After the bytes of position t are in hist: every stage learns. Non-zero: the stage that could
   not grow its state, plus one. */
int64_t tzip_stages_update(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                           int64_t b, const uint8_t *hist, int64_t stride, int64_t t) {
    for (int64_t k = 0; k < n; k++) {
        switch (kinds[k]) {
        case STAGE_MATCH: tzip_match_update((int32_t *)states[k], b, hist, stride, t, masks[k]); break;
        case STAGE_COUNTS: if (tzip_counts_update((count_state **)states[k], b, hist, stride, t, masks[k])) return k + 1; break;
        case STAGE_PIXELS: tzip_pixels_update((pixel_state **)states[k], b, hist, stride, t, masks[k]); break;
        case STAGE_SAMPLES: tzip_samples_update((sample_state **)states[k], b, hist, stride, t, masks[k]); break;
        case STAGE_BITS: tzip_bits_update((bits_state **)states[k], b, hist, stride, t, masks[k]); break;
        }
    }
    return 0;
}

/* A chain's stages over positions t0..t0+n-1 of its history (compression of a segment that
   continues a chain, tzip/chain.py): freqs [n][256] rewritten in place, the states carried on.
   The stages are those of a decode batch of one; returns what tzip_stages_update returns. */
int64_t tzip_stages_scan(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                         const uint8_t *hist, int64_t t0, int64_t n, int32_t *freqs) {
    for (int64_t t = t0; t < t0 + n; t++) {
        tzip_stages_predict(n_stages, kinds, states, masks, 1, hist, 0, t, freqs + (t - t0) * 256);
        const int64_t failed = tzip_stages_update(n_stages, kinds, states, masks, 1, hist, 0, t);
        if (failed) return failed;
    }
    return 0;
}

/* ---- The decode loop's work at one position in two calls (coder.decode_segments) ------------- */

typedef struct {
    const int32_t *cfg; void **params; int64_t batch;                           /* tzip_step's arguments */
    uint8_t *history; int64_t stride; const int32_t *offsets, *modality, *period;
    int16_t *keys, *vals; int32_t *block_sum, *freq;
    int64_t n_stages; const int32_t *kinds; void *const *states; const uint8_t *const *masks;  /* tzip_stages_* */
    uint8_t *stage_history; int64_t stage_stride;
    float *probs;                                                               /* [batch][256], for the coder */
} decode_turn;

/* The network's step at its position t, every stage's predict at position ts of the stages'
   history, and the frequencies as float32 (exact: integers below 2^24) for the range decoder. */
int tzip_turn_predict(const decode_turn *a, int64_t t, int64_t ts) {
    const int status = tzip_step(a->cfg, a->params, t, (int)a->batch, a->history, a->stride, a->offsets, a->modality,
                                 a->period, a->keys, a->vals, a->block_sum, a->freq);
    if (status) return status;
    if (a->n_stages)
        tzip_stages_predict(a->n_stages, a->kinds, a->states, a->masks, a->batch, a->stage_history, a->stage_stride, ts,
                            a->freq);
    for (int64_t i = 0; i < a->batch * 256; i++) a->probs[i] = (float)a->freq[i];
    return 0;
}

/* The bytes decoded at t (ts): into the network's and the stages' histories, then every stage
   learns. Returns what tzip_stages_update returns. */
int64_t tzip_turn_learn(const decode_turn *a, int64_t t, int64_t ts, const int64_t *symbols) {
    for (int64_t b = 0; b < a->batch; b++) {
        a->history[b * a->stride + t] = (uint8_t)symbols[b];
        a->stage_history[b * a->stage_stride + ts] = (uint8_t)symbols[b];
    }
    return a->n_stages ? tzip_stages_update(a->n_stages, a->kinds, a->states, a->masks, a->batch, a->stage_history,
                                            a->stage_stride, ts)
                       : 0;
}
