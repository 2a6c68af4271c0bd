/* The match model (tzip/match.py is the reference; the same integers): where the last four bytes
 * occurred before, predict the byte that followed them, with a hit rate learnt per match length
 * and incoming probability; the network's frequencies are rescaled around that prediction. A state
 * is a flat int32 array of TZIP_MATCH_STATE_SIZE entries that Python allocates (match.STATE_SIZE).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tzip.h"

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
/* the layout above is the size tzip.h declares, or this does not compile */
typedef char match_state_size_is_the_header_s[MS_SIZE == TZIP_MATCH_STATE_SIZE ? 1 : -1];

static inline int match_len_cell(int32_t n) {
    return n < 16 ? n : (16 + (n - 16) / 16 < MATCH_LENS - 1 ? 16 + (n - 16) / 16 : MATCH_LENS - 1);
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

void match_update(int32_t *s, const uint8_t *hist, int64_t t) {
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

/* hints.c's view of the match model: the byte that followed the match and the match's length
   (1..7, then two buckets an octave up to 15); no match, no hint. The hit rates are left alone. */
void match_hint(int32_t *s, const uint8_t *hist, int16_t *out) {
    s[MS_PRED] = -1;
    if (s[MS_LEN] == 0) { out[0] = out[1] = 256; return; }
    out[0] = hist[s[MS_PTR]];
    out[1] = (int16_t)(s[MS_LEN] < 8 ? s[MS_LEN] : octave_bucket(s[MS_LEN], 2, -2));
}

void match_init(int32_t *s) {
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
