/* Small integer helpers shared by the library's files: clamping, the engine's fixed-point
 * requantisation, floor division and absolute value in int64, bit lengths. Private to the library
 * (not part of the interface in tzip.h); each is static inline, so every file gets its own copy.
 */
#ifndef TZIP_COMMON_H
#define TZIP_COMMON_H

#include <stdint.h>

static inline int32_t clamp32(int64_t v, int64_t lo, int64_t hi) {
    return (int32_t)(v < lo ? lo : (v > hi ? hi : v));
}

static inline int32_t requant(int64_t acc, int32_t mult, int32_t shift) {
    return (int32_t)((acc * mult + ((int64_t)1 << (shift - 1))) >> shift);
}

static inline int64_t floor_div64(int64_t a, int64_t b) {  /* b > 0 */
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static inline int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

static inline int bit_length(uint32_t v) {
    int n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

/* v's size on a log scale, 0..15: `per_octave` (1 or 2) buckets an octave from bit length and,
   for 2, the bit below the top one, less `offset`. The confidence of a hint (hints.c). */
static inline int octave_bucket(int64_t v, int per_octave, int offset) {
    const uint32_t u = (uint32_t)(v < 1 ? 1 : v > 0x7fffffff ? 0x7fffffff : v);
    const int n = bit_length(u);
    int b = per_octave == 2 ? 2 * (n - 1) + (n >= 2 ? (int)((u >> (n - 2)) & 1) : 0) : n - 1;
    b -= offset;
    return b < 0 ? 0 : b > 15 ? 15 : b;
}

#endif
