/* The bit mixer (tzip/stages/bits.py is the reference; the same integers): each byte as eight
 * binary decisions, each predicted by mixing the incoming split of the node with ten hashed
 * contexts' bit statistics (orders 1-4 and 6, then words, columns and the byte above for text, or
 * sparse contexts for binary data: enum tzip_bits_contexts) and, in the TZIP_BITS_NET set, the
 * network's own split of the node, then refined by two interpolated curves; the byte's
 * frequencies follow by descending the tree of decisions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitcoder.h"
#include "mixing.h"
#include "stage.h"
#include "tzip.h"

#define BM_SLOT_BITS 22           /* 2^22 words: 2^18 buckets of 16 */
#define BM_WORD_CONTEXTS 10       /* text's set */
#define BM_CONTEXTS 16            /* binary data's sparse set, the most */
#define BM_INPUTS (2 * BM_CONTEXTS + 2) /* at most: the incoming split, each context's p (and history), a bias */
#define BM_LIMIT 127
#define BM_RATE 6
#define BM_W_START 8000
#define BM_W_MAX (1 << 24)
#define BM_APM_RATE 7
#define BM_EVAL_SHIFT 8
#define BM_COL_MAX 60
#define BM_HISTORY_LIMIT 255      /* a history's probability moves at least 1/256.5 of the way per bit */
#define BM_RECORD_MAX 4096        /* the longest record length detected */
#define BM_RECORD_VOTES 16
#define BM_NET_SETS 8             /* the net set's first weight sets: by node and the network's split, in 8 bands */

typedef struct {
    int32_t x[BM_INPUTS];
    int32_t d1, d2, pr, apm1, apm2;   /* the mixers' outputs, the mixed probability, the curves' cells */
    int32_t w1, w2;                   /* the weight sets' offsets */
} bm_node;

struct bits_state {
    const int32_t *squash, *stretch;
    uint32_t *slots;            /* buckets of 16 words: a check, then 15 nodes' p (16 bits) << 16 | history << 8 | count */
    int32_t *w1, *w2;           /* mixing weights: by node, by node and which of the last three contexts are known */
    uint16_t *apm1, *apm2;      /* 33-entry refinement curves: by node, by node and the previous byte */
    int32_t history_p[BM_CONTEXTS * 256], history_n[BM_CONTEXTS * 256]; /* sparse set: by context and bit history */
    int32_t contexts;           /* enum tzip_bits_contexts */
    int32_t contexts_used;      /* BM_WORD_CONTEXTS, or with the sparse set BM_CONTEXTS */
    int32_t inputs;             /* the mixer's inputs: BM_WORD_CONTEXTS + 2 (+ 1 with the net set), or BM_INPUTS */
    int32_t net;                /* the net set: the network's row is an input (net_row, from tzip_bits_keep) */
    int32_t w1_sets;            /* the first weight sets a node: 1, or BM_NET_SETS with the net set */
    uint32_t word, word1, word2, above;
    int32_t record, candidate, votes;   /* sparse set: the detected record length, a candidate and its votes */
    int64_t last_at[256], last_gap[256]; /* by byte value: its last position, the gap to the one before */
    int64_t line_start, previous_line;
    uint32_t ctx[BM_CONTEXTS];  /* position t's contexts, from predict */
    int64_t cum[257];           /* the incoming frequencies' cumulative sums, from predict */
    int32_t net_row[256];       /* the net set: the network's row of the position predicted next */
    int64_t net_cum[257];       /* its cumulative sums, from predict */
    bm_node nodes[256];         /* the nodes predict evaluated (by c0), which update learns from as they were */
    uint8_t evaluated[256];
};

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

