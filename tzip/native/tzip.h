/* The interface between tzip's C library and Python, and the only place it is declared: Python's
 * loader parses this file and sets every function's ctypes types from it. So everything that
 * crosses is written here in a plain, regular form: integer #defines, enums (indices into arrays
 * Python fills), the one struct Python builds, and every exported function, each prototype
 * starting with TZIP_API and using only void, int, int32_t, int64_t, uint8_t, pointers and const.
 * A library reports TZIP_ABI_VERSION and the sizes below (tzip_abi_version, tzip_abi_sizeof), so a
 * loader can refuse one built from another version of this header. Change TZIP_ABI_VERSION with
 * any change to what crosses.
 *
 * Every entry point is exact integer arithmetic: the same integers as the PyTorch engine and the
 * Python stages (match, counts, pixels, samples, bits) on every CPU.
 */
#ifndef TZIP_H
#define TZIP_H

#include <stdint.h>

#define TZIP_ABI_VERSION 6

/* Each byte value's frequency in the uniform distribution (of 2^16): the classical way's input. */
#define TZIP_UNIFORM_FREQ 256

#if defined(__GNUC__)
#define TZIP_API __attribute__((visibility("default")))
#else
#define TZIP_API
#endif

/* Keys of a decoder's ring lie in blocks of this many keys (Python sizes the key buffers with it). */
#define TZIP_KEY_BLOCK 16

/* int32 entries of one match-model state (tzip/match.py's STATE_SIZE): pointer, length, prediction,
 * cell, then 24 x 16 hit rates, then a 2^16-entry hash table. */
#define TZIP_MATCH_STATE_SIZE 65924

/* The model configuration: an int32 array indexed by these (tzip_step's and tzip_parallel's cfg). */
enum tzip_cfg {
    TZIP_CFG_D_MODEL,
    TZIP_CFG_N_LAYERS,
    TZIP_CFG_N_HEADS,
    TZIP_CFG_N_KV_HEADS,
    TZIP_CFG_D_FF,
    TZIP_CFG_WINDOW,
    TZIP_CFG_BLOCK,
    TZIP_CFG_MEM_SLOTS,
    TZIP_CFG_RING,
    TZIP_CFG_USE_MEMORY,
    TZIP_CFG_N_FEATURES,
    TZIP_CFG_PHASES,
    TZIP_CFG_U_MAX,
    TZIP_CFG_PROB_BITS,
    TZIP_CFG_EXP_BITS,
    TZIP_CFG_FREQ_BITS,
    TZIP_CFG_NORM_SHIFT,
    TZIP_CFG_RES_LIMIT,
    TZIP_CFG_MASKED,
    TZIP_CFG_N_HINTS, /* hint slots the model embeds (0 or TZIP_N_HINTS) */
    TZIP_CFG_COUNT
};

/* The weights: an array of pointers, TZIP_PARAM_COUNT model-wide ones indexed by these, then
 * TZIP_LAYER_COUNT per layer (below). A linear layer is four arrays: _W the int8 weights widened to
 * int16 [out][in], _M and _S the int32 requantisation multiplier and shift per output, _P the same
 * weights packed for the AVX-512 VNNI tiles (engine.c's linear_tiles). */
enum tzip_param {
    TZIP_PARAM_FEATURES,
    TZIP_PARAM_PHASE,
    TZIP_PARAM_EXP,
    TZIP_PARAM_ALIBI,
    TZIP_PARAM_HEAD_W,
    TZIP_PARAM_HEAD_M,
    TZIP_PARAM_HEAD_S,
    TZIP_PARAM_HEAD_P,
    TZIP_PARAM_HINTS, /* [n_hints][257][d] int32, the hints' embedding tables (unread without hints) */
    TZIP_PARAM_COUNT
};

/* One layer's slice of the weights, at TZIP_PARAM_COUNT + layer * TZIP_LAYER_COUNT. */
enum tzip_layer {
    TZIP_LAYER_QKV_W,
    TZIP_LAYER_QKV_M,
    TZIP_LAYER_QKV_S,
    TZIP_LAYER_QKV_P,
    TZIP_LAYER_PROJ_W,
    TZIP_LAYER_PROJ_M,
    TZIP_LAYER_PROJ_S,
    TZIP_LAYER_PROJ_P,
    TZIP_LAYER_UP_W,
    TZIP_LAYER_UP_M,
    TZIP_LAYER_UP_S,
    TZIP_LAYER_UP_P,
    TZIP_LAYER_DOWN_W,
    TZIP_LAYER_DOWN_M,
    TZIP_LAYER_DOWN_S,
    TZIP_LAYER_DOWN_P,
    TZIP_LAYER_SCORE_M,
    TZIP_LAYER_SCORE_S,
    TZIP_LAYER_OUT_M,
    TZIP_LAYER_OUT_S,
    TZIP_LAYER_COUNT
};

