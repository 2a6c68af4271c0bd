/* A decode batch's stages in one call per step each way, and the decode loop's whole work at one
 * position in two calls (coder.decode_segments, tzip/chain.py): a Python call costs about a
 * microsecond, as much as most stages' work on a byte. The stages of a chain are dispatched on
 * their kind (enum tzip_stage_kind) to each stage's batch entry points.
 */
#include <stddef.h>
#include <stdint.h>

#include "stage.h"
#include "tzip.h"

/* ---- Decoding's stages in one call per step (coder.decode_segments) ----------------------------- */

/* Each stage in turn rewrites the step's frequencies of the segments its mask flags; states[k] is
   the match model's state array or the other stages' array of handles. */
static void stages_predict(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks, int64_t b,
                           const uint8_t *hist, int64_t stride, int64_t t, int32_t *freqs, const int32_t *net);

void tzip_stages_predict(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks, int64_t b,
                         const uint8_t *hist, int64_t stride, int64_t t, int32_t *freqs) {
    stages_predict(n, kinds, states, masks, b, hist, stride, t, freqs, freqs);
}

/* net: the network's rows of the step, which a bit mixer of the net set keeps before any stage runs
   (freqs itself where the stages get them as they come; apart where the stages before ran already). */
static void stages_predict(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks, int64_t b,
                           const uint8_t *hist, int64_t stride, int64_t t, int32_t *freqs, const int32_t *net) {
    for (int64_t k = 0; k < n; k++)
        if (kinds[k] == TZIP_STAGE_BITS) tzip_bits_keep((bits_state **)states[k], b, masks[k], net);
    for (int64_t k = 0; k < n; k++) {
        switch (kinds[k]) {
        case TZIP_STAGE_MATCH:
            tzip_match_predict((int32_t *)states[k], b, hist, stride, masks[k], freqs);
            break;
        case TZIP_STAGE_COUNTS:
            tzip_counts_predict((count_state **)states[k], b, hist, stride, t, masks[k], freqs);
            break;
        case TZIP_STAGE_PIXELS:
            tzip_pixels_predict((pixel_state **)states[k], b, hist, stride, t, masks[k], freqs);
            break;
        case TZIP_STAGE_SAMPLES:
            tzip_samples_predict((sample_state **)states[k], b, hist, stride, t, masks[k], freqs);
            break;
        case TZIP_STAGE_BITS:
            tzip_bits_predict((bits_state **)states[k], b, hist, stride, t, masks[k], freqs);
            break;
        }
    }
}

/* After the bytes of position t are in hist: every stage learns. Non-zero: the stage that could
   not grow its state, plus one. */
int64_t tzip_stages_update(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                           int64_t b, const uint8_t *hist, int64_t stride, int64_t t) {
    for (int64_t k = 0; k < n; k++) {
        switch (kinds[k]) {
        case TZIP_STAGE_MATCH:
            tzip_match_update((int32_t *)states[k], b, hist, stride, t, masks[k]);
            break;
        case TZIP_STAGE_COUNTS:
            if (tzip_counts_update((count_state **)states[k], b, hist, stride, t, masks[k])) return k + 1;
            break;
        case TZIP_STAGE_PIXELS:
            tzip_pixels_update((pixel_state **)states[k], b, hist, stride, t, masks[k]);
            break;
        case TZIP_STAGE_SAMPLES:
            tzip_samples_update((sample_state **)states[k], b, hist, stride, t, masks[k]);
            break;
        case TZIP_STAGE_BITS:
            tzip_bits_update((bits_state **)states[k], b, hist, stride, t, masks[k]);
            break;
        }
    }
    return 0;
}

/* A chain's stages over positions t0..t0+n-1 of its history (compression of a segment that
   continues a chain, tzip/chain.py): freqs [n][256] rewritten in place, the states carried on.
   The stages are those of a decode batch of one; returns what tzip_stages_update returns. */
int64_t tzip_stages_scan(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                         const uint8_t *hist, int64_t t0, int64_t n, int32_t *freqs) {
    return tzip_stages_scan_net(n_stages, kinds, states, masks, hist, t0, n, freqs, freqs);
}

int64_t tzip_stages_scan_net(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                             const uint8_t *hist, int64_t t0, int64_t n, int32_t *freqs, const int32_t *net) {
    for (int64_t t = t0; t < t0 + n; t++) {
        stages_predict(n_stages, kinds, states, masks, 1, hist, 0, t, freqs + (t - t0) * 256, net + (t - t0) * 256);
        const int64_t failed = tzip_stages_update(n_stages, kinds, states, masks, 1, hist, 0, t);
        if (failed) return failed;
    }
    return 0;
}

/* ---- The decode loop's work at one position in two calls (coder.decode_segments) ------------- */

/* The network's step at its position t, every stage's predict at position ts of the stages'
   history, and the frequencies as float32 (exact: integers below 2^24) for the range decoder. */
