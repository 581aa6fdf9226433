"""A trained MAML ready to fine-tune, as eval.py, predict.py and export.py all need it."""
from src import checkpoint
from src.device import setup_device
from src.errors import UserError
from src.maml import build_maml
from src.metrics import counted


def fine_tuning(cfg):
    """The fine-tuning of settings cfg, as the logs name it: its inner steps and their size."""
    steps = counted(cfg.update_step_test, "inner step")
    return f"{steps} with the learned per-step learning rates" if cfg.learn_inner_lr else f"{steps} of size {cfg.update_lr}"


def load_checkpoint(argv, defaults=None):
    """(cfg, params, meta) for `--ckpt`: the settings it was trained with (then the program's `defaults`), unless
    given, and its weights, with the device set up for them."""
    cfg, params, meta = checkpoint.load_for_inference(argv, defaults)
    setup_device(cfg)
    return cfg, params, meta


def trained_maml(cfg, params, path):
    """The MAML of settings cfg holding the weights `params` read from `path`."""
    maml = build_maml(cfg)
    checkpoint.load_into(maml.learner, params, path)
    return maml


# predict.py and export.py classify the images a user has, often one at a time: each query on its own.
SINGLE_IMAGE = {"transductive": False}


def load_trained_maml(argv):
    """(cfg, maml, meta) for `--ckpt` (load_checkpoint, then trained_maml): predict.py's and export.py's
    network, which is --ckpt's alone, classifying each query on its own unless --transductive is given."""
    cfg, params, meta = load_checkpoint(argv, SINGLE_IMAGE)
    if cfg.ensemble:
        raise UserError(f"--ensemble {cfg.ensemble}: only eval.py scores an ensemble; this program uses the one "
                        "checkpoint --ckpt names: drop --ensemble")
    return cfg, trained_maml(cfg, params, cfg.ckpt), meta
