"""Checkpoints that survive being killed mid-save and refuse to load into the wrong network.

A checkpoint holds every parameter of the training cell (meta-parameters and Adam state), the
step, the config it was trained with and the episode sampler's RNG state, so `--resume`
continues exactly. Each file is written under a temporary name and renamed into place, so a
crash or a failed write leaves the previous checkpoint intact.
"""
import json
import math
from pathlib import Path

import mindspore as ms

from src.atomic_file import replacing
from src.config import UPPER_BOUNDS, load_config
from src.errors import UserError
from src.outputs import BEST, PREDATING, PROTOCOL_KEYS, existing_checkpoint, step_checkpoint_path, step_checkpoints

# Settings that fix the shapes of the weights: a checkpoint only fits a network built with the same.
SHAPE_KEYS = ("n_way", "imgc", "num_filters", "num_blocks")
# MAML++ options that add per-step meta-parameters, one per inner step of training (update_step);
# checkpoints older than these options were trained without them.
STEP_PARAM_KEYS = ("learn_inner_lr", "per_step_bn")
_META_KEYS = ("step", "config", "sampler_state", "best_val_acc")
COST_KEYS = ("train_seconds", "cpu_seconds")
MAX_STEP = UPPER_BOUNDS["epoch"][0]  # no run reaches a later step
# Settings that eval.py, predict.py and export.py take from the checkpoint unless the user sets them: the
# network, the task it was trained for, its split and its inner loop.
INHERITED_KEYS = SHAPE_KEYS + STEP_PARAM_KEYS + ("imgsz", "split", "k_spt", "k_qry", "k_qry_test", "update_lr",
                                                 "update_step", "update_step_test", "transductive")


# Settings that fix which tasks a validation scores: a resume that changes one (a 5-shot stage after 1-shot
# training) ranks only the validations made since, for best.ckpt and the ensemble.
VALIDATION_KEYS = PROTOCOL_KEYS + ("val_tasks",)


def save(path, cell, step, cfg, sampler_state=None, best_val_acc=-1.0, cost=None):
    """Write atomically (src/atomic_file.py): a crash or a failed write leaves the previous file intact.

    `cost` ({COST_KEYS: seconds}) is the wall-clock and CPU time of all runs up to `step`, so a
    resumed run reports its total cost.
    """
    meta = {"step": step, "config": json.dumps(dict(cfg)), "sampler_state": json.dumps(sampler_state),
            "best_val_acc": float(best_val_acc), **{key: float(value) for key, value in (cost or {}).items()}}
    with replacing(path, "make the folder writable or free some space, then pass --resume") as tmp:
        # Created first so that an unwritable folder is our one-line error rather than MindSpore's log.
        tmp.touch()
        ms.save_checkpoint(cell, str(tmp), append_dict=meta, crc_check=True)
    return Path(path)


def _damaged(path, what):
    return UserError(f"checkpoint {path} {what}: it is truncated or damaged, or was not written by omniglot_train.py; "
                     "use another checkpoint of this package or train again")


def _meta(params, path):
    """The entries beside the weights, each checked for its type."""
    try:
        meta = {"step": int(params.pop("step")), "best_val_acc": float(params.pop("best_val_acc")),
                "config": json.loads(str(params.pop("config"))),
                "sampler_state": json.loads(str(params.pop("sampler_state")))}
    except (ValueError, TypeError) as err:
        raise _damaged(path, f"has a malformed step/config entry ({err.__class__.__name__})") from None
    if not isinstance(meta["config"], dict) or not isinstance(meta["sampler_state"], (dict, type(None))):
        raise _damaged(path, "has a config or sampler_state entry that is not a JSON object")
    if not 0 <= meta["step"] <= MAX_STEP:
        raise _damaged(path, f"has step {meta['step']}")
    for key in COST_KEYS:  # None where the checkpoint was written before that cost was recorded
        meta[key] = _seconds(params.pop(key), key, path) if key in params else None
    return meta


