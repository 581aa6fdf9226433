"""metrics.jsonl, training's record for tools (plot_curves.py, eval.py --ensemble): one JSON object per line,
each with its `event` (compile, train, val, validation_settings) and `step`."""
import json
import math
import os
from pathlib import Path

from src.model_utils.atomic_file import write_atomic
from src.model_utils.errors import UserError

_FIX = "make it and its folder writable or free some space, then pass --resume"


class MetricsWriter:
    """Appends one JSON object per line. A resumed run first drops the records past the step it resumes
    from (those of the interrupted run after its last checkpoint), so the file holds each step once.
    With no path (the ranks other than 0 of a data-parallel run) it writes nothing."""

    def __init__(self, path):
        self.path = None if path is None else Path(path)

    def truncate_after(self, step):
        """Keep the records of steps <= `step`; rewritten atomically, and only when something is dropped."""
        if self.path is None:
            return
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True) if self.path.is_file() else []
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read {self.path} ({err}): move it away, then resume") from None
        kept = [line for line in lines if _step(line) <= step]
        if len(kept) < len(lines):
            write_atomic(self.path, lambda f: f.write("".join(kept).encode()), _FIX)
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise UserError(f"cannot write {self.path} (permission denied): {_FIX}")

    def write(self, **record):
        if self.path is None:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
        except OSError as err:
            raise UserError(f"cannot write {self.path} ({err.strerror or err}): {_FIX}") from None


def _step(line):
    """The step of a metrics line; lines that are not records (a torn last line) count as past every step."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


def read_records(path, strict=False):
    """The records of a metrics.jsonl in file order. A line that is not a record is skipped (the torn last
    line of a killed run) or, with `strict`, an error naming it (a file a user passes to a tool)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"metrics file {path} is unreadable or not text ({err.__class__.__name__}): it must be the "
                        "metrics.jsonl of a training output_dir") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not (isinstance(record, dict) and isinstance(record["event"], str)):
                raise TypeError("not a JSON object with an event")
            record["step"] = int(record["step"])
            if record["event"] in ("val", "train"):
                record["acc"] = float(record["acc"])
        except (ValueError, KeyError, TypeError):
            if strict:
                raise UserError(f"{path} line {number} is not a metrics record: pass a metrics.jsonl written by "
                                "omniglot_train.py") from None
            continue
        records.append(record)
    return records


def best_validated_steps(path, count):
    """(steps, validations): the steps of the `count` best validation records of a metrics file, best first
    (of equal accuracies the earlier step, as best.ckpt), and how many it holds; ([], 0) without the file.
    A step counts once, with its last record. A validation_settings record (a resume that validates on
    other tasks) discards the validations before it: they scored something else."""
    if not Path(path).is_file():
        return [], 0
    latest = {}
    for record in read_records(path):
        if record["event"] == "val":
            latest[record["step"]] = -record["acc"]
        elif record["event"] == "validation_settings":
            latest.clear()
    ranked = sorted((acc, step) for step, acc in latest.items())
    return [step for _, step in ranked[:count]], len(ranked)
