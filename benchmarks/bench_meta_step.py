"""Time one meta-training step of the package on synthetic episodes (no data needed).

    python benchmarks/bench_meta_step.py --order second --task_num 32 --update_step 5
    python benchmarks/bench_meta_step.py --order second --task_num 8 --learn_inner_lr --per_step_bn --msl_steps 1
    python benchmarks/bench_meta_step.py --order second --conv_impl per_task --bn_impl elementary

Any other key of default_config.yaml passes through as `--key value` (e.g. --cpu_threads 1, the
MAML++ options).

Runs the exact step omniglot_train.py runs at its first meta-step (src/meta_optimizer.py: build_maml
+ MetaTrainStep + Adam with the meta learning rate schedule; with msl_steps the multi-step loss with
its first weights, with first_order_steps the first-order step) and prints each step's time, then as
its last line one JSON object: order (of the timed step), task_num, cpu_threads, the MAML++ options,
conv_impl and bn_impl (the formulations timed, `auto` resolved for the device),
s_per_step (median), compile_s (first call), peak_rss_mb, gflop_per_step, gflops (achieved) and
sgemm_gflops (a 2048x2048 float32 matmul timed in the same process: the machine's practical peak),
first_loss (the meta-loss of the first step, which bench_pytorch_step.py's --check compares with
PyTorch's), then what it ran on: `cpu` (model name), `isa` (the instruction set oneDNN dispatches
to) and `conv_kernels` (oneDNN's convolution implementations in the same step, from
benchmarks/onednn_kernels.py).

With `--ranks N` it times the step twice, each in fresh processes: in one process, then data-parallel
over N ranks started by msrun as the launch scripts start them (src/model_utils/msrun.py; each rank adapts
task_num / N tasks and is pinned to its own cores, as in training), and prints the one-process JSON
with `ranks`, `s_per_step_ranks`, `compile_s_ranks` and `speedup` (one process's s/step over the N
ranks') added.

With `--profile DIR` it then runs `--steps` more steps under MindSpore's profiler (the trace stays
in DIR for MindStudio Insight), prints the time per step of each operator type, heaviest first,
and adds the eight heaviest to the JSON as `top_ops` (seconds per step): where a step's time goes.

FLOPs are counted from the network's shapes: a forward pass is the multiply-adds of its
convolutions and dense layer (x2); its backward costs twice its forward (input and weight
gradients); a second-order inner step adds the backward of that backward, again twice its
forward-plus-backward. Batch norm and element-wise work are not counted.
"""
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `import src...` from the repo root

import mindspore as ms  # noqa: E402
from mindspore import ops  # noqa: E402

from onednn_kernels import probe  # noqa: E402
from step_options import (PASS_THROUGH, STEP_LEAST, TASK_KEYS, add_step_options, below_least,  # noqa: E402
                          synthetic_batch, task_overrides)
from src.formulation import resolve  # noqa: E402
from src.meta_optimizer import MetaOptimizer  # noqa: E402
from src.model_utils import distributed, msrun  # noqa: E402
from src.model_utils.config import load_config  # noqa: E402
from src.model_utils.device import setup_device  # noqa: E402
from src.model_utils.errors import ArgumentParser, UserError, child_error, run_cli  # noqa: E402
from src.model_utils.launch_plan import free_port  # noqa: E402


def forward_flop(cfg, images):
    """Multiply-adds x2 of one forward pass over `images` images of one task."""
    flop, size, in_ch = 0, cfg.imgsz, 1
    for _ in range(cfg.num_blocks):
        size = (size + 1) // 2  # 3x3, stride 2, 'same'
        flop += 2 * cfg.num_filters * in_ch * 9 * size * size
        in_ch = cfg.num_filters
    flop += 2 * cfg.num_filters * cfg.n_way
    return flop * images


def step_flop(cfg, first_order):
    support = forward_flop(cfg, cfg.n_way * cfg.k_spt)
    query = forward_flop(cfg, cfg.n_way * cfg.k_qry)
    inner = 3 * support * (1 if first_order else 3)
    return cfg.task_num * (cfg.update_step * inner + 3 * query)


def sgemm_gflops(size=2048, repeats=5):
    a = ms.Tensor(np.random.rand(size, size).astype(np.float32))
    ops.matmul(a, a).asnumpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ops.matmul(a, a).asnumpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def profile_steps(train_step, batch, steps, out_dir):
    """Op-type totals (ms per step, heaviest first) of `steps` steps under MindSpore's profiler."""
    from mindspore.profiler import ProfilerActivity, profile, tensorboard_trace_handler
    out_dir = Path(out_dir)
    before = set(out_dir.glob("*/FRAMEWORK/cpu_op_type_info_*.csv"))
    prof = profile(activities=[ProfilerActivity.CPU], on_trace_ready=tensorboard_trace_handler(str(out_dir)))
    prof.start()
    for _ in range(steps):
        train_step(*batch)[0].asnumpy()
        prof.step()
    prof.stop()
    tables = sorted(set(out_dir.glob("*/FRAMEWORK/cpu_op_type_info_*.csv")) - before)
    if not tables:
        raise UserError(f"the profiler wrote no CPU operator table under {out_dir}: --profile reads the CPU "
                        "backend's tables only (--device_target CPU)")
    totals = {}
    with open(tables[-1], newline="") as table:
        for row in csv.DictReader(table):
            totals[row["op_type"]] = totals.get(row["op_type"], 0.0) + float(row["total_compute_time"]) / steps
    return sorted(totals.items(), key=lambda item: -item[1])


