"""The README's main command (scripts/quickstart.sh) end to end, in a reduced form."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_trains_and_reports_test_accuracy(tmp_path, omniglot_root, omniglot_npy_dir):
    out = tmp_path / "quickstart"
    env = dict(os.environ, VENV=sys.prefix, NPY_DIR=str(omniglot_npy_dir))
    reduced = ["--meta_steps", "3", "--task_num", "2", "--k_qry", "2", "--k_qry_test", "2", "--num_filters", "8", "--num_blocks", "2",
               "--log_every", "1", "--eval_every", "0", "--val_tasks", "4", "--save_every", "3",
               "--eval_tasks", "6", "--eval_batch", "4", "--update_step_test", "2"]
    result = subprocess.run(["bash", str(REPO / "scripts" / "quickstart.sh"), str(omniglot_root), str(out), *reduced], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "Traceback" not in log
    assert "step 3/3" in log and "validation accuracy" in log
    assert "test accuracy:" in log and "+/-" in log
    report = json.loads((out / "best.ckpt.eval.json").read_text())
    assert report["tasks"] == 6 and report["update_step_test"] == 2
    assert 0.0 <= report["acc"] <= 1.0 and report["ci95"] >= 0.0


def test_quickstart_names_a_missing_data_folder(tmp_path):
    """bash scripts/quickstart.sh MISSING -> exit 2, one `error:` line naming the folder; nothing is built."""
    missing = tmp_path / "no_omniglot"
    env = dict(os.environ, VENV=sys.prefix, NPY_DIR=str(tmp_path / "npy"))
    result = subprocess.run(["bash", str(REPO / "scripts" / "quickstart.sh"), str(missing), str(tmp_path / "out")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