bits_state *tzip_bits_new(const int32_t *squash, const int32_t *stretch, int32_t contexts) {
    if (contexts < 0 || contexts >= TZIP_BITS_CONTEXTS_COUNT) return NULL;
    bits_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->squash = squash; s->stretch = stretch; s->contexts = contexts;
    s->net = contexts == TZIP_BITS_NET;
    s->w1_sets = s->net ? BM_NET_SETS : 1;
    s->contexts_used = contexts == TZIP_BITS_SPARSE ? BM_CONTEXTS : BM_WORD_CONTEXTS;
    s->inputs = contexts == TZIP_BITS_SPARSE ? BM_INPUTS : BM_WORD_CONTEXTS + 2 + s->net;
    for (int v = 0; v < 256; v++) s->net_row[v] = TZIP_UNIFORM_FREQ;  /* until a row is kept */
    s->slots = calloc((size_t)1 << BM_SLOT_BITS, sizeof *s->slots);
    const int n = s->inputs;
    s->w1 = malloc(sizeof *s->w1 * 256 * s->w1_sets * n);
    s->w2 = malloc(sizeof *s->w2 * 2048 * n);
    s->apm1 = malloc(sizeof *s->apm1 * 256 * 33);
    s->apm2 = malloc(sizeof *s->apm2 * 65536 * 33);
    if (!s->slots || !s->w1 || !s->w2 || !s->apm1 || !s->apm2) { tzip_bits_free(s); return NULL; }
    for (int i = 0; i < 256 * s->w1_sets * n; i++) s->w1[i] = i % n ? BM_W_START : 65536;
    for (int i = 0; i < 2048 * n; i++) s->w2[i] = i % n ? BM_W_START : 65536;
    for (int i = 0; i < BM_CONTEXTS * 256; i++) s->history_p[i] = 32768;
    uint16_t curve[33];
    for (int j = 0; j < 33; j++) curve[j] = (uint16_t)(bm_squash(s, (j - 16) * 128) * 16);
    for (int i = 0; i < 256; i++) memcpy(s->apm1 + i * 33, curve, sizeof curve);
    for (int i = 0; i < 65536; i++) memcpy(s->apm2 + i * 33, curve, sizeof curve);
    return s;
}

/* A copy of state s (NULL: no memory): a chain's stages forked, so a segment can be coded two ways
   from the same state and the smaller kept. */
bits_state *tzip_bits_clone(const bits_state *s) {
    bits_state *d = malloc(sizeof *d);
    if (!d) return NULL;
    *d = *s;
    const size_t n = (size_t)s->inputs;
    d->slots = malloc(sizeof *d->slots << BM_SLOT_BITS);
    d->w1 = malloc(sizeof *d->w1 * 256 * s->w1_sets * n);
    d->w2 = malloc(sizeof *d->w2 * 2048 * n);
    d->apm1 = malloc(sizeof *d->apm1 * 256 * 33);
    d->apm2 = malloc(sizeof *d->apm2 * 65536 * 33);
    if (!d->slots || !d->w1 || !d->w2 || !d->apm1 || !d->apm2) { tzip_bits_free(d); return NULL; }
    memcpy(d->slots, s->slots, sizeof *d->slots << BM_SLOT_BITS);
    memcpy(d->w1, s->w1, sizeof *d->w1 * 256 * s->w1_sets * n);
    memcpy(d->w2, s->w2, sizeof *d->w2 * 2048 * n);
    memcpy(d->apm1, s->apm1, sizeof *d->apm1 * 256 * 33);
    memcpy(d->apm2, s->apm2, sizeof *d->apm2 * 65536 * 33);
    return d;
}

/* The contexts of position t: orders 1-4 and 6, then for text the word so far, with one and two
   words before, with the column, and the byte above (same column, previous line) with the last
   byte; for binary data the byte two back, the pairs at gaps (2,3), (1,3), (4,8), (3,4), (1,5) and
   the triples (1,2,4), (1,6,7), which see through the operand bytes of instructions and the varying
   fields of records, the word so far (the strings inside binaries), and the bytes one and two
   records up, with each other and with the last byte, where a record length is detected. */
