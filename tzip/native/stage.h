/* What the stage files (match, counts, pixels, samples, bits) share: the two loops every stage's
 * entry points run, as macros over the stage's own predict and update. Private to the library.
 */
#ifndef TZIP_STAGE_H
#define TZIP_STAGE_H

#include <stdint.h>

#include "bitcoder.h"
#include "tzip.h"

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

/* The stages' predictor parts, for hints.c: each stage's own prediction at t into out[0..1]
   (TZIP_N_HINTS), and its learning without the mixing weights. */
void match_init(int32_t *s);
void match_hint(int32_t *s, const uint8_t *hist, int16_t *out);
void match_update(int32_t *s, const uint8_t *hist, int64_t t);
void pixels_hint(pixel_state *s, const uint8_t *h, int64_t t, int16_t *out);
void pixels_learn(pixel_state *s, const uint8_t *h, int64_t t);
void samples_hint(sample_state *s, const uint8_t *h, int64_t t, int16_t *out);
void samples_learn(sample_state *s, const uint8_t *h, int64_t t);

/* The classical way's byte (bits.c): coded or decoded bit by bit with the bit mixer (stages.c). */
void bits_code(bits_state *s, uint8_t *h, int64_t t, const int32_t *freq, bit_coder *c, int decode);

#endif