/* The adaptive stages, as tzip_stages_* and tzip_turn_* read a chain's kinds array. */
enum tzip_stage_kind {
    TZIP_STAGE_MATCH,
    TZIP_STAGE_COUNTS,
    TZIP_STAGE_PIXELS,
    TZIP_STAGE_SAMPLES,
    TZIP_STAGE_BITS,
    TZIP_STAGE_KIND_COUNT
};

/* The bit mixer's context sets (bits.c): beside orders 1-4 and 6, text's words, columns and the byte
 * above, or binary data's (bytes, pairs and triples at gaps up to 8, as in fixed-width fields and
 * instructions; the word so far; the bytes one and two detected records up; each slot's bit history);
 * or text's with the network's own row as one more input, which also chooses the first weight set
 * (the row as the chain's first stage received it, kept by tzip_bits_keep). */
enum tzip_bits_contexts {
    TZIP_BITS_WORDS,
    TZIP_BITS_SPARSE,
    TZIP_BITS_NET,
    TZIP_BITS_CONTEXTS_COUNT
};

/* The stage a hint comes from (hints.c): the match model for text and binary, the pixel model's
 * centre for images, the sample model's for 16-bit audio. */
enum tzip_hint_kind {
    TZIP_HINT_MATCH,
    TZIP_HINT_PIXELS,
    TZIP_HINT_SAMPLES,
    TZIP_HINT_KIND_COUNT
};

/* Hints per position: a predicted byte and its confidence bucket (0..15), 256 for none. */
#define TZIP_N_HINTS 2

/* What tzip_abi_sizeof reports: TZIP_ABI_SIZEOF_X is sizeof(tzip_X), any other TZIP_ABI_X the value
 * of TZIP_X as the library was built; -1 for an item the library does not know. */
enum tzip_abi_item {
    TZIP_ABI_SIZEOF_DECODE_TURN,
    TZIP_ABI_CFG_COUNT,
    TZIP_ABI_PARAM_COUNT,
    TZIP_ABI_LAYER_COUNT,
    TZIP_ABI_STAGE_KIND_COUNT,
    TZIP_ABI_KEY_BLOCK,
    TZIP_ABI_MATCH_STATE_SIZE,
    TZIP_ABI_ITEM_COUNT
};

/* A batch's hint states (hints.c), opaque to Python. */
typedef struct hint_state hint_state;

/* The decode loop's work at one position (tzip_turn_predict, tzip_turn_learn): tzip_step's
 * arguments, then tzip_stages_*'s, the stages' history, and probs [batch][256] for the coder. */
typedef struct tzip_decode_turn {
    const int32_t *cfg;
    void **params;
    int64_t batch;
    uint8_t *history;
    int64_t stride;
    const int32_t *offsets;
    const int32_t *modality;
    const int32_t *period;
    int16_t *keys;
    int16_t *vals;
    int32_t *block_sum;
    int32_t *freq;
    int64_t n_stages;
    const int32_t *kinds;
    void *const *states;
    const uint8_t *const *masks;
    uint8_t *stage_history;
    int64_t stage_stride;
    float *probs;
    hint_state *const *hint_states; /* NULL for a model without hints; else the batch's hints.c states */
    const uint8_t *hint_mask;
    int16_t *hints;                 /* [batch][TZIP_N_HINTS], this step's */
} tzip_decode_turn;

/* The stages' states, opaque to Python (handles from tzip_*_new). */
typedef struct count_state count_state;
typedef struct pixel_state pixel_state;
typedef struct sample_state sample_state;
typedef struct bits_state bits_state;

/* ---- The ABI itself -------------------------------------------------------------------------- */

/* The instruction sets a build may use, best last: the package builds the library once per level
 * and the loader takes the best one this CPU runs (every level computes the same integers). */