static void bm_contexts(bits_state *s, const uint8_t *h, int64_t t) {
    uint32_t c[9] = {0};
    for (int k = 1; k <= 8 && k <= t; k++) c[k] = h[t - k];
    const uint32_t o4 = c[1] | c[2] << 8 | c[3] << 16 | c[4] << 24;
    uint32_t v[BM_CONTEXTS] = {c[1], c[1] | c[2] << 8, c[1] | c[2] << 8 | c[3] << 16, o4, bm_hash(bm_hash(o4, c[5]), c[6])};
    if (s->contexts == TZIP_BITS_SPARSE) {
        v[5] = c[2]; v[6] = c[2] | c[3] << 8; v[7] = c[1] | c[3] << 8; v[8] = c[4] | c[8] << 8;
        v[9] = c[1] | c[2] << 8 | c[4] << 16; v[10] = s->word; v[11] = c[3] | c[4] << 8; v[12] = c[1] | c[5] << 8;
        v[13] = c[1] | c[6] << 8 | c[7] << 16;
        const int64_t r = s->record;  /* the bytes one and two records up */
        const uint32_t up = r && t >= r ? h[t - r] : 0, up2 = r && t >= 2 * r ? h[t - 2 * r] : 0;
        v[14] = bm_hash((uint32_t)r, up | up2 << 8); v[15] = bm_hash((uint32_t)r, up | c[1] << 8);
    } else {
        const uint32_t words = bm_hash(s->word, s->word1);
        const int64_t col = t - s->line_start;
        v[5] = s->word; v[6] = words; v[7] = bm_hash(words, s->word2);
        v[8] = bm_hash(s->word, (uint32_t)(col < BM_COL_MAX ? col : BM_COL_MAX)); v[9] = bm_hash(s->above, c[1]);
    }
    for (int i = 0; i < s->contexts_used; i++) s->ctx[i] = bm_hash((uint32_t)i + 1, v[i]);
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
    for (int i = 0; i < s->contexts_used; i++) out[i] = bm_bucket(s, i, nibble, write);
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
    for (int i = 0; i < s->contexts_used; i++) {
        const uint32_t v = bucket[i] ? bucket[i][word] : 0;
        nd->x[1 + i] = (v & 0xff) ? s->stretch[v >> 20] : 0;
        if (s->contexts == TZIP_BITS_SPARSE)
            nd->x[1 + BM_CONTEXTS + i] = (v & 0xff) ? s->stretch[s->history_p[i * 256 + ((v >> 8) & 255)] >> 4] : 0;
        if (i >= BM_WORD_CONTEXTS - 3 && i < BM_WORD_CONTEXTS) known = known * 2 + ((v & 0xff) != 0);
    }
    const int n = s->inputs;
    nd->x[n - 1] = 256;
    int band = 0;
    if (s->net) {  /* the network's own split of the node, and its band of the first weight sets */
        const int64_t *nc = s->net_cum;
        const int64_t nt = nc[base + 2 * half] - nc[base], no = nc[base + 2 * half] - nc[base + half];
        const int64_t q = (no * 4096 + nt / 2) / nt;
        nd->x[n - 2] = s->stretch[q < 1 ? 1 : q > 4095 ? 4095 : q];
        band = (int)(((int64_t)nd->x[n - 2] + 2048) * BM_NET_SETS >> 12);
    }
    nd->w1 = (c0 * s->w1_sets + band) * n;
    nd->w2 = (c0 * 8 + known) * n;
    int64_t a = 0, b = 0;
    for (int i = 0; i < n; i++) { a += (int64_t)nd->x[i] * s->w1[nd->w1 + i]; b += (int64_t)nd->x[i] * s->w2[nd->w2 + i]; }
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
    if (s->net) bm_cumulative(s->net_row, s->net_cum);
    memset(s->evaluated, 0, sizeof s->evaluated);
    bm_buckets(s, 0, 0, first);
    bm_descend(s, first, freq, t > 0 ? h[t - 1] : 0, 1, 0, (int64_t)1 << 32, p);
    normalise(p, freq);
}

