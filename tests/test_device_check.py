"""benchmarks/device_check.py, run on CPU in its short mode against the CPU reference it ships with: every
comparison passes, a reference off by 1% in one meta-gradient fails that comparison alone (exit code 1), and
a backend this machine lacks is one error line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"
REFERENCE = SCRIPT.with_name("device_check_reference.npz")


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=1800)


@pytest.mark.slow
def test_short_check_on_cpu_passes_and_catches_a_wrong_meta_gradient(omniglot_root, omniglot_npy_dir, tmp_path):
    reference = dict(np.load(REFERENCE))
    reference["grad_second"] = reference["grad_second"] * 1.01
    tampered = tmp_path / "reference.npz"
    np.savez(tampered, **reference)
    proc = _run("--device_target", "CPU", "--short", "--data_path", omniglot_root, "--npy_dir", omniglot_npy_dir,
                "--reference", tampered)
    lines = proc.stdout.splitlines()
    result = json.loads(lines[-1])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert result["failures"] == ["meta-gradient second order, grouped+fused, relative error"], proc.stdout
    checks = [line for line in lines if line.startswith(("ok", "FAIL"))]
    assert len(checks) == 4 and sum(line.startswith("ok") for line in checks) == 3, proc.stdout
    assert result["s_per_train_step"] > 0 and 0.9 < result["test_acc"] <= 1.0


def test_a_backend_this_machine_lacks_is_one_error_line():
    import mindspore as ms
    if ms.device_context.gpu.is_available():
        pytest.skip("this machine runs GPU")
    proc = _run("--device_target", "GPU", "--short")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: device_target GPU is not available")
