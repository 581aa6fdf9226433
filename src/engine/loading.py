"""The two ways a checkpoint is loaded: to resume training (`load_for_resume`), and to fine-tune and classify
(`load_for_inference`: eval.py, predict.py, export.py, demo.py; its settings alone: `inference_settings`)."""
from pathlib import Path

from src.engine import checkpoint
from src.engine.run_folder import BEST, step_checkpoints
from src.engine.trained_settings import INHERITED_KEYS, VALIDATION_KEYS, check_compatible, setting_changes
from src.maml import build_maml
from src.model_utils.config import load_config
from src.model_utils.device import setup_device
from src.model_utils.errors import UserError
from src.model_utils.log import counted

# predict.py, export.py and demo.py classify the images a user has, often one at a time: each query on its own.
SINGLE_IMAGE = {"transductive": False}


def load_for_resume(output_dir, cfg, warn, cell=None):
    """(path, meta) of the newest step checkpoint in output_dir that reads (and fits `cell`'s shapes), its
    weights copied into `cell`; without `cell` (the launch scripts' check) nothing is copied. Damaged
    checkpoints are passed over, each named through `warn`; the one found must fit cfg's network and be
    short of its meta_steps. None: output_dir holds no step checkpoint."""
    found = step_checkpoints(output_dir)
    for path in reversed(found):
        try:
            params, meta = checkpoint.read(path)
            if cell is not None:
                checkpoint.check_shapes(cell, params, path)
        except UserError as err:
            warn(f"warning: skipping {path.name}: {err}")
            continue
        check_compatible(meta, cfg, path)
        changes = setting_changes(meta, cfg, VALIDATION_KEYS)
        best = Path(output_dir) / BEST
        if changes and best.exists():
            raise UserError(f"{best} is the best of validations on other tasks than this run's ({', '.join(changes)}) "
                            f"and would be replaced: move it away, or resume in a new folder holding {path.name} "
                            "and metrics.jsonl")
        if meta["step"] >= cfg.meta_steps:
            raise UserError(f"the run in {output_dir} is already at step {meta['step']} and meta_steps is "
                            f"{cfg.meta_steps}: pass a larger meta_steps (--meta_steps, or EPOCH of the launch "
                            "scripts) to train further")
        if cell is not None:
            checkpoint.restore(cell, params, path)
        return path, meta
    if found:
        raise UserError(f"--resume: none of the {len(found)} step checkpoints in {output_dir} is readable: "
                        "restore one from a backup, or start afresh in another --output_dir")
    return None


def inference_settings(argv, defaults=None):
    """(cfg, params, meta) of `--ckpt`: the checkpoint's own settings are the defaults, so that
    `--ckpt PATH` alone evaluates or applies any checkpoint; `defaults` (a program's own, e.g. predict.py's
    transductive false) come after them, and a config file or the command line still wins.
    The settings are validated once, merged: a value that is refused is the command line's unless the
    checkpoint's settings are refused on their own."""
    path = load_config(argv, check=False).ckpt
    params, meta = checkpoint.read(path)
    saved = meta["config"]
    inherit = {key: saved[key] for key in INHERITED_KEYS} | (defaults or {})
    try:
        cfg = load_config(argv, inherit=inherit, trains=False)
    except UserError as err:
        try:
            load_config([], inherit=inherit, trains=False)
        except UserError:
            raise UserError(f"checkpoint {path} holds a setting that is refused ({err}): pass the setting on "
                            "the command line, or use another checkpoint") from None
        raise
    check_compatible(meta, cfg, cfg.ckpt)
    if cfg.imgsz != saved["imgsz"]:
        # The network takes any size, but scores far worse on images of another size than it learned.
        raise UserError(f"--imgsz {cfg.imgsz}: checkpoint {path} was trained on {saved['imgsz']}-pixel images: "
                        "drop --imgsz (or pass its own)")
    if cfg.learn_inner_lr and cfg.update_lr != saved["update_lr"]:
        raise UserError(f"--update_lr {cfg.update_lr}: checkpoint {path} learned its inner learning rates "
                        f"(learn_inner_lr), which fine-tuning uses instead of update_lr: drop --update_lr")
    return cfg, params, meta


def trained_maml(cfg, params, path):
    """The MAML of settings cfg holding the weights `params` read from `path`."""
    maml = build_maml(cfg)
    checkpoint.restore(maml.learner, params, path)
    return maml


def load_for_inference(argv, user_images=False):
    """(cfg, maml, meta) of `--ckpt`: the settings it was trained with unless given (inference_settings), the
    device set up for them, and its network. `user_images` (predict.py, export.py, demo.py): each query
    classified on its own unless --transductive is given, and no --ensemble (eval.py's alone)."""
    cfg, params, meta = inference_settings(argv, SINGLE_IMAGE if user_images else None)
    if user_images and cfg.ensemble:
        raise UserError(f"--ensemble {cfg.ensemble}: only eval.py scores an ensemble; this program uses the one "
                        "checkpoint --ckpt names: drop --ensemble")
    setup_device(cfg)
    return cfg, trained_maml(cfg, params, cfg.ckpt), meta


def fine_tuning(cfg):
    """The fine-tuning of settings cfg, as the logs name it: its inner steps and their size."""
    steps = counted(cfg.update_step_test, "inner step")
    return f"{steps} with the learned per-step learning rates" if cfg.learn_inner_lr else f"{steps} of size {cfg.update_lr}"