/* A 16-bit probability of a 1 after `bit`, having seen n bits before: it moves 2/(2n + 3) of the way. */
static inline int32_t bm_adapt(int32_t p, int32_t n, int bit) {
    p += (int32_t)(((int64_t)((bit << 16) - p) * (131072 / (2 * n + 3))) >> 16);
    return p < 0 ? 0 : p > 65535 ? 65535 : p;
}

/* The sparse set's bit histories: a slot's last bits (up to seven, after a leading 1) index an
   adaptive probability per context, which learns what such a history predicts (a deterministic
   context's run, an alternation); returns the slot's history after `bit`. */
static uint32_t bm_history(bits_state *s, int i, uint32_t slot, int bit) {
    const uint32_t n = slot & 0xff, history = (slot >> 8) & 255;
    if (!n) return 2 + (uint32_t)bit;
    int32_t *p = &s->history_p[i * 256 + history], *seen = &s->history_n[i * 256 + history];
    *p = bm_adapt(*p, *seen, bit);
    if (*seen < BM_HISTORY_LIMIT) (*seen)++;
    const uint32_t next = history * 2 + (uint32_t)bit;
    return next < 256 ? next : (next & 127) | 128;
}

static inline int32_t bm_clamp_weight(int64_t w) { return (int32_t)(w < -BM_W_MAX ? -BM_W_MAX : w > BM_W_MAX ? BM_W_MAX : w); }

/* Node c0, as evaluated (nd), learns its bit: the weights, the curves, and each context's word. */
static void bm_learn(bits_state *s, const bm_node *nd, uint32_t *const *bucket, int c0, int depth, int bit) {
    const int32_t e1 = ((bit << 12) - bm_squash(s, nd->d1)) * BM_RATE, e2 = ((bit << 12) - bm_squash(s, nd->d2)) * BM_RATE;
    for (int i = 0; i < s->inputs; i++) {
        s->w1[nd->w1 + i] = bm_clamp_weight((int64_t)s->w1[nd->w1 + i] + ((nd->x[i] * e1) >> 14));
        s->w2[nd->w2 + i] = bm_clamp_weight((int64_t)s->w2[nd->w2 + i] + ((nd->x[i] * e2) >> 14));
    }
    const int32_t g = (bit << 16) + (bit << BM_APM_RATE) - 2 * bit;
    s->apm1[nd->apm1] = (uint16_t)(s->apm1[nd->apm1] + ((g - s->apm1[nd->apm1]) >> BM_APM_RATE));
    s->apm2[nd->apm2] = (uint16_t)(s->apm2[nd->apm2] + ((g - s->apm2[nd->apm2]) >> BM_APM_RATE));
    const int word = bm_word(c0, depth);
    for (int i = 0; i < s->contexts_used; i++) {
        uint32_t *slot = &bucket[i][word];
        const int32_t n = *slot & 0xff;
        uint32_t history = 0;
        if (s->contexts == TZIP_BITS_SPARSE) history = bm_history(s, i, *slot, bit);
        const int32_t q = bm_adapt(n ? (int32_t)(*slot >> 16) : 32768, n, bit);
        *slot = (uint32_t)q << 16 | history << 8 | (uint32_t)(n < BM_LIMIT ? n + 1 : BM_LIMIT);
    }
}

/* Fixed-length records (tables, database pages, relocations, pixel rows): a byte value recurring
   at one gap twice in a row votes for that gap as the record length; a candidate that outvotes
   the others (a majority vote) by more than BM_RECORD_VOTES becomes the record length. */