enum tzip_cpu_level {
    TZIP_CPU_PORTABLE,    /* x86-64 baseline, or any other architecture */
    TZIP_CPU_AVX2,        /* x86-64-v3: AVX2, FMA, BMI1/2 */
    TZIP_CPU_AVX512_VNNI, /* x86-64-v4 with AVX-512 VNNI: engine.c's int8 tiles */
    TZIP_CPU_LEVEL_COUNT
};

/* The best tzip_cpu_level this CPU runs (asked of the portable build). */
TZIP_API int32_t tzip_cpu_level(void);

/* The level this library was built for. */
TZIP_API int32_t tzip_build_level(void);

TZIP_API int64_t tzip_abi_version(void);
TZIP_API int64_t tzip_abi_sizeof(int32_t what);

/* ---- The network (engine.c) ------------------------------------------------------------------
 * tzip_step: one position t for `batch` segments. history [batch][stride] uint8, offsets
 * [batch][n_features], modality/period [batch], hints [batch][TZIP_N_HINTS] int16 (NULL: none); keys [layers][batch][nkv][kpad * hd] int16 in blocks
 * of TZIP_KEY_BLOCK keys (kpad = n_keys rounded up to whole blocks, zeros at first), vals
 * [layers][batch][nkv][n_keys][hd] int16; block_sum [layers][batch][d]; freq out [batch][256] int32.
 * tzip_parallel: the teacher-forced pass over one segment of T bytes, hints [T][TZIP_N_HINTS] (or
 * NULL), freq [T][256]; threads = 2
 * runs the second half on a second thread (the same integers).
 * Both return 0, -1 for a configuration outside the limits, tzip_parallel -2 when memory runs out. */

TZIP_API int tzip_step(const int32_t *cfg, void **params, int64_t t, int batch, const uint8_t *history, int64_t stride,
                       const int32_t *offsets, const int32_t *modality, const int32_t *period,
                       const int16_t *hints, int16_t *keys, int16_t *vals, int32_t *block_sum, int32_t *freq);
TZIP_API int tzip_parallel(const int32_t *cfg, void **params, const uint8_t *data, int64_t T, const int32_t *offsets,
                           int32_t modality, int32_t period, const int16_t *hints, int32_t *freq, int32_t threads);

/* The same for rows row0..row0+rows-1 only (freq [rows][256]): each piece starts a receptive
 * field early, so a segment coded in pieces gets exactly the whole pass's integers. -1 also for
 * a range outside 0..T. */
TZIP_API int tzip_parallel_rows(const int32_t *cfg, void **params, const uint8_t *data, int64_t T,
                                const int32_t *offsets, int32_t modality, int32_t period, const int16_t *hints,
                                int64_t row0, int64_t rows, int32_t *freq, int32_t threads);

/* ---- The stages -------------------------------------------------------------------------------
 * Each stage rewrites frequencies [256] (summing to 2^16) of position t from the bytes before it.
 * _scan: a whole segment sym[0..n-1], freqs [n][256] rewritten in place; 0, or -2 when a state
 * cannot be allocated. _predict/_update: one position of a decode batch of b segments, history
 * [b][stride], only the segments `use` flags. _new returns NULL for bad arguments or no memory;
 * _clone a copy of a state (a chain forked to code a segment two ways), NULL for no memory. */

TZIP_API int tzip_match_scan(const uint8_t *sym, int64_t n, int32_t *freqs);
TZIP_API void tzip_match_predict(int32_t *states, int64_t b, const uint8_t *hist, int64_t stride, const uint8_t *use,
                                 int32_t *freqs);
TZIP_API void tzip_match_update(int32_t *states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                const uint8_t *use);
TZIP_API int64_t tzip_match_state_size(void);

TZIP_API count_state *tzip_counts_new(int32_t orders, const int32_t *order, const int32_t *beta);
TZIP_API void tzip_counts_free(count_state *s);
TZIP_API count_state *tzip_counts_clone(const count_state *s);
TZIP_API int tzip_counts_scan(int32_t orders, const int32_t *order, const int32_t *beta, const uint8_t *sym, int64_t n,
                              int32_t *freqs);
TZIP_API void tzip_counts_predict(count_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                  const uint8_t *use, int32_t *freqs);
TZIP_API int tzip_counts_update(count_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                const uint8_t *use);

