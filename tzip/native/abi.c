/* The library's account of the interface it was built with: TZIP_ABI_VERSION and the sizes and
 * counts tzip.h declares, as this build sees them. The Python loader compares them with the header
 * it parsed, so a library built from another header is refused instead of misreading arguments.
 */
#include <stdint.h>

#include "tzip.h"

int64_t tzip_abi_version(void) { return TZIP_ABI_VERSION; }

int64_t tzip_abi_sizeof(int32_t what) {
    switch (what) {
    case TZIP_ABI_SIZEOF_DECODE_TURN: return (int64_t)sizeof(tzip_decode_turn);
    case TZIP_ABI_CFG_COUNT: return TZIP_CFG_COUNT;
    case TZIP_ABI_PARAM_COUNT: return TZIP_PARAM_COUNT;
    case TZIP_ABI_LAYER_COUNT: return TZIP_LAYER_COUNT;
    case TZIP_ABI_STAGE_KIND_COUNT: return TZIP_STAGE_KIND_COUNT;
    case TZIP_ABI_KEY_BLOCK: return TZIP_KEY_BLOCK;
    case TZIP_ABI_MATCH_STATE_SIZE: return tzip_match_state_size();
    default: return -1;
    }
}

int32_t tzip_cpu_level(void) {
#if defined(__x86_64__) && defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 12)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512vnni")) return TZIP_CPU_AVX512_VNNI;
    if (__builtin_cpu_supports("x86-64-v3")) return TZIP_CPU_AVX2;
#endif
    return TZIP_CPU_PORTABLE;
}

int32_t tzip_build_level(void) {
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
    return TZIP_CPU_AVX512_VNNI;
#elif defined(__AVX2__)
    return TZIP_CPU_AVX2;
#else
    return TZIP_CPU_PORTABLE;
#endif
}