def last_json(text):
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def compare_ranks(argv, ranks):
    """One process, then `ranks` ranks under msrun, each a fresh run of this script; the combined JSON."""
    script = str(Path(__file__).resolve())
    single = subprocess.run([sys.executable, script, *argv, "--ranks", "1"], capture_output=True, text=True)
    if single.returncode:
        raise child_error("the one-process run", single.returncode, single.stderr)
    with tempfile.TemporaryDirectory() as logs:
        command, env = msrun.command(ranks, free_port(), logs, [script, *argv, "--ranks", str(ranks)])
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        rank0 = Path(logs, "worker_0.log").read_text() if Path(logs, "worker_0.log").exists() else ""
        if proc.returncode:
            raise child_error(f"the {ranks}-rank run", proc.returncode, rank0 or proc.stdout + proc.stderr)
    result, spread = last_json(single.stdout), last_json(rank0)
    result.update(ranks=ranks, s_per_step_ranks=spread["s_per_step"], compile_s_ranks=spread["compile_s"],
                  speedup=round(result["s_per_step"] / spread["s_per_step"], 3))
    print(json.dumps(result))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(description=__doc__.split("\n")[0], epilog=PASS_THROUGH, allow_abbrev=False)
    add_step_options(parser)
    parser.add_argument("--profile", metavar="DIR", help="also profile --steps steps by operator type; trace into DIR")
    parser.add_argument("--ranks", type=int, default=1,
                        help="also time the step data-parallel over this many ranks (msrun), against one process")
    args, config_keys = parser.parse_known_args(argv)
    problem = below_least(args, {**STEP_LEAST, "ranks": 1})
    if problem:
        raise UserError(problem)
    cfg = load_config(task_overrides(args) + config_keys)
    msrun_rank = distributed.launched_by_msrun()
    distributed.check_meta_batch(cfg.task_num, distributed.launched_size() if msrun_rank else args.ranks)
    if args.ranks > 1 and not msrun_rank:
        compare_ranks(argv, args.ranks)
        return 0
    setup_device(cfg)
    ranks = distributed.current()
    meta_optimizer = MetaOptimizer(cfg, ranks.mean_cell())
    train_step, loss_weights = meta_optimizer.step_at(0)
    first_order = meta_optimizer.first_order_at(0)
    batch = tuple(map(ms.Tensor, synthetic_batch(cfg.n_way, cfg.k_spt, cfg.k_qry, cfg.task_num // ranks.size,
                                                 np.random.default_rng(0), cfg.imgsz))) + loss_weights

    start = time.perf_counter()
    first_loss = float(train_step(*batch)[0].asnumpy())
    compile_s = time.perf_counter() - start
    print(f"first step (compile + run): {compile_s:.2f} s", flush=True)
    for _ in range(args.warmup):
        train_step(*batch)[0].asnumpy()
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        train_step(*batch)[0].asnumpy()
        times.append(time.perf_counter() - start)
        print(f"step {step + 1}: {times[-1]:.3f} s", flush=True)
    s_per_step = statistics.median(times)
    gflop = step_flop(cfg, first_order) / 1e9
    result = {"order": "first" if first_order else "second", "n_way": cfg.n_way, "k_spt": cfg.k_spt,
              "k_qry": cfg.k_qry, "task_num": cfg.task_num, "update_step": cfg.update_step,
              "cpu_threads": cfg.cpu_threads,
              **{key: cfg[key] for key in ("msl_steps", "learn_inner_lr", "per_step_bn", "first_order_steps")},
              **dict(zip(("conv_impl", "bn_impl"), resolve(cfg))),
              "s_per_step": round(s_per_step, 4),
              "compile_s": round(compile_s, 2),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "gflop_per_step": round(gflop, 2), "gflops": round(gflop / s_per_step, 2),
              "sgemm_gflops": round(sgemm_gflops(), 1), "first_loss": round(first_loss, 6)}
    if not msrun_rank:  # with --ranks, the one-process run says what it ran on
        kernels = probe([f"--order={args.order}", *(f"--{key}={getattr(args, key)}" for key in TASK_KEYS),
                         *config_keys])
        result.update(cpu=kernels["cpu"], isa=kernels["isa"], conv_kernels=kernels["kernels"].get("convolution", []))
    if args.profile:
        ops_ms = profile_steps(train_step, batch, args.steps, args.profile)
        op_total = sum(ms_ for _, ms_ in ops_ms)
        print(f"operators by time per step (sum {op_total / 1e3:.3f} s of a {s_per_step:.3f} s step):")
        for op_type, op_ms in ops_ms[:15]:
            print(f"  {op_type:<28} {op_ms:10.1f} ms  {100 * op_ms / op_total:5.1f}%")
        result["top_ops"] = {op_type: round(op_ms / 1e3, 4) for op_type, op_ms in ops_ms[:8]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run_cli(main)
