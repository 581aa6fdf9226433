"""benchmarks/robustness.py: its clean tasks are eval.py's, read exactly as the training data; the table and JSON it
writes; a changed drawing still classified; bad input refused in one line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "robustness.py"
SHIPPED_5WAY = REPO / "checkpoints" / "omniglot_5way_1shot" / "best.ckpt"


def test_clean_tasks_are_eval_tasks_read_as_the_training_data(omniglot_root, omniglot_npy_dir):
    """The images the benchmark renders from the zips and reads with predict.py's reader, unchanged, are those
    the fixed test tasks give from omniglot.npy (up to float rounding where a class is turned: the benchmark turns
    the original, the sampler the small image): the clean column is eval.py's figure on the same tasks."""
    import robustness
    from src.model_utils.config import load_config
    from src.data.episode_sampler import fixed_task_batches
    from src.data.npy_cache import load_omniglot
    from src.data.release import list_omniglot
    from src.data.splits import split_class_ids, split_rotates

    cfg = load_config(["--n_way", "5", "--k_qry_test", "3"], trains=False)
    test = split_class_ids([entry for entry, _ in list_omniglot(omniglot_root)], cfg.split)["test"]
    tasks = list(robustness._task_indices(test, cfg, 6, 0))
    originals = robustness._originals(omniglot_root, np.unique([c for task in tasks for c, _, _ in task[0]]))
    data = load_omniglot(omniglot_npy_dir)
    expected = fixed_task_batches(data.images, test, 5, 1, 3, 6, 6, split_rotates(cfg.split), 0)
    x_spt, _, x_qry, _ = next(expected)
    assert any(turns for task in tasks for _, _, turns in task[0])  # the finn split's quarter turns are covered
    for t, (support, queries) in enumerate(tasks):
        np.testing.assert_allclose(robustness._images(support, originals, "clean", 28, None), x_spt[t], atol=1e-4)
        np.testing.assert_allclose(robustness._images(queries, originals, "clean", 28, None), x_qry[t], atol=1e-4)


@pytest.mark.slow
def test_benchmark_table_and_report(omniglot_root, omniglot_npy_dir, tmp_path):
    """A few 5-way tasks with their drawings inverted or moved to a corner of a large canvas: read as they
    are (the reader before src/data/omniglot_like.py), most of them were misclassified."""
    out = tmp_path / "robustness.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--ckpt", str(SHIPPED_5WAY), "--data_path", str(omniglot_root),
                           "--npy_dir", str(omniglot_npy_dir), "--tasks", "4", "--transforms", "invert", "offcentre",
                           "--k_qry_test", "2", "--cpu_threads", "1", "--output", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()
    assert rows[0] == "| transformation | 5-way 1-shot |" and [r.split(" |")[0] for r in rows[2:]] == [
        "| clean", "| invert", "| offcentre"]
    [report] = json.loads(out.read_text())
    assert (report["n_way"], report["tasks"], report["k_qry_test"]) == (5, 4, 2)
    for name in ("clean", "invert", "offcentre"):
        assert report["results"][name]["acc"] >= 0.85, (name, report["results"])


@pytest.mark.parametrize("args, line", [
    (["--transforms", "blur"], "error: unknown transformation 'blur': choose among clean, invert"),
    (["--ckpt", "a.ckpt", "--n_way", "5"], "error: --ckpt and --n_way both given: a checkpoint has its own n_way"),
    (["--tasks", "0"], "error: --tasks must be >= 1 and --seed >= 0, got 0 and 0"),
], ids=["transform", "ckpt_and_n_way", "tasks"])
def test_benchmark_refuses_bad_input_in_one_line(args, line, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert (proc.returncode, proc.stdout, len(proc.stderr.splitlines())) == (2, "", 1), proc.stderr
    assert proc.stderr.startswith(line), proc.stderr
