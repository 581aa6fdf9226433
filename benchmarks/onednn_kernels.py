"""Which oneDNN kernels the package's CPU steps run, read from oneDNN's own verbose log.

    python benchmarks/onednn_kernels.py [--order second] [--task_num 4] [--update_step 1] [--key value ...]

Runs one meta-training step (built by src/meta_optimizer.py, as training builds it; the first
meta-step's) and one evaluation batch (AdaptAndScore, as eval.py does) in a child process with
ONEDNN_VERBOSE=1, then prints one JSON object: the CPU model, the instruction set oneDNN dispatches
to (its `isa:` line) and the implementations of every primitive kind it executed. Any other key of
default_config.yaml passes through as `--key value`. An implementation whose name contains `ref` is
oneDNN's slow reference fallback; tests/test_onednn_kernels.py fails on any.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: make `import src...` resolve from the repo root

from step_options import PASS_THROUGH, add_task_options, synthetic_batch, task_overrides  # noqa: E402
from src.model_utils.errors import ArgumentParser, child_error, run_cli  # noqa: E402


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
    Returns {"cpu": ..., "isa": ..., "kernels": {kind: [implementations]}}; a child that fails is a
    UserError with its last error line."""
    env = dict(os.environ if env is None else env, ONEDNN_VERBOSE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)
    if proc.returncode:
        raise child_error("the kernel probe", proc.returncode, proc.stderr)
    isa, kernels = parse_verbose(proc.stdout)
    return {"cpu": cpu_model(), "isa": isa, "kernels": kernels}


def run_once(args, config_keys):
    """The first meta-step of the configured training and one evaluation batch of `args.task_num` tasks,
    on synthetic data."""
    import numpy as np
    import mindspore as ms

    from src.model_utils.config import load_config
    from src.model_utils.device import setup_device
    from src.maml import AdaptAndScore
    from src.meta_optimizer import MetaOptimizer

    cfg = load_config([*task_overrides(args), "--update_step_test=1", *config_keys])
    setup_device(cfg)
    meta_optimizer = MetaOptimizer(cfg)
    step, loss_weights = meta_optimizer.step_at(0)
    batch = tuple(map(ms.Tensor, synthetic_batch(cfg.n_way, cfg.k_spt, cfg.k_qry, cfg.task_num,
                                                 np.random.default_rng(0), cfg.imgsz)))
    step(*batch, *loss_weights)[0].asnumpy()
    AdaptAndScore(meta_optimizer.maml, cfg.update_step_test)(*batch)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(description=__doc__.split("\n")[0], epilog=PASS_THROUGH, allow_abbrev=False)
    add_task_options(parser, task_num=4, update_step=1)  # the kernels, not the time: a small step suffices
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, config_keys = parser.parse_known_args(argv)
    if args.child:
        run_once(args, config_keys)
    else:
        print(json.dumps(probe(argv)))
    return 0


if __name__ == "__main__":
    run_cli(main)
