"""Training: the float model with quantisation-aware training (model.py), the training loop
(train.py), export to the integer model file and the training shards. Needs torch."""