static void bm_record(bits_state *s, int y, int64_t t) {
    const int64_t gap = t - s->last_at[y];
    if (s->last_at[y] && gap == s->last_gap[y] && gap >= 2 && gap <= BM_RECORD_MAX) {
        if (gap == s->candidate) {
            if (++s->votes > BM_RECORD_VOTES) s->record = (int32_t)gap;
        } else if (s->votes > 0) s->votes--;
        else { s->candidate = (int32_t)gap; s->votes = 1; }
    }
    s->last_gap[y] = gap; s->last_at[y] = t;
}

/* After byte t: the word and line state (and the sparse set's record length) moves on. */
static void bm_advance(bits_state *s, const uint8_t *h, int64_t t) {
    const int y = h[t];
    if (s->contexts == TZIP_BITS_SPARSE) bm_record(s, y, t);
    const int lower = y >= 'A' && y <= 'Z' ? y + 32 : y;
    if (lower >= 'a' && lower <= 'z') s->word = bm_hash(s->word, (uint32_t)lower);
    else if (s->word) { s->word2 = s->word1; s->word1 = s->word; s->word = 0; }
    if (y == '\n') { s->previous_line = s->line_start; s->line_start = t + 1; }
    const int64_t above = s->previous_line + (t + 1 - s->line_start);
    s->above = above < s->line_start ? h[above] : 0;
}

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
        bm_learn(s, &nd, bucket, c0, depth, bit);
        c0 = 2 * c0 + bit;
    }
    bm_advance(s, h, t);
}

/* Byte t coded (decode = 0: h[t] given) or decoded into h[t] as eight bits with the coder: each
   node on the byte's path is evaluated (its buckets made where missing), codes its bit and learns
   it at once; freq: the incoming frequencies of position t. */
void bits_code(bits_state *s, uint8_t *h, int64_t t, const int32_t *freq, bit_coder *c, int decode) {
    const uint32_t c1 = t > 0 ? h[t - 1] : 0;
    uint32_t *bucket[BM_CONTEXTS];
    bm_contexts(s, h, t);
    bm_cumulative(freq, s->cum);
    int c0 = 1;
    for (int depth = 0; depth < 8; depth++) {
        if (depth % 4 == 0) bm_buckets(s, depth ? 16 + (uint32_t)(c0 & 15) : 0, 1, bucket);
        bm_node nd;
        bm_eval(s, bucket, c1, c0, depth, &nd);
        int bit;
        if (decode) bit = bc_decode(c, nd.pr);
        else { bit = (h[t] >> (7 - depth)) & 1; bc_encode(c, bit, nd.pr); }
        bm_learn(s, &nd, bucket, c0, depth, bit);
        c0 = 2 * c0 + bit;
    }
    if (decode) h[t] = (uint8_t)c0;
    bm_advance(s, h, t);
}

int tzip_bits_scan(const int32_t *squash, const int32_t *stretch, int32_t contexts, const uint8_t *sym, int64_t n,
                   int32_t *freqs) {
    bits_state *s = tzip_bits_new(squash, stretch, contexts);
    SCAN_WITH(bits, s)
}

void tzip_bits_keep(bits_state **states, int64_t b, const uint8_t *use, const int32_t *freqs) {
    for (int64_t i = 0; i < b; i++)
        if (use[i] && states[i]->net) memcpy(states[i]->net_row, freqs + i * 256, sizeof states[i]->net_row);
}

int tzip_bits_scan_net(const int32_t *squash, const int32_t *stretch, const uint8_t *sym, int64_t n,
                       const int32_t *net, int32_t *freqs) {
    bits_state *s = tzip_bits_new(squash, stretch, TZIP_BITS_NET);
    if (!s) return -2;
    for (int64_t t = 0; t < n; t++) {
        memcpy(s->net_row, net + t * 256, sizeof s->net_row);
        bits_predict(s, sym, t, freqs + t * 256);
        bits_update(s, sym, t);
    }
    tzip_bits_free(s);
    return 0;
}

BATCH_STEPS(bits, bits_state)
