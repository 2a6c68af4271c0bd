"""Inference only: the integer model file, the model registry, the PyTorch reference engine, the C
engine's binding and the Triton backend. Nothing here imports the training code."""
