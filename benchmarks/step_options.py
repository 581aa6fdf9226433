"""The meta-step options and synthetic episodes shared by the benchmarks, so that runs of
bench_meta_step.py, bench_pytorch_step.py and onednn_kernels.py with the same arguments time the
same step on the same data."""
import numpy as np

IMGSZ = 28  # the package's default image size; Omniglot is grey-scale (one channel)


def add_task_options(parser):
    """The step: its derivative order and the task shapes."""
    parser.add_argument("--order", choices=("first", "second"), default="second")
    for key, default in (("n_way", 5), ("k_spt", 1), ("k_qry", 15), ("task_num", 32), ("update_step", 5)):
        parser.add_argument(f"--{key}", type=int, default=default)


def add_step_options(parser):
    """The step, and how many to time."""
    add_task_options(parser)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first (compiling) one")


def synthetic_batch(n_way, k_spt, k_qry, tasks, rng, imgsz=IMGSZ):
    """Random images with labels 0..n_way-1, as numpy (x_spt, y_spt, x_qry, y_qry), tasks first:
    images float32 (tasks, n_way * shots, 1, imgsz, imgsz), labels int32 (tasks, n_way * shots)."""
    def part(shots):
        x = rng.random((tasks, n_way * shots, 1, imgsz, imgsz), dtype=np.float32)
        return x, np.tile(np.repeat(np.arange(n_way, dtype=np.int32), shots), (tasks, 1))
    return (*part(k_spt), *part(k_qry))
