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
