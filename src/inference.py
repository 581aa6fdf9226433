"""A trained MAML ready to fine-tune, as eval.py, predict.py and export.py all need it."""
from src import checkpoint
from src.device import setup_device
from src.maml import build_maml


def load_checkpoint(argv):
    """(cfg, params, meta) for `--ckpt`: the settings it was trained with, unless given, and its weights, with
    the device set up for them."""
    cfg, params, meta = checkpoint.load_for_inference(argv)
    setup_device(cfg)
    return cfg, params, meta


def trained_maml(cfg, params, path):
    """The MAML of settings cfg holding the weights `params` read from `path`."""
    maml = build_maml(cfg)
    checkpoint.load_into(maml.learner, params, path)
    return maml


def load_trained_maml(argv):
    """(cfg, maml, meta) for `--ckpt` (load_checkpoint, then trained_maml)."""
    cfg, params, meta = load_checkpoint(argv)
    return cfg, trained_maml(cfg, params, cfg.ckpt), meta
