"""The one exception users see from tzip."""


class TzipError(Exception):
    """Not a tzip stream, truncated, corrupted, unsupported version or unavailable model."""
