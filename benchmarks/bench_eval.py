"""Time eval.py on a checkpoint in one process and data-parallel over N ranks (msrun), on the same tasks.

    python benchmarks/bench_eval.py --ckpt output/best.ckpt --data_path /data/omniglot --ranks 2 [--key value ...]

Runs scripts/run_eval_cpu.sh, then scripts/run_distribute_eval_cpu.sh with RANK_SIZE N, each
writing its report to a temporary folder, and prints one JSON line: tasks, ranks, the evaluation
seconds each report records (`seconds`, `seconds_ranks`: fine-tuning and scoring), the wall-clock
seconds of each whole command (`wall_s`, `wall_s_ranks`: also start-up, graph compilation and, for
the ranks, joining the cluster), `speedup` (wall_s / wall_s_ranks) and `same_result` (equal
accuracy and confidence interval). Other --key value pairs go to both runs (e.g. --eval_tasks 600
--npy_dir DIR --cpu_threads 1).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: make `import src...` resolve from the repo root

from src.model_utils.errors import ArgumentParser, UserError, child_error, run_cli  # noqa: E402

SCRIPTS = REPO / "scripts"


def timed_eval(script, first, data_path, ckpt, report, settings):
    start = time.perf_counter()
    proc = subprocess.run(["bash", str(SCRIPTS / script), first, data_path, ckpt, *settings, "--eval_report", report],
                          capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    wall = time.perf_counter() - start
    if proc.returncode:
        raise child_error(script, proc.returncode, proc.stdout + proc.stderr)
    return json.loads(Path(report).read_text()), wall


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the data-parallel run (default 2)")
    args, settings = parser.parse_known_args(argv)
    if args.ranks < 1:
        raise UserError(f"--ranks must be >= 1, got {args.ranks}")
    ckpt, data_path = str(Path(args.ckpt).resolve()), str(Path(args.data_path).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        one, wall = timed_eval("run_eval_cpu.sh", "0", data_path, ckpt, f"{tmp}/one.json", settings)
        spread, wall_ranks = timed_eval("run_distribute_eval_cpu.sh", str(args.ranks), data_path, ckpt,
                                        f"{tmp}/ranks.json", settings)
    print(json.dumps({"tasks": one["tasks"], "ranks": args.ranks, "seconds": round(one["seconds"], 2),
                      "seconds_ranks": round(spread["seconds"], 2), "wall_s": round(wall, 2),
                      "wall_s_ranks": round(wall_ranks, 2), "speedup": round(wall / wall_ranks, 3),
                      "same_result": (one["acc"], one["ci95"]) == (spread["acc"], spread["ci95"]),
                      "acc": one["acc"], "ci95": one["ci95"]}))
    return 0


if __name__ == "__main__":
    run_cli(main)
