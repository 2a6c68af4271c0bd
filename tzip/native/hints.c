/* Hints: the stages' own predictions as the network's inputs (docs/DESIGN.md §8). At each
 * position, a predicted byte and its confidence bucket (256: none), from a stage run on its own:
 * its predictor only, never the mixing with the network, so a hint depends on the bytes before it
 * alone and is the same in compression's pass over a whole segment and in decoding's steps.
 * Text and binary take the match model's, images the pixel model's centre, 16-bit audio the
 * sample model's.
 */
#include <stdint.h>
#include <stdlib.h>

#include "stage.h"
#include "tzip.h"

struct hint_state {
    int32_t kind;
    int32_t *match;
    pixel_state *pixels;
    sample_state *samples;
};

void tzip_hints_free(hint_state *s) {
    if (!s) return;
    free(s->match);
    tzip_pixels_free(s->pixels);
    tzip_samples_free(s->samples);
    free(s);
}

hint_state *tzip_hints_new(int32_t kind, int64_t row, int64_t channels, int64_t len) {
    if (kind < 0 || kind >= TZIP_HINT_KIND_COUNT || len < 0) return NULL;
    hint_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->kind = kind;
    switch (kind) {
    case TZIP_HINT_MATCH:
        s->match = malloc(sizeof(int32_t) * TZIP_MATCH_STATE_SIZE);
        if (s->match) match_init(s->match);
        if (!s->match) { tzip_hints_free(s); return NULL; }
        break;
    case TZIP_HINT_PIXELS: /* the mixing tables are never read: hints stop before the mixing */
        s->pixels = tzip_pixels_new(row, channels, len, NULL, NULL, NULL);
        if (!s->pixels) { tzip_hints_free(s); return NULL; }
        break;
    case TZIP_HINT_SAMPLES:
        s->samples = tzip_samples_new(channels, len, NULL, NULL, NULL);
        if (!s->samples) { tzip_hints_free(s); return NULL; }
        break;
    }
    return s;
}

static void hints_predict(hint_state *s, const uint8_t *h, int64_t t, int16_t *out) {
    switch (s->kind) {
    case TZIP_HINT_MATCH: match_hint(s->match, h, out); break;
    case TZIP_HINT_PIXELS: pixels_hint(s->pixels, h, t, out); break;
    case TZIP_HINT_SAMPLES: samples_hint(s->samples, h, t, out); break;
    }
}

static void hints_update(hint_state *s, const uint8_t *h, int64_t t) {
    switch (s->kind) {
    case TZIP_HINT_MATCH: match_update(s->match, h, t); break;
    case TZIP_HINT_PIXELS: pixels_learn(s->pixels, h, t); break;
    case TZIP_HINT_SAMPLES: samples_learn(s->samples, h, t); break;
    }
}

int tzip_hints_scan(int32_t kind, int64_t row, int64_t channels, const uint8_t *sym, int64_t n, int16_t *hints) {
    if (kind < 0 || kind >= TZIP_HINT_KIND_COUNT || n < 0) return -1;
    hint_state *s = tzip_hints_new(kind, row, channels, n);
    if (!s) return -2;
    for (int64_t t = 0; t < n; t++) {
        hints_predict(s, sym, t, hints + t * TZIP_N_HINTS);
        hints_update(s, sym, t);
    }
    tzip_hints_free(s);
    return 0;
}

void tzip_hints_predict(hint_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                        const uint8_t *use, int16_t *hints) {
    for (int64_t i = 0; i < b; i++)
        if (use[i]) hints_predict(states[i], hist + i * stride, t, hints + i * TZIP_N_HINTS);
}

void tzip_hints_update(hint_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                       const uint8_t *use) {
    for (int64_t i = 0; i < b; i++)
        if (use[i]) hints_update(states[i], hist + i * stride, t);
}
