"""Time EpisodeSampler.next_batch(), rotations and affine distortions on and off: the input pipeline must
stay far below one MAML meta-step.

    python benchmarks/bench_sampler.py --npy_dir DIR [--batches 300] [--seed 0]
    python benchmarks/bench_sampler.py --synthetic
"""
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: make `import src...` resolve from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from src.data.episode_sampler import EpisodeSampler
from src.data.npy_cache import load_omniglot
from src.data.splits import split_class_ids
from src.model_utils.errors import ArgumentParser, UserError, run_cli

# (n_way, k_spt, k_qry, task_num): the Finn et al. Omniglot settings used for training.
CASES = ((5, 1, 15, 32), (20, 1, 15, 16))


def _parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--npy_dir", help="folder holding omniglot.npy and omniglot_index.json")
    source.add_argument("--synthetic", action="store_true", help="random float16 images of the real shape")
    parser.add_argument("--imgsz", type=int, default=28, help="image side with --synthetic (default 28)")
    parser.add_argument("--batches", type=int, default=300, help="timed batches per case (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    if args.batches < 1:
        raise UserError(f"--batches must be at least 1, got {args.batches}")
    if args.synthetic:
        rng = np.random.default_rng(args.seed)
        images = rng.random((1623, 20, args.imgsz, args.imgsz), dtype=np.float32).astype(np.float16)
        train = np.arange(1100)
        source = f"synthetic {images.shape}"
    else:
        data = load_omniglot(args.npy_dir)
        images = data.images
        train = split_class_ids(data.classes, "finn")["train"]
        source = f"{Path(args.npy_dir) / 'omniglot.npy'} {images.shape}, finn train split"
    print(f"data: {source}; {args.batches} batches per case, numpy {np.__version__}")
    for n_way, k_spt, k_qry, task_num in CASES:
        for rotate, affine in ((True, False), (False, False), (True, True)):
            sampler = EpisodeSampler(images, train, n_way, k_spt, k_qry, task_num, rotate, args.seed, affine)
            sampler.next_batch()  # warm-up: first-touch page faults, lazy imports
            times = np.empty(args.batches)
            for i in range(args.batches):
                start = time.perf_counter()
                sampler.next_batch()
                times[i] = time.perf_counter() - start
            ms, p90 = 1e3 * np.median(times), 1e3 * np.percentile(times, 90)
            print(f"{n_way:2d}-way {k_spt}-shot {k_qry} queries, {task_num} tasks, rotate={rotate!s:5} "
                  f"affine={affine!s:5}: "
                  f"median {ms:6.2f} ms/batch = {1e3 / ms:6.1f} batches/s (p90 {p90:.2f} ms)")
    return 0


if __name__ == "__main__":
    run_cli(main)
