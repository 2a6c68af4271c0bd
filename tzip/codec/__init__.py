"""Coding segments: the encoder's choice of method, the decoder, the range coder, chains of
segments and the worker processes that code segments in parallel."""
