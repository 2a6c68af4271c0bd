"""The mixing primitives the stages share, in exact integers: tabled logistic CDF, log2 and exp2,
squash/stretch, the geometric mix of distributions (p ~ f^a q^b), its gradient step, the NLMS
filter step, and the normalisation of weights into coder frequencies.

Tables are computed with Decimal arithmetic in its own context, which is specified to the digit,
so every machine computes the same integers (docs/DESIGN.md §2); tzip/native/mixing.h reads the
same tables from these arrays.
"""

from __future__ import annotations

import decimal

import numpy as np

from tzip.engine.constants import FREQ_BITS

ONE = 1 << FREQ_BITS
CDF_STEPS, CDF_RANGE = 32, 12  # the logistic CDF is tabled at z = i/32, |z| <= 12
CDF_ONE = ONE - 256  # the table's total; every byte then gets +1
LOG_ONE = 1024  # log2 in units of 1/1024 bit
MIX_MAX = 4 << 16
MIX_RATE = 7  # weight step: gradient (1/1024 bit) * 64 >> MIX_RATE (0.008 per bit)


_EXACT = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN)
_LN2 = _EXACT.ln(decimal.Decimal(2))


def _rounded(approx: np.ndarray, exact) -> np.ndarray:
    """Integers as Decimal arithmetic rounds the true values (half to even), from float64
    approximations within 1e-6 of them: only where a value lies that near a half does `exact(i)`,
    Decimal in its own 40-digit context, decide. Decimal is specified to the digit, so every
    machine (and any caller's decimal settings) gets these integers; a float libm alone need not."""
    out = np.floor(approx + 0.5)
    for i in np.flatnonzero(np.abs(approx - np.floor(approx) - 0.5) < 1e-6):
        out[i] = int(exact(int(i)).to_integral_value(context=_EXACT))
    return out.astype(np.int64)


def _cdf_exact(i: int) -> decimal.Decimal:
    """CDF_ONE * sigma(i / CDF_STEPS)."""
    return _EXACT.divide(CDF_ONE, 1 + _EXACT.exp(_EXACT.divide(-i, CDF_STEPS)))


def _log_exact(i: int) -> decimal.Decimal:
    """log2(1 + i/256) in 1/LOG_ONE bit."""
    return _EXACT.multiply(_EXACT.divide(_EXACT.ln(1 + _EXACT.divide(i, 256)), _LN2), LOG_ONE)


def _exp_exact(i: int) -> decimal.Decimal:
    """2^-(i/LOG_ONE) * 2^24."""
    return _EXACT.multiply(_EXACT.exp(_EXACT.multiply(_EXACT.divide(-i, LOG_ONE), _LN2)), 1 << 24)


