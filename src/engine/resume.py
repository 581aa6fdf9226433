"""Where a training run starts: step 0, or the newest step checkpoint of its output folder (--resume), with
the weights, the episode stream, the best validation so far and the cost of the runs before it."""
import sys
from dataclasses import dataclass, field
from pathlib import Path

from src.engine import checkpoint
from src.engine.loading import load_for_resume
from src.engine.run_folder import BEST
from src.engine.trained_settings import VALIDATION_KEYS, setting_changes
from src.model_utils.errors import UserError
from src.model_utils.log import log


@dataclass
class Start:
    """The state a run starts from: that of a fresh run, or of the checkpoint it resumes."""

    step: int = 0
    checkpoint: Path = None  # the last good checkpoint, until the run saves its own
    best_val_acc: float = -1.0  # what a new best.ckpt must beat
    cost: dict = field(default_factory=lambda: dict.fromkeys(checkpoint.COST_KEYS, 0.0))
    changes: list = field(default_factory=list)  # validation settings changed since the checkpoint


def _best_so_far(out, meta):
    """The validation accuracy that a new best.ckpt must beat: that of the best.ckpt in the folder, which
    may come from a later step than the one resumed (a resume that fell back past a damaged checkpoint)."""
    best = out / BEST
    if not best.exists():
        return meta["best_val_acc"]
    try:
        return max(meta["best_val_acc"], checkpoint.read(best)[1]["best_val_acc"])
    except UserError as err:
        raise UserError(f"{err}; --resume would replace it: move it away and resume") from None


def resume(out, cfg, cell, sampler):
    """The Start of a run continuing the newest step checkpoint in `out`, whose weights go into `cell` and
    episode stream into `sampler`; a fresh Start when `out` holds none."""
    found = load_for_resume(out, cfg, lambda message: log(message, sys.stderr), cell)
    if found is None:
        log(f"--resume: no checkpoint in {out}, starting from step 0")
        return Start()
    path, meta = found
    # A resume may change settings (a longer run, a decaying learning rate): say which, for the record.
    changed = setting_changes(meta, cfg)
    if changed:
        log(f"settings changed since {path.name}: {', '.join(changed)}")
    sampler.set_state(meta["sampler_state"])
    changes = setting_changes(meta, cfg, VALIDATION_KEYS)
    best_val_acc = -1.0 if changes else _best_so_far(out, meta)
    if changes:
        log("validation scores other tasks from now on: best.ckpt and --ensemble take this run's validations only")
    log(f"resumed from {path} at step {meta['step']}")
    unrecorded = [key for key in checkpoint.COST_KEYS if meta[key] is None]
    if unrecorded:
        log(f"warning: {path.name} does not record its {' or '.join(unrecorded)} (an earlier version of this "
            "package wrote it): the cost this run reports counts from this resume", sys.stderr)
    return Start(meta["step"], path, best_val_acc, {key: meta[key] or 0.0 for key in checkpoint.COST_KEYS}, changes)
