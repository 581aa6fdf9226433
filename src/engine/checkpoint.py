"""Checkpoints that survive being killed mid-save and refuse to load into the wrong network.

A checkpoint holds every parameter of the training cell (meta-parameters and Adam state), the
step, the config it was trained with and the episode sampler's RNG state, so `--resume`
continues exactly. Each file is written under a temporary name and renamed into place, so a
crash or a failed write leaves the previous checkpoint intact. src/engine/loading.py loads them.
"""
import json
import math
from pathlib import Path

import mindspore as ms

from src.engine.run_folder import step_checkpoint_path, step_checkpoints
from src.model_utils.atomic_file import replacing
from src.model_utils.config import UPPER_BOUNDS, recorded_settings
from src.model_utils.errors import UserError

COST_KEYS = ("train_seconds", "cpu_seconds")
_META_KEYS = ("step", "config", "sampler_state", "best_val_acc")
MAX_STEP = UPPER_BOUNDS["meta_steps"][0]  # no run reaches a later step


def save(path, cell, step, cfg, sampler_state=None, best_val_acc=-1.0, cost=None):
    """Write atomically (src/model_utils/atomic_file.py): a crash or a failed write leaves the previous file intact.

    `cost` ({COST_KEYS: seconds}) is the wall-clock and CPU time of all runs up to `step`, so a
    resumed run reports its total cost (none: 0, a network that was not trained).
    """
    cost = cost or dict.fromkeys(COST_KEYS, 0.0)
    meta = {"step": step, "config": json.dumps(dict(cfg)), "sampler_state": json.dumps(sampler_state),
            "best_val_acc": float(best_val_acc), **{key: float(cost[key]) for key in COST_KEYS}}
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
    meta["config"] = recorded_settings(meta["config"])
    if not 0 <= meta["step"] <= MAX_STEP:
        raise _damaged(path, f"has step {meta['step']}")
    for key in COST_KEYS:  # None: written before the package recorded it
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


def existing_checkpoint(path):
    """`path` as a Path, if it is a file; the one message for a checkpoint that is missing or not given."""
    if not path:
        raise UserError("no checkpoint given: pass --ckpt PATH (e.g. output/best.ckpt)")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found: pass --ckpt the path of a .ckpt file written by omniglot_train.py")
    return path


def read(path):
    """(parameters, meta) of a checkpoint file; a missing or damaged file is a one-line UserError."""
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


def check_shapes(cell, params, path):
    """Every parameter of `cell` that `params` holds has its shape there: weights of another network under the
    same names are a one-line error, before MindSpore logs and raises its own."""
    for param in cell.get_parameters():
        saved = params.get(param.name)
        if saved is not None and tuple(saved.shape) != tuple(param.shape):
            raise _damaged(path, f"holds {param.name} of shape {tuple(saved.shape)}, not {tuple(param.shape)}")


def restore(cell, params, path):
    """Copy checkpoint parameters into `cell`; every parameter of the cell must be there (entries it has no
    use for, such as Adam's state for a network that only fine-tunes, are left out)."""
    check_shapes(cell, params, path)
    missing, _ = ms.load_param_into_net(cell, params)
    if missing:
        raise UserError(f"checkpoint {path} lacks {len(missing)} parameters ({missing[0]}, ...): "
                        "it is not a training checkpoint of this package")
    return cell


def prune(output_dir, keep, step, keep_steps=()):
    """Delete all but the newest `keep` step checkpoints up to `step`, and those of `keep_steps` (best.ckpt
    is separate and kept).

    Checkpoints of later steps, left by a run that a resume fell back past (they were unreadable), are
    left alone: they are replaced when this run reaches their step."""
    kept = {step_checkpoint_path(output_dir, kept_step) for kept_step in keep_steps}
    for old in step_checkpoints(output_dir, upto=step)[:-keep]:
        if old not in kept:
            old.unlink()
