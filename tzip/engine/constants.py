"""The integer engine's fixed-point formats, shared by export, every backend and the stages.

Each number is part of the model-file and stream contract: changing one changes the integers
every engine computes (docs/DESIGN.md §2), so they live in one place.
"""

FREQ_BITS = 16  # the coder's frequencies: every byte value >= 1, total exactly 2^FREQ_BITS
UNIFORM_FREQ = 1 << (FREQ_BITS - 8)  # each byte value's frequency in the uniform distribution
SCORE_FRAC = 8  # attention scores and logits are in log2 units with 8 fractional bits
EXP_BITS = 15  # exp table: round(2^15 * 2^(-f/256)); sums over a row stay exact in int32 and float32
PROB_BITS = 15  # attention probabilities sum to at most 2^15
NORM_SCALE = 16  # RMSNorm output is quantised to int8 with step 1/NORM_SCALE (unit RMS -> 16)
NORM_RECIP_BITS = 32  # RMSNorm's reciprocal of the root mean square, in 1/2^32
RES_BITS = 6  # residual stream is int32 with step 2^-RES_BITS
RES_LIMIT = 2**20  # |residual| bound that keeps RMSNorm's float64 steps exact
FP32_EXACT = 2**24  # float32 sums of integers are exact below this
INT32_LIMIT = 2**31 - 1
MASKED = -(2**26)  # bias of an invisible key: its exp2 weight comes out 0
SCORE_LIMIT = 2**24  # |attention score| and |logit| bound the export must respect
U_MAX = (EXP_BITS + 1) * 256 - 1  # exp2 of anything further below the row max is 0
