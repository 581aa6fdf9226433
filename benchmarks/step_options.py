"""The meta-step options and synthetic episodes shared by the benchmarks, so that runs of
bench_meta_step.py, bench_pytorch_step.py and onednn_kernels.py with the same arguments time the
same step on the same data. Their defaults are default_config.yaml's, read here without importing
src: importing src caps oneDNN's instruction set, which would change PyTorch's kernels too."""
from pathlib import Path

import numpy as np
import yaml

DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "default_config.yaml").read_text(encoding="utf-8"))
TASK_KEYS = ("n_way", "k_spt", "k_qry", "task_num", "update_step")
PASS_THROUGH = "Any other key of default_config.yaml passes through as --key value (python omniglot_train.py --help)."
# The least value of each count add_step_options adds.
STEP_LEAST = {"steps": 1, "warmup": 0}


def add_task_options(parser, **defaults):
    """The step: its derivative order and the task shapes; their defaults default_config.yaml's, or `defaults`."""
    parser.add_argument("--order", choices=("first", "second"), default="first" if DEFAULTS["first_order"] else "second")
    for key in TASK_KEYS:
        default = defaults.get(key, DEFAULTS[key])
        parser.add_argument(f"--{key}", type=int, default=default, help=f"default: {default}")


def add_step_options(parser):
    """The step, and how many to time."""
    add_task_options(parser)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first (compiling) one (default 1)")


def task_overrides(args):
    """The task options as default_config.yaml settings (`--key=value`), for src.model_utils.config.load_config."""
    return [f"--first_order={args.order == 'first'}", *(f"--{key}={getattr(args, key)}" for key in TASK_KEYS)]


def below_least(args, least):
    """The message for the first option of `least` ({name: least value}) below its least value, else None."""
    for key, low in least.items():
        if getattr(args, key) < low:
            return f"--{key} must be >= {low}, got {getattr(args, key)}"
    return None


def synthetic_batch(n_way, k_spt, k_qry, tasks, rng, imgsz=DEFAULTS["imgsz"]):
    """Random images with labels 0..n_way-1, as numpy (x_spt, y_spt, x_qry, y_qry), tasks first:
    images float32 (tasks, n_way * shots, 1, imgsz, imgsz), labels int32 (tasks, n_way * shots)."""
    def part(shots):
        x = rng.random((tasks, n_way * shots, 1, imgsz, imgsz), dtype=np.float32)
        return x, np.tile(np.repeat(np.arange(n_way, dtype=np.int32), shots), (tasks, 1))
    return (*part(k_spt), *part(k_qry))
