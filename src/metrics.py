"""Accuracy summaries and the progress log (console plus a JSON-lines file for tools)."""
import json
import math
import sys
import time

import numpy as np


def mean_ci95(values):
    """Mean and half-width of its 95% confidence interval, 1.96 * std / sqrt(n), as MAML papers report."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(1.96 * values.std() / math.sqrt(len(values)))


def log(message, file=None):
    """Timestamped progress line, flushed at once so that piped logs (tee) follow the run live."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=file or sys.stdout, flush=True)


class MetricsWriter:
    """Appends one JSON object per line, so a run that is stopped and resumed keeps one history.
    With no path (the ranks other than 0 of a data-parallel run) it writes nothing."""

    def __init__(self, path):
        self.path = path

    def write(self, **record):
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