int tzip_turn_predict(const tzip_decode_turn *a, int64_t t, int64_t ts) {
    if (a->hint_states)
        tzip_hints_predict((hint_state **)a->hint_states, a->batch, a->history, a->stride, t, a->hint_mask, a->hints);
    const int status = tzip_step(a->cfg, a->params, t, (int)a->batch, a->history, a->stride, a->offsets, a->modality,
                                 a->period, a->hint_states ? a->hints : NULL, a->keys, a->vals, a->block_sum, a->freq);
    if (status) return status;
    if (a->n_stages)
        tzip_stages_predict(a->n_stages, a->kinds, a->states, a->masks, a->batch, a->stage_history, a->stage_stride, ts,
                            a->freq);
    for (int64_t i = 0; i < a->batch * 256; i++) a->probs[i] = (float)a->freq[i];
    return 0;
}

/* The bytes decoded at t (ts): into the network's and the stages' histories, then every stage
   learns. Returns what tzip_stages_update returns. */
int64_t tzip_turn_learn(const tzip_decode_turn *a, int64_t t, int64_t ts, const int64_t *symbols) {
    for (int64_t b = 0; b < a->batch; b++) {
        a->history[b * a->stride + t] = (uint8_t)symbols[b];
        a->stage_history[b * a->stage_stride + ts] = (uint8_t)symbols[b];
    }
    if (a->hint_states)
        tzip_hints_update((hint_state **)a->hint_states, a->batch, a->history, a->stride, t, a->hint_mask);
    return a->n_stages ? tzip_stages_update(a->n_stages, a->kinds, a->states, a->masks, a->batch, a->stage_history,
                                            a->stage_stride, ts)
                       : 0;
}

/* ---- The classical way (method 10): a chain's bytes coded bit by bit ----------------------------- */

/* Position t's incoming frequencies: the uniform distribution through every stage but the last. */
static void classical_row(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                          const uint8_t *hist, int64_t t, int32_t *freq) {
    for (int v = 0; v < 256; v++) freq[v] = TZIP_UNIFORM_FREQ;
    tzip_stages_predict(n_stages - 1, kinds, states, masks, 1, hist, 0, t, freq);
}

static int classical_chain(int64_t n_stages, const int32_t *kinds) {
    return n_stages >= 1 && kinds[n_stages - 1] == TZIP_STAGE_BITS;
}

/* Positions t0..t0+n-1 coded (decode = 0) or decoded through the coder; 0, -2 for a chain that does
   not end with the bit mixer, or -2 - k where stage k could not grow its state. */
static int64_t classical_run(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                             uint8_t *hist, int64_t t0, int64_t n, bit_coder *c, int decode) {
    if (!classical_chain(n_stages, kinds)) return -2;
    bits_state *bits = ((bits_state **)states[n_stages - 1])[0];
    int32_t freq[256];
    for (int64_t t = t0; t < t0 + n; t++) {
        classical_row(n_stages, kinds, states, masks, hist, t, freq);
        bits_code(bits, hist, t, freq, c, decode);
        const int64_t failed = tzip_stages_update(n_stages - 1, kinds, states, masks, 1, hist, 0, t);
        if (failed) return -2 - failed;
    }
    return 0;
}

int64_t tzip_classical_encode(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                              uint8_t *hist, int64_t t0, int64_t n, uint8_t *out, int64_t cap) {
    bit_coder c;
    bc_encoder(&c, out, cap);
    const int64_t status = classical_run(n_stages, kinds, states, masks, hist, t0, n, &c, 0);
    if (status) return status;
    bc_flush(&c);
    return c.pos <= cap ? c.pos : -1;
}

int64_t tzip_classical_rows(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                            const uint8_t *hist, int64_t t0, int64_t n, int32_t *rows) {
    if (!classical_chain(n_stages, kinds)) return -2;
    for (int64_t t = t0; t < t0 + n; t++) {
        classical_row(n_stages, kinds, states, masks, hist, t, rows + (t - t0) * 256);
        const int64_t failed = tzip_stages_update(n_stages - 1, kinds, states, masks, 1, hist, 0, t);
        if (failed) return -2 - failed;
    }
    return 0;
}

int64_t tzip_classical_code(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                            uint8_t *hist, int64_t t0, int64_t n, const int32_t *rows, uint8_t *out, int64_t cap,
                            int64_t *coder, int32_t flush) {
    if (!classical_chain(n_stages, kinds) || (n > 0 && !rows) || coder[2] < 0 || coder[0] < 0 || coder[1] < coder[0]
        || coder[1] > (int64_t)0xffffffffu)
        return -2;
    bits_state *bits = ((bits_state **)states[n_stages - 1])[0];
    bit_coder c;
    bc_encoder(&c, out, cap);
    c.x1 = (uint32_t)coder[0]; c.x2 = (uint32_t)coder[1]; c.pos = coder[2];
    for (int64_t t = t0; t < t0 + n; t++) bits_code(bits, hist, t, rows + (t - t0) * 256, &c, 0);
    if (flush) bc_flush(&c);
    coder[0] = c.x1; coder[1] = c.x2; coder[2] = c.pos;
    return !flush ? 0 : c.pos <= cap ? c.pos : -1;
}

int64_t tzip_classical_decode(int64_t n_stages, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                              uint8_t *hist, int64_t t0, int64_t n, const uint8_t *coded, int64_t len) {
    bit_coder c;
    bc_decoder(&c, coded, len);
    return classical_run(n_stages, kinds, states, masks, hist, t0, n, &c, 1);
}
