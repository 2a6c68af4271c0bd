"""`python -m tzip.train`: the training entry (tzip/train/train.py)."""

from tzip.train.train import main

main()
