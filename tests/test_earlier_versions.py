"""Run folders written by earlier versions of this package still evaluate, resume and plot.

tests/earlier_versions/ holds two small runs (3-way 1-shot, 8 filters, 2 blocks, 300 steps), each written and
evaluated by an earlier commit, with that version's own 20-task report beside its checkpoint:
- without_mamlpp_settings: before the MAML++ options (no learn_inner_lr, per_step_bn, ... in its config);
- without_cpu_seconds: before CPU-time accounting (no cpu_seconds entry; conv biases).
Both metrics.jsonl name the cost train_s (and cpu_s), and their reports have no imgsz or transductive.
docs/checkpoints.md says how each is read.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.engine.eval_report import eval_protocol, report_protocol
from src.engine.loading import inference_settings
from src.model_utils.config import load_config
from src.model_utils.metrics_file import read_records

REPO = Path(__file__).resolve().parents[1]
EARLIER = sorted((REPO / "tests" / "earlier_versions").iterdir())
CKPT = "maml_step0000300.ckpt"


def _run(script, *args, cwd):
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.mark.parametrize("folder", EARLIER, ids=[p.name for p in EARLIER])
def test_earlier_report_counts_as_the_same_protocol(folder):
    """eval.py --ckpt CKPT --eval_tasks 20 measures what the earlier version's CKPT.eval.json did (it lacks imgsz
    and transductive), so eval.py may refresh it; a report of another protocol would be refused."""
    cfg, _, _ = inference_settings(["--ckpt", str(folder / CKPT), "--eval_tasks", "20"])
    assert (cfg.learn_inner_lr, cfg.per_step_bn, cfg.k_qry_test, cfg.transductive) == (False, False, 15, True)
    report = json.loads((folder / f"{CKPT}.eval.json").read_text())
    assert "transductive" not in report and report_protocol(report) == eval_protocol(cfg)
    assert report_protocol(report) != eval_protocol(load_config(["--k_qry_test", "5"], inherit=cfg))


@pytest.mark.slow
@pytest.mark.parametrize("folder", EARLIER, ids=[p.name for p in EARLIER])
def test_earlier_checkpoint_scores_as_its_own_version_did(folder, omniglot_root, omniglot_npy_dir, tmp_path):
    report = tmp_path / "report.json"
    proc = _run("eval.py", "--ckpt", folder / CKPT, "--data_path", omniglot_root, "--npy_dir", omniglot_npy_dir,
                "--eval_tasks", 20, "--eval_report", report, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    then = json.loads((folder / f"{CKPT}.eval.json").read_text())
    assert json.loads(report.read_text())["acc"] == then["acc"] > 0.45  # 3-way: chance is 0.33


@pytest.mark.slow
@pytest.mark.parametrize("folder", EARLIER, ids=[p.name for p in EARLIER])
def test_earlier_run_resumes_and_plots(folder, omniglot_root, omniglot_npy_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(folder, run)
    proc = _run("omniglot_train.py", "--resume", "--output_dir", run, "--meta_steps", 302, "--n_way", 3,
                "--num_filters", 8, "--num_blocks", 2, "--task_num", 4, "--update_step", 1, "--update_step_test", 1,
                "--k_qry", 2, "--eval_every", 0, "--val_tasks", 2, "--data_path", omniglot_root, "--npy_dir",
                omniglot_npy_dir, "--cpu_threads", 1, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"resumed from {run / CKPT} at step 300" in proc.stdout + proc.stderr
    unrecorded = "does not record its cpu_seconds" in proc.stderr
    assert unrecorded == (folder.name == "without_cpu_seconds")
    records = read_records(run / "metrics.jsonl", strict=True)
    assert [r["step"] for r in records if r["event"] == "train"][-2:] == [301, 302]
    proc = _run("plot_curves.py", "--metrics", run / "metrics.jsonl", "--output", tmp_path / "curves.png", cwd=tmp_path)
    assert proc.returncode == 0 and (tmp_path / "curves.png").stat().st_size > 10_000, proc.stderr
    # The time panel leaves out the earlier version's validation (train_s), not the resumed run's.
    assert "warning: run: 1 of 2 validation records carry no train_seconds" in proc.stderr
