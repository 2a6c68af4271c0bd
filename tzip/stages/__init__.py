"""The adaptive stages that rewrite the network's frequencies from the bytes coded so far (match
model, context counts, pixel and sample models, bit mixer), their shared protocol and mixing
primitives. Each is a Python reference and a binding to its C twin in tzip/native/."""