TZIP_API pixel_state *tzip_pixels_new(int64_t row, int64_t ch, int64_t len, const int32_t *cdf, const int32_t *cost,
                                      const int32_t *exp2);
TZIP_API void tzip_pixels_free(pixel_state *s);
TZIP_API int tzip_pixels_scan(int64_t row, int64_t ch, const int32_t *cdf, const int32_t *cost, const int32_t *exp2,
                              const uint8_t *sym, int64_t n, int32_t *freqs);
TZIP_API void tzip_pixels_predict(pixel_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                  const uint8_t *use, int32_t *freqs);
TZIP_API void tzip_pixels_update(pixel_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                 const uint8_t *use);

TZIP_API sample_state *tzip_samples_new(int64_t channels, int64_t len, const int32_t *cdf, const int32_t *cost,
                                        const int32_t *exp2);
TZIP_API void tzip_samples_free(sample_state *s);
TZIP_API int tzip_samples_scan(int64_t channels, const int32_t *cdf, const int32_t *cost, const int32_t *exp2,
                               const uint8_t *sym, int64_t n, int32_t *freqs);
TZIP_API void tzip_samples_predict(sample_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                   const uint8_t *use, int32_t *freqs);
TZIP_API void tzip_samples_update(sample_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                  const uint8_t *use);

TZIP_API bits_state *tzip_bits_new(const int32_t *squash, const int32_t *stretch, int32_t contexts);
TZIP_API void tzip_bits_free(bits_state *s);
TZIP_API bits_state *tzip_bits_clone(const bits_state *s);
TZIP_API int tzip_bits_scan(const int32_t *squash, const int32_t *stretch, int32_t contexts, const uint8_t *sym,
                            int64_t n, int32_t *freqs);
TZIP_API void tzip_bits_predict(bits_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                const uint8_t *use, int32_t *freqs);
TZIP_API void tzip_bits_update(bits_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                               const uint8_t *use);
/* The network's rows of a step, freqs [b][256] before any stage: kept by the flagged segments' mixers
 * of the TZIP_BITS_NET set for their next predict (tzip_stages_predict keeps them for every batch it
 * runs, tzip_stages_scan_net the rows it is given). The bit-by-bit coder (tzip_classical_*) feeds a
 * uniform distribution and keeps no row: it is for the other sets only. */
TZIP_API void tzip_bits_keep(bits_state **states, int64_t b, const uint8_t *use, const int32_t *freqs);
/* tzip_bits_scan for the TZIP_BITS_NET set: net [n][256] are the network's rows, freqs the incoming. */
TZIP_API int tzip_bits_scan_net(const int32_t *squash, const int32_t *stretch, const uint8_t *sym, int64_t n,
                                const int32_t *net, int32_t *freqs);

/* ---- Hints (hints.c) --------------------------------------------------------------------------
 * The stages' own predictions as the network's inputs: hints [n][TZIP_N_HINTS] int16 of positions
 * 0..n-1 of a segment, each from the bytes before it (a stage run alone, without the network).
 * kind: enum tzip_hint_kind; row and channels: an image's row bytes and channels, or audio's
 * channels (row unused); len: the segment's length. _scan: a whole segment, 0, -1 for bad
 * arguments, -2 when memory runs out. _predict/_update: one position of a decode batch, hints
 * [b][TZIP_N_HINTS] out for the segments `use` flags. */

TZIP_API hint_state *tzip_hints_new(int32_t kind, int64_t row, int64_t channels, int64_t len);
TZIP_API void tzip_hints_free(hint_state *s);
TZIP_API int tzip_hints_scan(int32_t kind, int64_t row, int64_t channels, const uint8_t *sym, int64_t n,
                             int16_t *hints);
TZIP_API void tzip_hints_predict(hint_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                 const uint8_t *use, int16_t *hints);
TZIP_API void tzip_hints_update(hint_state **states, int64_t b, const uint8_t *hist, int64_t stride, int64_t t,
                                const uint8_t *use);

/* ---- The x86 filter (x86.c) -------------------------------------------------------------------
 * buf [n] rewritten in place: E8/E9 call and jump targets made absolute (decode = 0) or relative
 * again (decode = 1); base: buf[0]'s position in the stream. */

TZIP_API void tzip_x86_filter(uint8_t *buf, int64_t n, int64_t base, int32_t decode);

