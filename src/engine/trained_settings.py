"""The settings a checkpoint was trained with, held against a run's: which must match, which it passes on to
the programs that fine-tune it (eval.py, predict.py, export.py, demo.py), which a resume changes."""
from src.engine.eval_report import PROTOCOL_KEYS
from src.model_utils.errors import UserError

# Settings that fix the shapes of the weights: a checkpoint only fits a network built with the same.
SHAPE_KEYS = ("n_way", "num_filters", "num_blocks")
# MAML++ options that add per-step meta-parameters, one per inner step of training (update_step).
STEP_PARAM_KEYS = ("learn_inner_lr", "per_step_bn")
# Settings that eval.py, predict.py and export.py take from the checkpoint unless the user sets them: the
# network, the task it was trained for, its split and its inner loop.
INHERITED_KEYS = SHAPE_KEYS + STEP_PARAM_KEYS + ("imgsz", "redraw", "split", "k_spt", "k_qry", "k_qry_test", "update_lr",
                                                 "update_step", "update_step_test", "transductive")
# Settings that fix which tasks a validation scores: a resume that changes one (a 5-shot stage after 1-shot
# training) ranks only the validations made since, for best.ckpt and the ensemble.
VALIDATION_KEYS = tuple(key for key in PROTOCOL_KEYS if key != "eval_split") + ("val_tasks",)


def setting_changes(meta, cfg, keys=None):
    """"key old -> new" of the settings `keys` (default: all but resume) that cfg changes from the checkpoint's."""
    saved = meta["config"]
    keys = [key for key in cfg if key != "resume"] if keys is None else keys
    return [f"{key} {saved[key]} -> {cfg[key]}" for key in keys if saved[key] != cfg[key]]


def check_compatible(meta, cfg, path):
    """A checkpoint from another network shape is a clear error, not a shape crash inside MindSpore."""
    saved = meta["config"]
    per_step = any(saved[key] or cfg[key] for key in STEP_PARAM_KEYS)
    for key in SHAPE_KEYS + STEP_PARAM_KEYS + (("update_step",) if per_step else ()):
        if saved[key] != cfg[key]:
            raise UserError(f"checkpoint {path} was trained with {key}={saved[key]} but the config has "
                            f"{key}={cfg[key]}: pass --{key} {saved[key]} or another checkpoint")
