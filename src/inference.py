"""A trained MAML ready to fine-tune, as eval.py, predict.py and export.py all need it."""
from src import checkpoint
from src.device import setup_device
from src.maml import build_maml


def load_trained_maml(argv):
    """(cfg, maml, meta) for `--ckpt`: the settings it was trained with, unless given, and its weights."""
    cfg, params, meta = checkpoint.load_for_inference(argv)
    setup_device(cfg)
    maml = build_maml(cfg)
    checkpoint.load_into(maml.learner, params, cfg.ckpt)
    return cfg, maml, meta