/* ---- A chain of stages in one call (stages.c) -------------------------------------------------
 * kinds [n] (enum tzip_stage_kind), states[k] the match model's state array or another stage's
 * array of handles, masks[k] its segments. _update and _scan return 0, or the number of the stage
 * that could not grow its state, plus one. _scan runs a batch of one over positions t0..t0+n-1. */

TZIP_API void tzip_stages_predict(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                                  int64_t b, const uint8_t *hist, int64_t stride, int64_t t, int32_t *freqs);
TZIP_API int64_t tzip_stages_update(int64_t n, const int32_t *kinds, void *const *states, const uint8_t *const *masks,
                                    int64_t b, const uint8_t *hist, int64_t stride, int64_t t);
TZIP_API int64_t tzip_stages_scan(int64_t n_stages, const int32_t *kinds, void *const *states,
                                  const uint8_t *const *masks, const uint8_t *hist, int64_t t0, int64_t n,
                                  int32_t *freqs);
/* _scan where the rows reach the stages after others have rewritten them: net [n][256] are the
 * network's rows, which a bit mixer of the net set keeps (_scan keeps freqs' rows as they come). */
TZIP_API int64_t tzip_stages_scan_net(int64_t n_stages, const int32_t *kinds, void *const *states,
                                      const uint8_t *const *masks, const uint8_t *hist, int64_t t0, int64_t n,
                                      int32_t *freqs, const int32_t *net);

/* The classical way (method 10): a chain's stages (a batch of one, as _scan takes them; the last
 * the bit mixer) over positions t0..t0+n-1 of hist from the uniform distribution, each byte coded
 * as the bit mixer's eight decisions by a binary arithmetic coder. _encode: hist holds the bytes;
 * the coded bytes into out [cap]; returns their number, -1 where more than cap, -2 for a chain
 * that does not end with the bit mixer, -2 - k where stage k (from 1) could not grow its state.
 * _decode: reads coded [len] and writes the bytes into hist; returns 0 or as _encode. */
TZIP_API int64_t tzip_classical_encode(int64_t n_stages, const int32_t *kinds, void *const *states,
                                       const uint8_t *const *masks, uint8_t *hist, int64_t t0, int64_t n,
                                       uint8_t *out, int64_t cap);
TZIP_API int64_t tzip_classical_decode(int64_t n_stages, const int32_t *kinds, void *const *states,
                                       const uint8_t *const *masks, uint8_t *hist, int64_t t0, int64_t n,
                                       const uint8_t *coded, int64_t len);

/* The classical way's encoding in two halves, for a pipeline (the rows of positions ahead on one
 * thread while the bit mixer codes those before on another), which together give what _encode
 * gives: _rows writes the incoming frequencies of positions t0..t0+n-1 into rows [n][256] (the
 * uniform distribution through every stage but the last, which learn the bytes); _code codes rows
 * written by _rows with the last stage, the bit mixer, into out [cap] through a coder carried in
 * coder[3] from call to call ({0, 0xffffffff, 0} to start). _code with flush ends the body and
 * returns its length, -1 where more than cap; else 0; -2 for a chain that does not end with the bit
 * mixer, a coder state no call could leave, or no rows. _rows returns 0, or -2 and -2 - k as
 * _encode does. */
TZIP_API int64_t tzip_classical_rows(int64_t n_stages, const int32_t *kinds, void *const *states,
                                     const uint8_t *const *masks, const uint8_t *hist, int64_t t0, int64_t n,
                                     int32_t *rows);
TZIP_API int64_t tzip_classical_code(int64_t n_stages, const int32_t *kinds, void *const *states,
                                     const uint8_t *const *masks, uint8_t *hist, int64_t t0, int64_t n,
                                     const int32_t *rows, uint8_t *out, int64_t cap, int64_t *coder, int32_t flush);

/* The network's step at its position t, the stages' predict at position ts of their history, and
 * the frequencies as float32 into probs; returns tzip_step's status. */
TZIP_API int tzip_turn_predict(const tzip_decode_turn *a, int64_t t, int64_t ts);
/* The bytes decoded at t (ts) into both histories, then every stage learns; returns what
 * tzip_stages_update returns. */
TZIP_API int64_t tzip_turn_learn(const tzip_decode_turn *a, int64_t t, int64_t ts, const int64_t *symbols);

#endif
