/* The context-count model (tzip/counts.py is the reference; the same integers): for each of up to
 * eight context orders, a hash table from the context's bytes to the counts of the bytes that
 * followed it, which blend into the frequencies with a weight (beta) learnt per count and number of
 * distinct successors. Tables grow as contexts appear.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tzip.h"

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

struct count_state {
    int orders;
    int order[COUNT_MAX_ORDERS];
    int32_t beta[COUNT_MAX_ORDERS][COUNT_N_CELLS][COUNT_D_CELLS];
    count_table t[COUNT_MAX_ORDERS];
};

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

/* A copy of state s, tables and all (NULL: no memory): a chain's stages forked, so a segment can be
   coded two ways from the same state and the smaller kept. */
count_state *tzip_counts_clone(const count_state *s) {
    count_state *d = calloc(1, sizeof(count_state));
    if (!d) return NULL;
    d->orders = s->orders;
    memcpy(d->order, s->order, sizeof d->order);
    memcpy(d->beta, s->beta, sizeof d->beta);
    for (int k = 0; k < s->orders; k++) {
        const count_table *c = &s->t[k];
        count_table *e = &d->t[k];
        *e = *c;
        e->key = malloc(c->cap * sizeof(uint64_t));
        e->head = malloc(c->cap * sizeof(int32_t));
        e->total = malloc(c->cap * sizeof(int32_t));
        e->distinct = malloc(c->cap * sizeof(int32_t));
        e->next = malloc(c->node_cap * sizeof(int32_t));
        e->sym = malloc(c->node_cap);
        e->count = malloc(c->node_cap * sizeof(int32_t));
        if (!e->key || !e->head || !e->total || !e->distinct || !e->next || !e->sym || !e->count) {
            d->orders = k + 1;
            tzip_counts_free(d);
            return NULL;
        }
        memcpy(e->key, c->key, c->cap * sizeof(uint64_t));
        memcpy(e->head, c->head, c->cap * sizeof(int32_t));
        memcpy(e->total, c->total, c->cap * sizeof(int32_t));
        memcpy(e->distinct, c->distinct, c->cap * sizeof(int32_t));
        memcpy(e->next, c->next, c->nodes * sizeof(int32_t));
        memcpy(e->sym, c->sym, c->nodes);
        memcpy(e->count, c->count, c->nodes * sizeof(int32_t));
    }
    return d;
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