def _seconds(value, key, path):
    """A cost entry: a finite number of seconds >= 0."""
    try:
        seconds = float(value)
    except (ValueError, TypeError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise _damaged(path, f"has a malformed {key} entry")
    return seconds


def check_shapes(cell, params, path):
    """Every parameter of `cell` that `params` holds has its shape there: weights of another network under the
    same names are a one-line error, before MindSpore logs and raises its own."""
    for param in cell.get_parameters():
        saved = params.get(param.name)
        if saved is not None and tuple(saved.shape) != tuple(param.shape):
            raise _damaged(path, f"holds {param.name} of shape {tuple(saved.shape)}, not {tuple(param.shape)}")


def load(path):
    """(parameters, meta) of a checkpoint; a missing or damaged file is a one-line UserError."""
    path = existing_checkpoint(path)
    try:
        params = ms.load_checkpoint(str(path), crc_check=True)
    except Exception as err:  # MindSpore raises ValueError/RuntimeError/TypeError for damaged files
        raise UserError(f"checkpoint {path} is unreadable or corrupt ({err.__class__.__name__}): "
                        "use another checkpoint or train again") from None
    # MindSpore reads a checkpoint cut short without complaint, up to where it ends; the step and
    # config, written last, are then missing, as in a checkpoint written by other code.
    if any(key not in params for key in _META_KEYS):
        raise _damaged(path, "has no step/config inside")
    return params, _meta(params, path)


def trained_settings(meta):
    """The settings a checkpoint was trained with, those it predates as its training ran (PREDATING)."""
    return PREDATING | meta["config"]


def setting_changes(meta, cfg, keys=None):
    """"key old -> new" of the settings `keys` (default: all but resume) that cfg changes from the checkpoint's."""
    saved = trained_settings(meta)
    keys = [key for key in cfg if key != "resume"] if keys is None else keys
    return [f"{key} {saved[key]} -> {cfg[key]}" for key in keys if key in saved and saved[key] != cfg[key]]


def check_compatible(meta, cfg, path):
    """A checkpoint from another network shape is a clear error, not a shape crash inside MindSpore."""
    saved = trained_settings(meta)
    per_step = any(saved[key] or cfg[key] for key in STEP_PARAM_KEYS)
    for key in SHAPE_KEYS + STEP_PARAM_KEYS + (("update_step",) if per_step else ()):
        if saved.get(key) != cfg[key]:
            raise UserError(f"checkpoint {path} was trained with {key}={saved.get(key)} but the config has "
                            f"{key}={cfg[key]}: pass --{key} {saved.get(key)} or another checkpoint")


def load_for_inference(argv, defaults=None):
    """(cfg, params, meta) of `--ckpt`: the checkpoint's own settings are the defaults, so that
    `--ckpt PATH` alone evaluates or applies any checkpoint; `defaults` (a program's own, e.g. predict.py's
    transductive false) come after them, and a config file or the command line still wins.
    The settings are validated once, merged: a value that is refused is the command line's unless the
    checkpoint's settings are refused on their own."""
    path = load_config(argv, check=False).ckpt
    params, meta = load(path)
    saved = meta["config"]
    inherit = {key: saved[key] for key in INHERITED_KEYS if key in saved} | (defaults or {})
    if "k_qry_test" not in saved and "k_qry" in saved:
        inherit["k_qry_test"] = saved["k_qry"]  # checkpoints older than k_qry_test were validated with k_qry
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
    if "imgsz" in saved and cfg.imgsz != saved["imgsz"]:
        # The network takes any size, but scores far worse on images of another size than it learned.
        raise UserError(f"--imgsz {cfg.imgsz}: checkpoint {path} was trained on {saved['imgsz']}-pixel images: "
                        "drop --imgsz (or pass its own)")
    if cfg.learn_inner_lr and cfg.update_lr != saved.get("update_lr"):
        raise UserError(f"--update_lr {cfg.update_lr}: checkpoint {path} learned its inner learning rates "
                        f"(learn_inner_lr), which fine-tuning uses instead of update_lr: drop --update_lr")
    return cfg, params, meta


def load_into(cell, params, path):
    """Copy checkpoint parameters into `cell`; every parameter of the cell must be there.

    Entries the cell has no use for are left out, e.g. the per-step learning-rate table of the
    optimizer that checkpoints written before the learning-rate schedule held."""
    check_shapes(cell, params, path)
    missing, _ = ms.load_param_into_net(cell, params)
    if missing:
        raise UserError(f"checkpoint {path} lacks {len(missing)} parameters ({missing[0]}, ...): "
                        "it is not a training checkpoint of this package")
    return cell


def resumable(output_dir, cfg, warn, cell=None):
    """(path, params, meta) of the newest step checkpoint in output_dir that loads (into `cell`'s shapes, if
    given), falling back past damaged ones (each named through `warn`), checked against cfg and short of its
    epoch; None if there is none."""
    found = step_checkpoints(output_dir)
    for path in reversed(found):
        try:
            params, meta = load(path)
            if cell is not None:
                check_shapes(cell, params, path)
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
        if meta["step"] >= cfg.epoch:
            raise UserError(f"the run in {output_dir} is already at step {meta['step']} and epoch is {cfg.epoch}: "
                            "pass a larger epoch (--epoch, or EPOCH of the launch scripts) to train further")
        return path, params, meta
    if found:
        raise UserError(f"--resume: none of the {len(found)} step checkpoints in {output_dir} is readable: "
                        "restore one from a backup, or start afresh in another --output_dir")
    return None


def prune(output_dir, keep, step, keep_steps=()):
    """Delete all but the newest `keep` step checkpoints up to `step`, and those of `keep_steps` (best.ckpt
    is separate and kept).

    Checkpoints of later steps, left by a run that a resume fell back past (they were unreadable), are
    left alone: they are replaced when this run reaches their step."""
    kept = {step_checkpoint_path(output_dir, kept_step) for kept_step in keep_steps}
    for old in step_checkpoints(output_dir, upto=step)[:-keep]:
        if old not in kept:
            old.unlink()
