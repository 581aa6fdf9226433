"""MAML++'s test score (Antoniou et al., 2019): the mean query logits of the checkpoints of a run's best
validations, each fine-tuned on the task, instead of the single best checkpoint's."""
from pathlib import Path

import numpy as np

from src.engine import checkpoint
from src.engine.loading import trained_maml
from src.engine.run_folder import METRICS_NAME, step_checkpoint_path
from src.engine.trained_settings import INHERITED_KEYS
from src.maml import AdaptAndScore
from src.model_utils.errors import UserError
from src.model_utils.metrics_file import best_validated_steps

# Settings the members must share with --ckpt's run: the network, the task and inner loop they are
# fine-tuned with, and the validation that ranked them (training's query count k_qry does not matter).
MEMBER_KEYS = tuple(key for key in INHERITED_KEYS if key != "k_qry") + ("val_tasks", "eval_seed")


def ensemble_checkpoints(folder, count):
    """(step, path) of the step checkpoints of the `count` best validations that folder/metrics.jsonl records,
    best first: the members of eval.py --ensemble."""
    metrics = Path(folder) / METRICS_NAME
    steps, validations = best_validated_steps(metrics, count)
    if validations < count:
        raise UserError(f"--ensemble {count} needs {count} validations but {metrics} "
                        f"{'records ' + str(validations) if validations else 'is missing or records none'}: "
                        "pass --ckpt a checkpoint in the folder of the run, with its metrics.jsonl, or a smaller --ensemble")
    chosen = [(step, step_checkpoint_path(folder, step)) for step in steps]
    for present, (step, path) in enumerate(chosen):
        if not path.is_file():
            smaller = (f"pass --ensemble {present} (the {present} best are there)" if present
                       else "evaluate best.ckpt alone (no --ensemble)")
            raise UserError(f"--ensemble {count}: {path.name}, the checkpoint of step {step}, number {present + 1} of "
                            f"the {count} best validations, is not in {folder}: {smaller}, or train with "
                            f"--keep_best_checkpoints {count} to keep them")
    return chosen


def load_members(cfg, ckpt_meta):
    """[(step, path, params)] of the `cfg.ensemble` best validated checkpoints in the folder of cfg.ckpt, each
    trained and validated with the settings of cfg.ckpt (`ckpt_meta`)."""
    members = []
    expected = ckpt_meta["config"]
    for step, path in ensemble_checkpoints(Path(cfg.ckpt).parent, cfg.ensemble):
        params, meta = checkpoint.read(path)
        own = meta["config"]
        for key in MEMBER_KEYS:
            if own[key] != expected[key]:
                raise UserError(f"--ensemble {cfg.ensemble}: {path} was trained with {key}={own[key]}, {cfg.ckpt} "
                                f"with {key}={expected[key]}: an ensemble takes checkpoints of one setting; pass a "
                                "smaller --ensemble")
        members.append((step, path, params))
    return members


class EnsembleScore:
    """Scores the query set as AdaptAndScore does, by the mean of the members' query logits: (None,
    accuracy per task as a (1, tasks) array); evaluate() reads only the accuracy."""

    every_step = False

    def __init__(self, members):
        self.members = members

    def __call__(self, x_spt, y_spt, x_qry, y_qry):
        logits = np.mean([member.predict(x_spt, y_spt, x_qry).asnumpy() for member in self.members], axis=0)
        correct = logits.argmax(axis=-1) == y_qry.asnumpy()
        return None, correct.mean(axis=-1, dtype=np.float32)[None]


def ensemble_scorer(cfg, ckpt_meta):
    """(scorer, steps) of the members (load_members), each fine-tuned with cfg's inner loop."""
    scorers, steps = [], []
    for step, path, params in load_members(cfg, ckpt_meta):
        scorers.append(AdaptAndScore(trained_maml(cfg, params, path), cfg.update_step_test))
        steps.append(step)
    return EnsembleScore(scorers), steps
