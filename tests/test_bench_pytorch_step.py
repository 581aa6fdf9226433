"""benchmarks/bench_pytorch_step.py, the PyTorch baseline, checked without PyTorch: it must start
from the package's settings, weights and episodes (so that --check can compare first meta-losses),
and say in one line how to install PyTorch when it is missing."""
import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import step_options
from src.model_utils.config import load_config
from src.learner import BN_EPS, Learner

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_pytorch_step.py"


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_norm_epsilon_is_the_learners():
    """The batch-norm epsilon is src/learner.py's (the benchmark's other settings are read from
    default_config.yaml)."""
    assert _load(SCRIPT).BN_EPS == BN_EPS


def test_step_options_default_to_the_config_and_the_kernel_probe_to_a_small_step():
    """The benchmarks' task options read default_config.yaml; onednn_kernels.py deliberately probes a smaller
    step (the kernels, not the time)."""
    cfg = load_config([])
    timed = argparse.ArgumentParser()
    step_options.add_step_options(timed)
    args = timed.parse_args([])
    assert args.order == "second" and not cfg.first_order
    assert {key: getattr(args, key) for key in step_options.TASK_KEYS} == {key: cfg[key] for key in step_options.TASK_KEYS}
    probed = argparse.ArgumentParser()
    step_options.add_task_options(probed, task_num=4, update_step=1)
    assert (probed.parse_args([]).task_num, probed.parse_args([]).update_step) == (4, 1)
    assert load_config(step_options.task_overrides(timed.parse_args(["--order", "first", "--n_way", "7"]))) == \
        load_config(["--first_order", "--n_way", "7"])


def test_weights_and_episodes_are_the_packages():
    bench = _load(SCRIPT)
    cfg = load_config(["--n_way=7", "--task_num=3", "--k_qry=2"])
    learner = Learner(cfg.n_way, cfg.num_filters, cfg.num_blocks, seed=cfg.seed)
    weights = bench.initial_weights(cfg.n_way)
    assert [w.shape for w in weights] == [p.shape for p in learner.trainable_params()]
    for mine, theirs in zip(weights, learner.trainable_params()):
        np.testing.assert_array_equal(mine, theirs.asnumpy())
    x_spt, y_spt, x_qry, y_qry = step_options.synthetic_batch(7, 1, 2, 3, np.random.default_rng(0))
    assert (x_spt.shape, x_qry.shape, x_spt.dtype) == ((3, 7, 1, 28, 28), (3, 14, 1, 28, 28), np.float32)
    np.testing.assert_array_equal(y_qry, np.tile([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6], (3, 1)))
    np.testing.assert_array_equal(y_spt, np.tile(np.arange(7), (3, 1)))


def test_same_padding_gives_the_packages_feature_map_sizes():
    bench, size, sizes = _load(SCRIPT), 28, []
    for _ in range(4):
        before, after = bench.same_padding(size)
        size = (size + before + after - 3) // 2 + 1
        sizes.append(size)
    assert sizes == [14, 7, 4, 2]
    assert [bench.same_padding(n) for n in (28, 14, 7, 4)] == [(0, 1), (0, 1), (1, 1), (0, 1)]


def test_without_pytorch_one_error_line_says_how_to_install_it():
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--task_num", "2"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: PyTorch is not installed: `pip install torch` (in a separate venv) to run this baseline"]


def test_bad_count_is_one_error_line():
    """`python benchmarks/bench_pytorch_step.py --steps 0`: exit code 2, one line, before PyTorch is looked for."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", "0"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (2, "", ["error: --steps must be >= 1, got 0"])
