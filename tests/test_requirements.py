"""requirements.txt holds what running needs; the test command also installs requirements-dev.txt."""
import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def names(path):
    """The distribution names a requirements file lists, with the files it includes (-r)."""
    found = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found |= names(path.parent / line[3:].strip())
        elif line:
            found.add(_normal(re.split(r"[=<>!~\[ ;]", line)[0]))
    return found


def _normal(name):
    return name.lower().replace("_", "-")


def provided(path):
    """What installing a requirements file provides: its distributions and their direct dependencies."""
    listed = names(path)
    return listed | {_normal(re.split(r"[=<>!~\[ ;(]", dependency)[0])
                     for name in listed for dependency in importlib.metadata.requires(name) or ()}


def third_party_imports(paths):
    """The distributions of the modules `paths` import that are neither the standard library nor this package."""
    modules = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    local = {path.stem for folder in (REPO, REPO / "benchmarks", REPO / "tests") for path in folder.glob("*.py")}
    owners = importlib.metadata.packages_distributions()  # an import no installed distribution provides: its name
    return {_normal(owners.get(m, [m])[0]) for m in modules - set(sys.stdlib_module_names) - local - {"src", "tests"}}


def recording_venv(tmp_path):
    """(VENV/bin/python that records its arguments instead of running, the file they go to)."""
    calls = tmp_path / "calls"
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/bash\necho "$*" >> {calls}\n')
    python.chmod(0o755)
    return python, calls


def test_each_requirements_file_covers_what_its_code_imports():
    """requirements.txt provides every import of the package and its programs; the demo's file adds the demo's;
    the test command's file adds what the tests and benchmarks import. Test tools stay out of requirements.txt."""
    programs = [REPO / name for name in ("omniglot_train.py", "eval.py", "predict.py", "export.py")]
    running = names(REPO / "requirements.txt")
    assert third_party_imports([*REPO.glob("src/**/*.py"), *programs]) <= running
    assert third_party_imports([REPO / "demo.py"]) <= provided(REPO / "requirements-demo.txt")
    everything = [*REPO.glob("tests/*.py"), *REPO.glob("benchmarks/*.py"), *REPO.glob("*.py")]
    # torch: only benchmarks/bench_pytorch_step.py, the optional PyTorch comparison, which says how to get it.
    assert third_party_imports(everything) - {"torch"} <= provided(REPO / "requirements-dev.txt")
    assert not running & {"pytest", "hypothesis", "gradio", "matplotlib"}


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
        f"-m pytest tests -q -m  -n auto --maxprocesses 4 --dist loadgroup --durations=15 -k x (OMNIGLOT_REQUIRED={expected})",
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
