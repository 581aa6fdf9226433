"""Shared fixtures: the real Omniglot data, located by OMNIGLOT_ROOT (default ../shared/omniglot)."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import src  # noqa: E402,F401  (sets the CPU kernel choice before any test runs MindSpore)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests (minutes); still run in CI")


def _omniglot_root():
    return Path(os.environ.get("OMNIGLOT_ROOT", REPO.parent / "shared" / "omniglot")).resolve()


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
    """The demo's task (src/demo_task.py): 5-way 1-shot meta-test characters, 4 queries per class, and its answers."""
    from src.demo_task import make_demo_task

    out = tmp_path_factory.mktemp("demo") / "task"
    answers = make_demo_task(omniglot_root, out, n_way=5, k_spt=1, k_qry=4, seed=0)
    return out, answers
