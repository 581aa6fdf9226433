"""Guard: on any x86-64 CPU, the package's steps run no oneDNN reference kernel.

On AVX-512 CPUs the oneDNN bundled with MindSpore 2.10 runs grouped convolutions with its
reference kernel unless the package caps the ISA (src/__init__.py). The child processes start from
an environment without any ONEDNN_* variable, as a new user's, and oneDNN's verbose log names the
implementation of every primitive executed: this is a deterministic check, not a timing.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from onednn_kernels import parse_verbose, probe
from src.model_utils.errors import UserError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "onednn_kernels.py"


def clean_env(**extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ONEDNN_", "DNNL_"))}
    return dict(env, **extra)


@pytest.mark.slow
@pytest.mark.parametrize("order", ["second", "first"])
def test_meta_step_and_eval_batch_run_no_reference_kernel(order):
    result = probe(["--order", order, "--task_num", "4", "--update_step", "1"], env=clean_env())
    kernels = result["kernels"]
    assert kernels.get("convolution"), f"oneDNN reported no convolution: {result}"
    slow = {kind: names for kind, names in kernels.items() if any("ref" in name for name in names)}
    assert not slow, f"reference kernels on {result['cpu']} ({result['isa']}): {slow}"


@pytest.mark.slow
def test_a_users_own_isa_setting_is_kept():
    result = probe(["--order", "first", "--task_num", "2"], env=clean_env(ONEDNN_MAX_CPU_ISA="SSE41"))
    assert result["isa"].startswith("Intel SSE4.1"), result["isa"]


def test_parse_verbose_reads_isa_and_implementations():
    log = "\n".join([
        "onednn_verbose,v1,info,cpu,isa:Intel AVX2",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,x64:gemm:jit,forward_training,src:f32,,alg,1.5",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,jit_uni_ncsp:conv+ref:any,backward_data,src,,alg,9",
        "onednn_verbose,v1,primitive,create:cache_miss,cpu,matmul,gemm:jit:f32,undef,src,,,0.1",
        "not a verbose line, exec,cpu,convolution,x",
    ])
    assert parse_verbose(log) == ("Intel AVX2", {"convolution": ["jit_uni_ncsp:conv+ref:any", "x64:gemm:jit"]})


@pytest.mark.parametrize("args, line", [
    (["--task_num", "0"], "error: task_num must be >= 1, got 0"),
    (["--num_filter", "8"], "error: unknown option '--num_filter': did you mean --num_filters? --help lists the "
                            "options"),
], ids=["task_num", "unknown_key"])
def test_bad_input_is_the_childs_one_error_line(args, line, tmp_path):
    """e.g. `python benchmarks/onednn_kernels.py --task_num 0`: the child refuses it (exit code 2) and its error
    line is the probe's, exit code 2, no traceback."""
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (2, "", [line])


def test_a_failing_child_is_a_user_error_with_its_last_error_line(tmp_path):
    (tmp_path / "yaml.py").write_text("raise RuntimeError('a broken install')\n")  # imported before the real yaml
    with pytest.raises(UserError) as err:
        probe(env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert str(err.value) == "the kernel probe failed (exit code 1): RuntimeError: a broken install"
