"""MAML++'s ensemble test score: which checkpoints it takes, and how it combines them."""
import json

import mindspore as ms
import numpy as np
import pytest

from src.engine import checkpoint
from src.engine.ensemble import EnsembleScore, ensemble_checkpoints
from src.engine.run_folder import step_checkpoint_path
from src.model_utils.errors import UserError
from src.model_utils.metrics_file import best_validated_steps


def write_metrics(folder, accs):
    """metrics.jsonl with train records and one validation per (step, acc), and a torn last line."""
    lines = []
    for step, acc in accs:
        lines.append(json.dumps({"event": "train", "step": step, "loss": 0.1, "acc": 1.0}))
        lines.append(json.dumps({"event": "val", "step": step, "acc": acc, "ci95": 0.01, "tasks": 200}))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + '\n{"event": "val", "st')
    return folder / "metrics.jsonl"


def test_best_validations_rank_by_accuracy_then_earlier_step(tmp_path):
    """Train records (acc 1.0) and the torn line are not validations; of equal accuracies the earlier step
    ranks first, as best.ckpt keeps the first step that reached the best accuracy."""
    metrics = write_metrics(tmp_path, [(500, 0.90), (1000, 0.95), (1500, 0.93), (2000, 0.95), (2500, 0.91)])
    assert best_validated_steps(metrics, 3) == ([1000, 2000, 1500], 5)
    assert best_validated_steps(metrics, 0) == ([], 5)
    assert best_validated_steps(tmp_path / "absent.jsonl", 3) == ([], 0)


def test_a_step_validated_twice_counts_once_with_its_later_record(tmp_path):
    """A metrics file holding a step's validation twice (a file appended to by hand, or by another tool):
    the ensemble must not take that step twice, and its accuracy is the later one's."""
    metrics = write_metrics(tmp_path, [(500, 0.90), (1000, 0.97), (1500, 0.93), (1000, 0.92), (2000, 0.95)])
    assert best_validated_steps(metrics, 3) == ([2000, 1500, 1000], 4)


def test_validations_before_a_change_of_validation_settings_do_not_count(tmp_path):
    """A resume that validates on other tasks (a 5-shot stage after 1-shot training: easier tasks, higher
    accuracies or lower) writes a validation_settings record: only the validations after it are ranked."""
    metrics = write_metrics(tmp_path, [(500, 0.96), (1000, 0.97)])
    text = metrics.read_text().rsplit("\n", 1)[0]  # without the torn line
    stage = [{"event": "validation_settings", "step": 1000, "changed": ["k_spt 1 -> 5"]},
             {"event": "val", "step": 1500, "acc": 0.95}, {"event": "val", "step": 2000, "acc": 0.94}]
    metrics.write_text(text + "\n" + "".join(json.dumps(record) + "\n" for record in stage))
    assert best_validated_steps(metrics, 5) == ([1500, 2000], 2)

def test_prune_keeps_the_newest_and_the_best_validated(tmp_path):
    for step in (500, 1000, 1500, 2000, 2500):
        step_checkpoint_path(tmp_path, step).write_bytes(b"x")
    checkpoint.prune(tmp_path, 1, 2500, keep_steps=[1000, 2000])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "maml_step0001000.ckpt", "maml_step0002000.ckpt", "maml_step0002500.ckpt"]


def test_ensemble_checkpoints_need_the_validations_and_their_files(tmp_path):
    write_metrics(tmp_path, [(500, 0.90), (1000, 0.95), (1500, 0.93)])
    for step in (1000, 1500):
        step_checkpoint_path(tmp_path, step).write_bytes(b"x")
    assert ensemble_checkpoints(tmp_path, 2) == [(1000, step_checkpoint_path(tmp_path, 1000)),
                                                 (1500, step_checkpoint_path(tmp_path, 1500))]
    with pytest.raises(UserError, match=r"--ensemble 3: maml_step0000500.ckpt, the checkpoint of step 500, number 3 of "
                                        r"the 3 best validations, is not in .*: pass --ensemble 2 \(the 2 best are "
                                        r"there\), or train with --keep_best_checkpoints 3 to keep them$"):
        ensemble_checkpoints(tmp_path, 3)
    step_checkpoint_path(tmp_path, 1000).unlink()
    with pytest.raises(UserError, match=r"--ensemble 1: maml_step0001000.ckpt, the checkpoint of step 1000, number 1 of "
                                        r"the 1 best validations, is not in .*: evaluate best.ckpt alone \(no "
                                        r"--ensemble\), or train with --keep_best_checkpoints 1 to keep them$"):
        ensemble_checkpoints(tmp_path, 1)
    with pytest.raises(UserError, match=r"--ensemble 4 needs 4 validations but .*metrics.jsonl records 3"):
        ensemble_checkpoints(tmp_path, 4)
    with pytest.raises(UserError, match=r"metrics.jsonl is missing or records none"):
        ensemble_checkpoints(tmp_path / "elsewhere", 1)


class _Member:
    """A fine-tuned model that answers fixed query logits."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, np.float32)

    def predict(self, x_spt, y_spt, x_qry):
        return ms.Tensor(self.logits)


def test_ensemble_averages_logits():
    """One task, two queries of class 0. Query 1: a confident member outvotes two hesitant ones only when
    logits are averaged (mean logits 0.67 vs 0.60 for class 0), not by vote or by mean probability
    (0.486 vs 0.514). Query 2: all three say class 1."""
    members = [_Member([[[2.0, 0.0], [0.0, 1.0]]]), _Member([[[0.0, 0.9], [0.0, 1.0]]]),
               _Member([[[0.0, 0.9], [0.0, 1.0]]])]
    score = EnsembleScore(members)
    y_qry = ms.Tensor(np.array([[0, 0]], np.int32))
    loss, acc = score(None, None, None, y_qry)
    assert loss is None and acc.shape == (1, 1) and acc[0, 0] == 0.5
