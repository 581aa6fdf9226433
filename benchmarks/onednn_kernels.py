"""Which oneDNN kernels the package's CPU steps run, read from oneDNN's own verbose log.

    python benchmarks/onednn_kernels.py [--order second] [--task_num 4] [--update_step 1]

Runs one meta-training step (build_maml + MetaTrainStep, as training does) and one evaluation
batch (AdaptAndScore, as eval.py does) in a child process with ONEDNN_VERBOSE=1, then prints one
JSON object: the CPU model, the instruction set oneDNN dispatches to (its `isa:` line) and the
implementations of every primitive kind it executed. An implementation whose name contains `ref`
is oneDNN's slow reference fallback; tests/test_onednn_kernels.py fails on any.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from step_options import add_task_options, synthetic_batch

REPO = Path(__file__).resolve().parents[1]


def cpu_model():
    """The CPU's model name as the kernel reports it (Linux), else what Python knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_verbose(text):
    """(isa, {primitive kind: sorted implementation names}) from oneDNN verbose lines."""
    isa, kernels = None, {}
    for line in text.splitlines():
        if not line.startswith("onednn_verbose,"):
            continue
        fields = line.split(",")
        if "isa:" in line and "info" in fields:
            isa = line.split("isa:", 1)[1].strip()
        elif "exec" in fields:
            at = fields.index("exec")  # ...,exec,cpu,KIND,IMPLEMENTATION,...
            if len(fields) > at + 3 and fields[at + 1] == "cpu":
                kernels.setdefault(fields[at + 2], set()).add(fields[at + 3])
    return isa, {kind: sorted(names) for kind, names in sorted(kernels.items())}


def probe(args=(), env=None, timeout=900):
    """Kernels of one step and one evaluation batch run with `args`, in a child process.

    `env` is the child's whole environment (default: this one); ONEDNN_VERBOSE is added to it.
    Returns {"cpu": ..., "isa": ..., "kernels": {kind: [implementations]}}."""
    env = dict(os.environ if env is None else env, ONEDNN_VERBOSE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"kernel probe failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    isa, kernels = parse_verbose(proc.stdout)
    return {"cpu": cpu_model(), "isa": isa, "kernels": kernels}


def run_once(args):
    """One meta-step of `args.order` and one evaluation batch of `args.task_num` tasks, synthetic data."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    import mindspore as ms
    from mindspore import nn

    from src.config import load_config
    from src.device import setup_device
    from src.maml import AdaptAndScore, MetaTrainStep, build_maml

    cfg = load_config([f"--n_way={args.n_way}", f"--k_spt={args.k_spt}", f"--k_qry={args.k_qry}",
                       f"--task_num={args.task_num}", f"--update_step={args.update_step}",
                       f"--first_order={args.order == 'first'}", "--update_step_test=1"])
    setup_device(cfg)
    maml = build_maml(cfg)
    step = MetaTrainStep(maml, nn.Adam(maml.learner.trainable_params()), cfg.update_step, cfg.first_order)
    batch = tuple(map(ms.Tensor, synthetic_batch(cfg.n_way, cfg.k_spt, cfg.k_qry, cfg.task_num,
                                                 np.random.default_rng(0), cfg.imgsz)))
    step(*batch)[0].asnumpy()
    AdaptAndScore(maml, cfg.update_step_test)(*batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_task_options(parser)
    parser.set_defaults(task_num=4, update_step=1)  # the kernels, not the time: a small step suffices
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        run_once(args)
        return
    forwarded = [arg for arg in sys.argv[1:] if arg != "--child"]
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    print(json.dumps(probe(forwarded)))


if __name__ == "__main__":
    main()
