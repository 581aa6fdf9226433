"""Shared fixtures: the real Omniglot data, located by OMNIGLOT_ROOT (default: default_config.yaml's data_path)."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmarks import their helpers by name
import src  # noqa: E402,F401  (sets the CPU kernel choice before any test runs MindSpore)


# Module fixtures that train or export (tens of seconds): the tests using one run on one worker (run_tests.sh's
# --dist loadgroup), so that it is built once.
COSTLY_MODULE_FIXTURES = ("trained", "exported", "runs")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        for name in COSTLY_MODULE_FIXTURES:
            if name in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}.{name}"))


@pytest.fixture(scope="module")
def graph_mode_cpu():
    """MindSpore in graph mode on CPU, as training runs, for the modules that compile cells in-process."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A 3-way checkpoint of a tiny network, for the tests of programs that load one without scoring it."""
    from tests.tiny_checkpoints import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.ckpt", "--n_way", "3", "--k_qry_test", "2")


def run_script(script, *args, cwd=None, env=None, timeout=120):
    """(exit code, stdout + stderr) of `bash script args...`, without the caller's launch variables (device,
    rank, interpreter and log settings), so that only `env` sets them."""
    scrubbed = ("DEVICE_ID", "RANK_SIZE", "RANK_ID", "PYTHON", "MASTER_PORT", "CUDA_VISIBLE_DEVICES", "GLOG_v")
    full_env = {k: v for k, v in os.environ.items() if k not in scrubbed}
    full_env.update(env or {})
    proc = subprocess.run(["bash", str(script), *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def _omniglot_root():
    from src.model_utils.config import load_config

    default = REPO / load_config([], check=False).data_path
    return Path(os.environ.get("OMNIGLOT_ROOT", default)).resolve()


@pytest.fixture(scope="session")
def omniglot_root():
    """The read-only Omniglot root holding raw/images_background.zip and raw/images_evaluation.zip."""
    root = _omniglot_root()
    if not (root / "raw" / "images_background.zip").is_file():
        msg = f"Omniglot data not found under {root}: set OMNIGLOT_ROOT to the folder holding raw/*.zip"
        if os.environ.get("OMNIGLOT_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def omniglot_npy_dir(omniglot_root, tmp_path_factory):
    """omniglot.npy (imgsz 28) built once per test session from the real zips, outside the data folder."""
    from src.data_preprocess import build_omniglot

    out = tmp_path_factory.mktemp("omniglot_npy")
    build_omniglot(omniglot_root, out, imgsz=28)
    return out


@pytest.fixture(scope="session")
def demo(omniglot_root, tmp_path_factory):
    """The demo's task (src/data/demo_task.py): 5-way 1-shot meta-test characters, 4 queries per class, and its answers."""
    from src.data.demo_task import make_demo_task

    out = tmp_path_factory.mktemp("demo") / "task"
    answers = make_demo_task(omniglot_root, out, n_way=5, k_spt=1, k_qry=4, seed=0)
    return out, answers


# src.model_utils.device loads lazily (with MindSpore, on first use) so that a setting refused before the device
# check is answered as fast as by the real interpreter; the stub set now outlives the loading.
_USABLE_DEVICE = ("import importlib.util, runpy, sys; spec = importlib.util.find_spec('src.model_utils.device'); "
                  "spec.loader = importlib.util.LazyLoader(spec.loader); "
                  "device = sys.modules[spec.name] = importlib.util.module_from_spec(spec); "
                  "spec.loader.exec_module(device); device.check_available = lambda target: None; "
                  "setattr(sys.modules['src.model_utils'], 'device', device); "
                  "runpy.run_module('src.model_utils.launch_plan', run_name='__main__')")


@pytest.fixture
def fake_python(tmp_path):
    """An interpreter named python3 for the launch scripts' tests: it appends {"argv", "cwd", "env"} of
    each call as one JSON line to calls.jsonl and exits with FAKE_EXIT (default 0). The
    launchers' questions to Python are answered without running anything: the standalone `-m src.model_utils.launch_plan
    train|eval --key value ...` by the real interpreter (any device taken for usable), the data-parallel one
    (`train|eval RANK_SIZE MASTER_PORT ...`) with the plan FAKE_LOG, FAKE_LOG_DIR, MASTER_PORT (or 23456),
    NUL-separated as src/model_utils/launch_plan.py answers."""
    record = tmp_path / "calls.jsonl"
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "if sys.argv[1:3] == ['-m', 'src.model_utils.launch_plan'] and sys.argv[4:5] != [] and sys.argv[4].startswith('-'):\n"
        # As if the device were usable (src.model_utils.device.check_available: tests/test_device.py).
        f"    os.execv({sys.executable!r}, [{sys.executable!r}, '-c', {_USABLE_DEVICE!r}, *sys.argv[3:]])\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    keys = ('DEVICE_ID', 'RANK_SIZE', 'RANK_ID', 'CUDA_VISIBLE_DEVICES')\n"
        "    env = {k: os.environ[k] for k in keys if k in os.environ}\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': env}) + '\\n')\n"
        "if sys.argv[1:3] == ['-m', 'src.model_utils.launch_plan']:\n"
        "    sys.stdout.write('\\0'.join([os.environ['FAKE_LOG'], os.environ['FAKE_LOG_DIR'], sys.argv[5] or '23456', '']))\n"
        "sys.exit(int(os.environ.get('FAKE_EXIT', '0')))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)

    def calls():
        return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []

    return SimpleNamespace(path=str(fake), calls=calls)
