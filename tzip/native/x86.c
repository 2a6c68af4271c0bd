/* The x86 call/jump filter (tzip/codec/x86.py is the reference; the same bytes): the 32-bit
 * relative target after each E8 (call) or E9 (jmp) opcode becomes absolute, so every call to one
 * function carries the same four bytes and the match model, the counts and the network see them
 * repeat. As xz's BCJ, only targets whose top byte is 00 or FF (within 16 MiB, where real code
 * lies) are changed, and they change within that set (25-bit arithmetic, sign-extended): the
 * decoder finds exactly the positions the encoder changed and undoes each. An operand that
 * overlaps the one of an opcode left alone is left alone too, so no change ever reaches the
 * bytes on which the decoder decides.
 */
#include <stdint.h>

#include "tzip.h"

void tzip_x86_filter(uint8_t *buf, int64_t n, int64_t base, int32_t decode) {
    int64_t i = 0, passed = -5; /* the last opcode left alone */
    while (i + 4 < n) {
        if ((buf[i] & 0xFE) != 0xE8) {
            i++;
            continue;
        }
        /* left alone: a target out of range, or an operand overlapping the one of an opcode just
           left alone (changing it could bring that one's top byte into range for the decoder) */
        if ((buf[i + 4] != 0x00 && buf[i + 4] != 0xFF) || i - passed <= 4) {
            passed = i++;
            continue;
        }
        const uint32_t x = (uint32_t)buf[i + 1] | (uint32_t)buf[i + 2] << 8 | (uint32_t)buf[i + 3] << 16
                           | (uint32_t)buf[i + 4] << 24;
        const uint32_t at = (uint32_t)(base + i + 5); /* the next instruction's address */
        uint32_t y = (decode ? x - at : x + at) & 0x1FFFFFFu;
        if (y & 0x1000000u) y |= 0xFE000000u;
        buf[i + 1] = (uint8_t)y; buf[i + 2] = (uint8_t)(y >> 8); buf[i + 3] = (uint8_t)(y >> 16);
        buf[i + 4] = (uint8_t)(y >> 24);
        i += 5;
    }
}