def _squash_exact(i: int) -> decimal.Decimal:
    """4096 / (1 + e^(-d/256)) at d = i - 2048."""
    return _EXACT.divide(4096, 1 + _EXACT.exp(_EXACT.divide(2048 - i, 256)))


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logistic CDF (CDF_ONE * sigma(i/32)) for |i| <= 32 CDF_RANGE, log2(1 + i/256) and
    2^-(i/1024), exactly rounded."""
    z = np.arange(-CDF_RANGE * CDF_STEPS, CDF_RANGE * CDF_STEPS + 1)
    cdf = _rounded(CDF_ONE / (1 + np.exp(-z / CDF_STEPS)), lambda i: _cdf_exact(int(z[i])))
    log = _rounded(np.log2(1 + np.arange(257) / 256) * LOG_ONE, _log_exact)
    exp = _rounded(np.exp2(-np.arange(LOG_ONE) / LOG_ONE) * (1 << 24), _exp_exact)
    return cdf, log, exp


CDF, LOG_FRAC, EXP2 = _tables()


def _log2_table() -> np.ndarray:
    """-log2(f / 2^16) in 1/1024 bit for f = 0..2^16 (entry 0 unused): a cost, never negative."""
    f = np.arange(ONE + 1, dtype=np.int64)
    f[0] = 1
    e = np.frexp(f.astype(np.float64))[1].astype(np.int64) - 1  # bit length - 1, exact
    m = (f << 16) >> e  # mantissa in [2^16, 2^17)
    i, low = (m - (1 << 16)) >> 8, m & 255
    frac = LOG_FRAC[i] + (((LOG_FRAC[np.minimum(i + 1, 256)] - LOG_FRAC[i]) * low) >> 8)
    return (FREQ_BITS - e) * LOG_ONE - frac


COST = _log2_table()


def floor_div(a: int, b: int) -> int:
    return a // b  # Python floors; the C stages do the same explicitly for negative a


def cdf_at(num: np.ndarray, den: int) -> np.ndarray:
    """The logistic CDF (total CDF_ONE) at z = num / (32 den): the table's entry below and the
    fraction times a 32-bit reciprocal of den (no division per point); 0 and CDF_ONE outside."""
    zi = num // den
    frac = num - zi * den
    idx = zi + CDF_RANGE * CDF_STEPS
    j = np.clip(idx, 0, len(CDF) - 2)
    c = CDF[j] + (((CDF[j + 1] - CDF[j]) * frac * ((1 << 32) // den)) >> 32)
    return np.where(idx < 0, 0, np.where(idx >= len(CDF) - 1, CDF_ONE, c))


def normalise(p: np.ndarray) -> np.ndarray:
    """Weights (sum 1..2^32) to frequencies: total 2^16, each >= 1, the leftover to the most probable."""
    r = (1 << 48) // int(p.sum())
    out = np.maximum((p * r) >> 32, 1)
    out[int(np.argmax(out))] += ONE - int(out.sum())
    return out


def mix(inputs: tuple[np.ndarray, ...], weights: tuple[int, ...]) -> np.ndarray:
    """p ~ f^a q^b ... in integers (weights in 1/2^16), as frequencies."""
    z = sum(w * COST[x] for x, w in zip(inputs, weights)) >> 16  # cost of each byte under the mix, 1/1024 bit
    d = z - z.min()
    return normalise(np.where(d >> 10 < 24, EXP2[d & (LOG_ONE - 1)] >> np.minimum(d >> 10, 63), 0))


def mixing_steps(out: np.ndarray, inputs: tuple[np.ndarray, ...], sym: int) -> tuple[int, ...]:
    """The gradient steps of the mixing weights on the code length of `sym` under the mix `out`."""
    steps = []
    for cost in (COST[x] for x in inputs):
        expected = int((out * cost).sum()) >> FREQ_BITS
        steps.append(floor_div((expected - int(cost[sym])) * 64, 1 << MIX_RATE))
    return tuple(steps)


def step_weights(weights: list[int], steps: tuple[int, ...]) -> None:
    """Mixing weights moved by `steps`, each kept within [0, MIX_MAX] (in place)."""
    for i, step in enumerate(steps):
        weights[i] = min(max(weights[i] + step, 0), MIX_MAX)


def learn(weights: list[int], out: np.ndarray, inputs: tuple[np.ndarray, ...], sym: int) -> None:
    """One gradient step of the mixing weights `weights` (updated in place)."""
    step_weights(weights, mixing_steps(out, inputs, sym))


def nlms(weights: list[int], taps: list[int], error: int, step: int, floor: int, limit: int) -> None:
    """One normalised LMS step, w += err * step * tap / (floor + sum tap^2) (weights in 1/2^16), floored
    in two stages as the C stages do and clamped to +-limit."""
    factor = floor_div(error * step << 16, floor + sum(d * d for d in taps))
    for k, d in enumerate(taps):
        weights[k] = min(max(weights[k] + floor_div(factor * d, 1 << 16), -limit), limit)


_TABLES = [np.ascontiguousarray(a, dtype=np.int32) for a in (CDF, COST, EXP2)]


def logistic_tables() -> tuple[int, int, int]:
    """The exact tables, computed here once, as the pointers the C stages read them from (they live as
    long as the module, so native states may keep them)."""
    return tuple(a.ctypes.data for a in _TABLES)


def _squash_tables() -> tuple[np.ndarray, np.ndarray]:
    """squash(d) = 4096 / (1 + e^(-d/256)) rounded, clamped to 1..4095, for d = -2048..2047, and
    stretch(p), the least d in -2047..2047 with squash(d) >= p (2047 if none), for p = 0..4095."""
    d = np.arange(-2048, 2048)
    squash = np.clip(_rounded(4096 / (1 + np.exp(-d / 256)), _squash_exact), 1, 4095)
    inner = squash[1:]  # d = -2047..2047
    stretch = np.minimum(np.searchsorted(inner, np.arange(4096), side="left"), len(inner) - 1) - 2047
    return squash.astype(np.int64), stretch.astype(np.int64)


SQUASH, STRETCH = _squash_tables()
_SQUASH, _STRETCH = SQUASH.tolist(), STRETCH.tolist()
_SQUASH_TABLES = [np.ascontiguousarray(a, dtype=np.int32) for a in (SQUASH, STRETCH)]


def squash_tables() -> tuple[int, int]:
    """The tables' pointers for the C stages (they live as long as the module)."""
    return tuple(a.ctypes.data for a in _SQUASH_TABLES)


def squash(d: int) -> int:
    return _SQUASH[min(max(d, -2047), 2047) + 2048]


def octave_bucket(v: int, per_octave: int, offset: int) -> int:
    """v's size on a log scale, 0..15 (common.h's octave_bucket): `per_octave` (1 or 2) buckets an
    octave from bit length and, for 2, the bit below the top one, less `offset`. A hint's confidence."""
    u = min(max(int(v), 1), 0x7FFFFFFF)
    n = u.bit_length()
    b = 2 * (n - 1) + ((u >> (n - 2)) & 1 if n >= 2 else 0) if per_octave == 2 else n - 1
    return min(max(b - offset, 0), 15)
