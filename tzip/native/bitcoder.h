/* A binary arithmetic coder (tzip/codec/bitcoder.py is the reference): a bit at a time with a
 * 12-bit probability of a 1, carry-free over 32-bit bounds as in the PAQ family's coders. The
 * classical way (method 10) codes each byte as the bit mixer's eight decisions with it, so only
 * the nodes on the byte's path are evaluated, where a byte coder needs all 255. Private to the
 * library.
 */
#ifndef TZIP_BITCODER_H
#define TZIP_BITCODER_H

#include <stdint.h>

typedef struct {
    uint32_t x1, x2, x;     /* the interval [x1, x2]; decoding: the code value read so far */
    uint8_t *out;           /* encoding: cap bytes; pos past cap means the output did not fit */
    const uint8_t *in;      /* decoding: len bytes, zeros after them */
    int64_t pos, cap, len;
} bit_coder;

static inline void bc_encoder(bit_coder *c, uint8_t *out, int64_t cap) {
    c->x1 = 0; c->x2 = 0xffffffffu; c->x = 0; c->out = out; c->in = 0; c->pos = 0; c->cap = cap; c->len = 0;
}

static inline int bc_byte(bit_coder *c) { return c->pos < c->len ? c->in[c->pos++] : (c->pos++, 0); }

static inline void bc_decoder(bit_coder *c, const uint8_t *in, int64_t len) {
    c->x1 = 0; c->x2 = 0xffffffffu; c->x = 0; c->out = 0; c->in = in; c->pos = 0; c->cap = 0; c->len = len;
    for (int i = 0; i < 4; i++) c->x = c->x << 8 | (uint32_t)bc_byte(c);
}

static inline void bc_put(bit_coder *c, uint32_t byte) {
    if (c->pos < c->cap) c->out[c->pos] = (uint8_t)byte;
    c->pos++;
}

/* Where a bit with probability p1/4096 of a 1 splits the interval: a 1 takes [x1, mid], a 0 (mid, x2]. */
static inline uint32_t bc_mid(const bit_coder *c, int32_t p1) { return c->x1 + ((c->x2 - c->x1) >> 12) * (uint32_t)p1; }

static inline void bc_encode(bit_coder *c, int bit, int32_t p1) {
    const uint32_t mid = bc_mid(c, p1);
    if (bit) c->x2 = mid; else c->x1 = mid + 1;
    while (!((c->x1 ^ c->x2) & 0xff000000u)) {
        bc_put(c, c->x2 >> 24);
        c->x1 <<= 8; c->x2 = c->x2 << 8 | 255;
    }
}

static inline int bc_decode(bit_coder *c, int32_t p1) {
    const uint32_t mid = bc_mid(c, p1);
    const int bit = c->x <= mid;
    if (bit) c->x2 = mid; else c->x1 = mid + 1;
    while (!((c->x1 ^ c->x2) & 0xff000000u)) {
        c->x1 <<= 8; c->x2 = c->x2 << 8 | 255;
        c->x = c->x << 8 | (uint32_t)bc_byte(c);
    }
    return bit;
}

/* The last bound's four bytes: the decoder's code value then lies in the interval. */
static inline void bc_flush(bit_coder *c) {
    for (int i = 0; i < 4; i++) { bc_put(c, c->x1 >> 24); c->x1 <<= 8; }
}

#endif
