"""Checkpoints of a small network (8 filters, 2 blocks) for the tests that need one to load, not to score."""
from src.engine import checkpoint
from src.maml import build_maml
from src.model_utils.config import load_config

TINY = ("--num_filters", "8", "--num_blocks", "2")


def save_tiny_checkpoint(path, *settings, step=5):
    """Write a checkpoint of the small network with `settings` (--key value ...) at `path`, as training
    saves it (weights, step and settings); returns its path."""
    cfg = load_config([*TINY, *settings])
    return checkpoint.save(path, build_maml(cfg), step=step, cfg=cfg)
