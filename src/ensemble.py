"""MAML++'s test score (Antoniou et al., 2019): the mean query logits of the checkpoints of a run's best
validations, each fine-tuned on the task, instead of the single best checkpoint's."""
from pathlib import Path

import numpy as np

from src import checkpoint
from src.errors import UserError
from src.maml import AdaptAndScore, build_maml
from src.metrics import best_validated_steps
from src.outputs import METRICS_NAME, step_checkpoint_path


def best_checkpoints(folder, count):
    """(step, path) of the step checkpoints of the `count` best validations that folder/metrics.jsonl records."""
    metrics = Path(folder) / METRICS_NAME
    steps, validations = best_validated_steps(metrics, count)
    if validations < count:
        raise UserError(f"--ensemble {count} needs {count} validations but {metrics} "
                        f"{'records ' + str(validations) if validations else 'is missing or records none'}: "
                        "pass --ckpt a checkpoint in the folder of the run, with its metrics.jsonl, or a smaller --ensemble")
    chosen = [(step, step_checkpoint_path(folder, step)) for step in steps]
    for step, path in chosen:
        if not path.is_file():
            raise UserError(f"--ensemble {count}: {path.name}, of step {step}, one of the {count} best validations, "
                            f"is not in {folder}: train with --keep_best_checkpoints {count} to keep them")
    return chosen


class EnsembleScore:
    """Scores the query set as AdaptAndScore does, by the mean of the members' query logits: (None,
    accuracy per task as a (1, tasks) array); evaluate() reads only the accuracy."""

    every_step = False

    def __init__(self, members):
        self.members = members
        self.steps = members[0].steps

    def __call__(self, x_spt, y_spt, x_qry, y_qry):
        logits = np.mean([member.predict(x_spt, y_spt, x_qry).asnumpy() for member in self.members], axis=0)
        correct = logits.argmax(axis=-1) == y_qry.asnumpy()
        return None, correct.mean(axis=-1, dtype=np.float32)[None]


def ensemble_scorer(cfg):
    """(scorer, steps) of the `cfg.ensemble` best validated checkpoints in the folder of cfg.ckpt, each
    fine-tuned with cfg's inner loop (every member must fit cfg's network)."""
    chosen = best_checkpoints(Path(cfg.ckpt).parent, cfg.ensemble)
    members = []
    for _, path in chosen:
        params, meta = checkpoint.load(path)
        checkpoint.check_compatible(meta, cfg, path)
        maml = build_maml(cfg)
        checkpoint.load_into(maml.learner, params, path)
        members.append(AdaptAndScore(maml, cfg.update_step_test))
    return EnsembleScore(members), [step for step, _ in chosen]
