"""Headerless pixels and samples: layouts guessed from the bytes themselves.

A fragment of a raw image or recording (a piece of a PGM after its header, a `.raw` or `.pcm`
file, a chunk a store wrote without its header) has no header to name its layout, so content
detection calls it binary, or text where its bytes happen to be printable, and the pixel and
sample models never run. Cut into 4 KiB pieces, the bench's images code about a third smaller
and its recordings a quarter smaller with their layout than as binary (docs/ABLATIONS.md).

`candidates` proposes the layouts the bytes look like: 16-bit little-endian PCM (mono or
stereo, at the byte alignment where a fixed predictor gains most) where a fixed predictor
saves at least PCM_GAIN bits a sample, and 8-bit pixels (1, 3 or 4 channels) where the
bytes repeat one row apart, with the row length where they repeat best and the channel
phase where pixels begin, where both a row up and a pixel left are close. A file that starts
with a format's signature (an executable, an archive, a database) is not headerless. The
thresholds only decide what is worth a trial: the compressor codes samples with each candidate
and with the detected layout and keeps the smallest (api.TzipCompressor), so a wrong guess
costs time; on a stream longer than its samples, a guess must win every sample.
"""

from __future__ import annotations

import numpy as np

from tzip.format.detect import UNBOUNDED, Split
from tzip.format.layout import Layout

MIN_BYTES = 256  # shorter inputs have too few samples or rows to tell, and too little to gain
PCM_GAIN = 0.25  # bits a sample the better of FLAC's fixed orders 1-2 must save over none
ROW_DIP = 0.5  # the row's mean squared difference against the median over all lags
PIXEL_CHANNELS = (1, 3, 4)  # gray, RGB, RGBA
PCM_CHANNELS = (1, 2)
SIGNATURES = (b"\x7fELF", b"MZ", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\x00asm",
              b"SQLite format 3\x00", b"PK\x03\x04", b"%PDF", b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd",
              b"BZh", b"!<arch>\n", b"Rar!", b"7z\xbc\xaf\x27\x1c")
TAR_MAGIC_AT = 257  # "ustar" in a tar's first header


def has_signature(data: bytes) -> bool:
    """Whether `data` starts as a known file format does (or is a tar): then it has a header."""
    return data.startswith(SIGNATURES) or data[TAR_MAGIC_AT : TAR_MAGIC_AT + 5] == b"ustar"


def pcm_gain(data: bytes, channels: int, align: int) -> float:
    """Bits a sample that the better of FLAC's fixed order-1 and order-2 predictors saves over
    the samples' spread, reading `data[align:]` as 16-bit little-endian frames of `channels`
    (a Laplacian's entropy grows with log2 of its mean absolute value)."""
    frame = 2 * channels
    n = (len(data) - align) // frame * frame
    if n < 16 * frame:
        return float("-inf")
    x = np.frombuffer(data[align : align + n], dtype="<i2").astype(np.int64).reshape(-1, channels)
    spread = np.abs(x - np.median(x, axis=0)).mean()
    order1 = np.abs(np.diff(x, axis=0)).mean()
    order2 = np.abs(np.diff(x, 2, axis=0)).mean()
    return float(np.log2(max(spread, 1.0) / max(min(order1, order2), 1.0)))


def lag_differences(data: bytes) -> np.ndarray:
    """Mean squared difference between the bytes `lag` apart, for every lag below len(data):
    one FFT autocorrelation and prefix sums of squares, O(n log n)."""
    v = np.frombuffer(data, dtype=np.uint8).astype(np.float64)
    v -= v.mean()
    n = len(v)
    f = np.fft.rfft(v, 2 * n)
    products = np.fft.irfft(f * np.conj(f), 2 * n)[:n]  # sum of v[i] * v[i - lag] over i >= lag
    squares = np.concatenate([[0.0], np.cumsum(v * v)])
    lags = np.arange(n)
    later = squares[n] - squares[lags]  # sum of v[i]^2 over i >= lag
    earlier = squares[n - lags]  # sum of v[i]^2 over i < n - lag
    out = np.full(n, np.inf)
    out[1:] = (later[1:] + earlier[1:] - 2 * products[1:]) / (n - lags[1:])
    return out


def pixel_phase(data: bytes, channels: int) -> int:
    """Bytes before the first whole pixel. The same channel's horizontal gradients move together
    within a pixel (an edge crosses all its channels at once) and less from one pixel's last
    channel to the next pixel's first, so the byte pair whose gradients differ most is the
    boundary between pixels."""
    if channels == 1:
        return 0
    v = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    gradient = v[channels:] - v[:-channels]  # gradient[j] belongs to byte j + channels
    jumps = np.abs(np.diff(gradient))  # jumps[j]: bytes j + channels and j + channels + 1
    last = int(np.argmax([jumps[k::channels].mean() for k in range(channels)]))
    return (last + 1) % channels  # byte `last` (mod channels) ends a pixel


def pcm_splits(data: bytes, every: bool = False) -> list[Split]:
    """16-bit PCM layouts worth a trial: for each channel count its better byte alignment, where
    that gains at least PCM_GAIN bits a sample (or always, with every=True)."""
    out = []
    for channels in PCM_CHANNELS:
        gain, align = max((pcm_gain(data, channels, a), a) for a in (0, 1))
        if gain > float("-inf") and (every or gain >= PCM_GAIN):
            out.append(Split(align, UNBOUNDED, Layout.audio(channels, 2), "pcm", True))
    return out


def image_splits(data: bytes, every: bool = False) -> list[Split]:
    """The 8-bit pixel layout worth a trial: the row length is the lag (at least 8 bytes, at most
    three quarters of the sample) where bytes repeat best; the channels are those of 1, 3 and 4
    that divide the row whose same-channel neighbours differ least. Worth it where the row's and
    the neighbours' differences both dip under ROW_DIP of the median lag's (or always, with
    every=True): records repeat a row apart too, but their neighbouring bytes differ."""
    if len(data) < MIN_BYTES:
        return []
    diffs = lag_differences(data)
    lo, hi = 8, len(data) * 3 // 4
    row = lo + int(np.argmin(diffs[lo:hi]))
    channels = min((c for c in PIXEL_CHANNELS if row % c == 0), key=lambda c: diffs[c])
    dip = ROW_DIP * np.median(diffs[lo:hi])
    if not np.isfinite(diffs[row]) or not (every or max(diffs[row], diffs[channels]) <= dip):
        return []
    return [Split(pixel_phase(data, channels), UNBOUNDED, Layout.image(channels, row), "pixels")]


def candidates(data: bytes, modality: str | None = None) -> list[Split]:
    """Headerless layouts for a sample of a stream detected as text or binary: images' and
    recordings' where the bytes look like them (modality None), or the asked modality's
    whatever they look like."""
    if len(data) < MIN_BYTES or modality not in (None, "image", "audio") or has_signature(data):
        return []
    out = []
    if modality in (None, "image"):
        out += image_splits(data, every=modality == "image")
    if modality in (None, "audio"):
        out += pcm_splits(data, every=modality == "audio")
    return out
