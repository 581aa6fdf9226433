"""benchmarks/bench_meta_step.py: the JSON line docs/performance.md's tables are made of, and --profile;
bench_meta_step.py and bench_eval.py refusing bad input with one error line."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_meta_step.py"


@pytest.mark.parametrize("args, line", [
    (["--task_num", "0"], "error: task_num must be >= 1, got 0"),
    (["--key", "1"], "error: unknown option '--key': --help lists the options"),
    (["--steps", "0"], "error: --steps must be >= 1, got 0"),
    (["--warmup", "-1"], "error: --warmup must be >= 0, got -1"),
    (["--ranks", "0"], "error: --ranks must be >= 1, got 0"),
    (["--task_num", "3", "--ranks", "2"], "error: task_num 3 cannot be split evenly over 2 ranks: pass a --task_num "
                                          "that is a multiple of 2 (e.g. 4), or another number of ranks"),
], ids=["task_num", "unknown_key", "steps", "warmup", "ranks", "indivisible"])
def test_bench_meta_step_refuses_bad_input_in_one_line(args, line, tmp_path):
    """e.g. `python benchmarks/bench_meta_step.py --steps 0`: exit code 2 and one `error:` line, before any step."""
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (2, "", [line])


@pytest.mark.parametrize("args, line", [
    ([], "error: the following arguments are required: --ckpt, --data_path"),
    (["--ckpt", "a.ckpt", "--data_path", ".", "--ranks", "0"], "error: --ranks must be >= 1, got 0"),
    (["--ckpt", "absent.ckpt", "--data_path", "."], "error: checkpoint {tmp}/absent.ckpt not found: "),
], ids=["required", "ranks", "launcher_refuses"])
def test_bench_eval_refuses_bad_input_in_one_line(args, line, tmp_path):
    """e.g. `python benchmarks/bench_eval.py --ckpt absent.ckpt --data_path .`: the launch script's own error
    line, exit code 2, no traceback."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_eval.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, len(proc.stderr.splitlines())) == (2, "", 1), proc.stderr
    assert proc.stderr.startswith(line.format(tmp=tmp_path)), proc.stderr


@pytest.mark.slow
def test_benchmark_reports_and_profiles_a_real_step(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--task_num", "2",
                           "--update_step", "1", "--steps", "2", "--warmup", "0", "--cpu_threads", "1",
                           "--profile", str(tmp_path / "prof")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert (result["order"], result["n_way"], result["k_qry"], result["task_num"], result["update_step"],
            result["cpu_threads"]) == ("second", 5, 15, 2, 1, 1)
    # Counted by hand for 5-way 1-shot, 15 queries, 2 tasks, 1 second-order inner step: a forward pass
    # is 5,313,664 FLOP per image (28 -> 14 -> 7 -> 4 -> 2 pixels, 64 filters); the support pass
    # with its backward and second-order terms costs 9x that, the query pass with its backward 3x.
    assert result["gflop_per_step"] == round(2 * (9 * 5 * 5313664 + 3 * 75 * 5313664) / 1e9, 2) == 2.87
    for key in ("s_per_step", "compile_s", "peak_rss_mb", "gflops", "sgemm_gflops"):
        assert result[key] > 0, key
    # It names what it ran on: the CPU, oneDNN's instruction set and convolution kernels (no reference one).
    assert result["cpu"] and result["isa"]
    assert result["conv_kernels"] and not [name for name in result["conv_kernels"] if "ref" in name]
    # The profile names the convolution kernels among the heaviest operators of a step.
    assert {"Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"} <= set(result["top_ops"])
    assert any(line.startswith("operators by time per step") for line in lines)
    assert list((tmp_path / "prof").glob("*/FRAMEWORK/cpu_op_type_info_*.csv"))


@pytest.mark.slow
def test_benchmark_times_two_ranks_against_one_process(tmp_path):
    """--ranks 2: the one-process JSON line with the 2-rank step time (msrun, 1 task per rank) beside it."""
    proc = subprocess.run([sys.executable, str(BENCH), "--task_num", "2",
                           "--update_step", "1", "--steps", "2", "--warmup", "0", "--ranks", "2"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["task_num"], result["ranks"]) == (2, 2)
    for key in ("s_per_step", "s_per_step_ranks", "compile_s_ranks"):
        assert result[key] > 0, key
