"""Accuracy summaries and the progress log (console plus a JSON-lines file for tools)."""
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from src.atomic_file import write_atomic
from src.errors import UserError

_FIX = "make it and its folder writable or free some space, then pass --resume"


def mean_ci95(values):
    """Mean and half-width of its 95% confidence interval, 1.96 * std / sqrt(n), as MAML papers report."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(1.96 * values.std() / math.sqrt(len(values)))


def counted(n, noun, plural=None):
    """'1 inner step', '10 inner steps', '1 query', '15 queries': a count with its noun for the logs."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def log(message, file=None):
    """Timestamped progress line, flushed at once so that piped logs (tee) follow the run live."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=file or sys.stdout, flush=True)


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


# Field names of metrics files written by earlier versions, read as today's.
OLD_NAMES = {"train_s": "train_seconds", "cpu_s": "cpu_seconds"}


def read_records(path, strict=False):
    """The records of a metrics.jsonl in file order, earlier versions' field names read as today's. A line
    that is not a record is skipped (the torn last line of a killed run) or, with `strict`, an error naming
    it (a file a user passes to a tool)."""
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
            record.update({new: record.pop(old) for old, new in OLD_NAMES.items() if old in record})
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
    A step validated twice (files of earlier versions kept the records of an interrupted run) counts
    once, with its later record, as plot_curves.py reads it. A validation_settings record (a resume that
    validates on other tasks) discards the validations before it: they scored something else."""
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
