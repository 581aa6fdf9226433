"""The training and evaluation engine: the meta-training loop, checkpoints, evaluation and the ensemble."""
