"""Learning curves from training's metrics.jsonl: validation accuracy against meta-steps and hours.

    python plot_curves.py --metrics output/metrics.jsonl [--metrics other/metrics.jsonl ...]
                          [--label NAME ...] --output curves.png

--output may replace a plot this program wrote, never another file or image.
"""
import struct
import sys
from pathlib import Path

from src.model_utils.atomic_file import write_atomic
from src.model_utils.errors import ArgumentParser, UserError, run_cli
from src.model_utils.metrics_file import read_records
from src.model_utils.outputs import check_output_file
from src.model_utils.paths import path_type

HOURS = {"wall": ("train_seconds", "wall-clock"), "cpu": ("cpu_seconds", "CPU")}
# The PNG text entry that marks this program's plots: --output replaces no other image.
MARK = ("Software", "plot_curves.py (MAML for MindSpore)")
LEGEND_COLUMNS = 3  # runs per row of the legend below both panels (inside a panel, it hid curves)


def read_metrics(path):
    """{event: [records sorted by step]}, one record per (event, step): the last, should a step be recorded twice."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"metrics file {path} not found: pass --metrics the metrics.jsonl of a training output_dir")
    latest = {(record["event"], record["step"]): record for record in read_records(path, strict=True)}
    events = {}
    for (event, _), record in sorted(latest.items(), key=lambda item: item[0][1]):
        events.setdefault(event, []).append(record)
    if not events.get("val"):
        raise UserError(f"{path} has no validation records yet: train past the first eval_every steps")
    return events


def pyplot():
    """matplotlib's pyplot, drawing to files; matplotlib is in requirements-dev.txt, not needed to train."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("plot_curves.py needs matplotlib: pip install -r requirements-dev.txt") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(runs, output, hours="wall"):
    """Accuracy against meta-steps (left) and against training hours (right, wall-clock or CPU)."""
    key, kind = HOURS[hours]
    plt = pyplot()
    legend = 0.22 * -(-len(runs) // LEGEND_COLUMNS)  # the legend's height in inches
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4.2 + legend))
    for label, events in runs:
        val = events["val"]
        line, = by_step.plot([r["step"] for r in val], [100 * r["acc"] for r in val], marker=".", label=label)
        train = events.get("train", [])
        if train:
            by_step.plot([r["step"] for r in train], [100 * r["acc"] for r in train], color=line.get_color(),
                         alpha=0.3, linewidth=0.8)
        timed = [r for r in val if isinstance(r.get(key), (int, float))]
        if len(timed) < len(val):  # an earlier version's records, or a resume of one
            print(f"warning: {label}: {len(val) - len(timed)} of {len(val)} validation records carry no {key} (an "
                  f"earlier version of this package wrote them): the {kind} time panel leaves them out", file=sys.stderr)
        by_time.plot([r[key] / 3600 for r in timed], [100 * r["acc"] for r in timed], marker=".",
                     color=line.get_color(), label=label)
    by_step.set_xlabel("meta-training step")
    by_time.set_xlabel(f"{kind} training time (hours)")
    for axis in (by_step, by_time):
        axis.set_ylabel("accuracy after fine-tuning (%)")
        axis.grid(alpha=0.3)
    by_step.set_title("validation (dots) and training queries (faint) against meta-steps", fontsize=10)
    by_time.set_title(f"validation accuracy against {kind} time", fontsize=10)
    fig.legend(*by_step.get_legend_handles_labels(), loc="lower center", ncol=LEGEND_COLUMNS, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend / fig.get_figheight(), 1, 1))
    try:
        write_atomic(output, lambda f: fig.savefig(f, format="png", dpi=110, metadata=dict([MARK])),
                     "pass another --output")
    finally:
        plt.close(fig)


def is_earlier_plot(path):
    """Whether `path` is a PNG with MARK among the text entries before its image data."""
    mark = b"%s\0%s" % tuple(part.encode() for part in MARK)
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            while len(head := f.read(8)) == 8:
                size, kind = struct.unpack(">I4s", head)
                if kind == b"IDAT":
                    return False
                start = f.tell()
                if kind == b"tEXt" and size == len(mark) and f.read(size) == mark:
                    return True
                f.seek(start + size + 4)  # past the data and its CRC
    except OSError:
        pass
    return False


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--metrics", action="append", required=True, type=path_type("--metrics"), help="a metrics.jsonl (repeat for several runs)")
    parser.add_argument("--label", action="append", default=[], help="legend name per --metrics, in order")
    parser.add_argument("--output", required=True, type=path_type("--output"), help="PNG file to write")
    parser.add_argument("--hours", choices=sorted(HOURS), default="wall",
                        help="x axis of the right panel: wall-clock or CPU time (all threads) since step 0")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.metrics):
        raise UserError(f"{len(args.label)} --label for {len(args.metrics)} --metrics: give one label per metrics file or none")
    labels = args.label or [Path(m).parent.name or "run" for m in args.metrics]
    check_output_file(args.output, "--output", "a plot of plot_curves.py", is_earlier_plot)
    plot([(label, read_metrics(m)) for label, m in zip(labels, args.metrics)], args.output, args.hours)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    run_cli(main)
