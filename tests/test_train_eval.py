"""omniglot_train.py and eval.py end to end on the real data with a tiny network.

One tiny 3-way run (module fixture) is shared by most tests: graph compilation dominates their time.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from src.engine import checkpoint, run_folder
from src.engine.ensemble import ensemble_checkpoints
from src.model_utils import launch_plan
from src.model_utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--num_filters", "8", "--num_blocks", "2", "--task_num", "2", "--k_qry", "2", "--k_qry_test", "2", "--update_step", "1",
        "--update_step_test", "2", "--val_tasks", "4", "--eval_batch", "4", "--log_every", "1"]
# The shared run is 3-way, unlike the default (5), to show that eval.py takes n_way from the checkpoint.
N_WAY = ["--n_way", "3"]
# The shared run: 4 steps, validation and a checkpoint every 2, only the newest step checkpoint kept; the meta
# learning rate halves after step 2, so a resumed run must pick the schedule up where it stopped.
RUN = TINY + N_WAY + ["--eval_every", "2", "--save_every", "2", "--keep_checkpoint_max", "1",
                      "--meta_lr", "0.002", "--lr_scheduler_gamma", "0.5", "--lr_decay_steps", "2"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_args(omniglot_root, omniglot_npy_dir):
    return ["--data_path", str(omniglot_root), "--npy_dir", str(omniglot_npy_dir)]


@pytest.fixture(scope="module")
def cli(data_args, tmp_path_factory):
    """cli(script, *args) runs a script of the package with the data arguments, returning the finished process.

    The working folder is a scratch one: MindSpore may leave compile artefacts there.
    """
    cwd = tmp_path_factory.mktemp("cwd")

    def run(script, *args):
        return subprocess.run([sys.executable, str(REPO / script), *data_args, *args], capture_output=True,
                              text=True, timeout=600, cwd=cwd)

    return run


@pytest.fixture(scope="module")
def trained(cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    proc = cli("omniglot_train.py", *RUN, "--meta_steps", "4", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def refused(proc, *words):
    """The process failed with exit code 2 and exactly one `error:` line, without a traceback; returns that line."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0]
    return errors[0]


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}


def test_training_logs_checkpoints_and_metrics(trained):
    out, log = trained
    assert re.search(r"step 1: .*compiled", log)
    # Progress with an estimate of the time left, on each logged step after the first.
    assert re.findall(r"step (\d+)/4 .* ETA ", log) == ["2", "3", "4"]
    # Saved every save_every steps, pruned to keep_checkpoint_max, plus best.ckpt.
    assert sorted(path.name for path in out.glob("*.ckpt")) == ["best.ckpt", "maml_step0000004.ckpt"]
    assert not list(out.glob(".*"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    by_event = {event: [r["step"] for r in records if r["event"] == event] for event in ("compile", "train", "val")}
    # The first step's loss is recorded too; its time, mostly compilation, is the compile record's.
    assert by_event == {"compile": [1], "train": [1, 2, 3, 4], "val": [2, 4]}
    for record in records:
        if record["event"] == "val":
            assert record["tasks"] == 4 and "acc_per_step" not in record and 0 <= record["acc"] <= 1
        if record["event"] == "train":
            assert np.isfinite(record["loss"]) and ("s_per_step" in record) == (record["step"] > 1)
            assert record["meta_lr"] == (0.002 if record["step"] <= 2 else 0.001)
        if record["event"] in ("train", "val"):
            # One name for the cost, in checkpoints and here.
            assert record["train_seconds"] > 0 and record["cpu_seconds"] > 0 and "train_s" not in record


def test_resume_is_exact(trained, cli, tmp_path):
    out_a, _ = trained
    out_b = tmp_path / "b"
    first = cli("omniglot_train.py", *RUN, "--meta_steps", "2", "--output_dir", str(out_b))
    assert first.returncode == 0, first.stderr
    first_meta = checkpoint.read(out_b / "maml_step0000002.ckpt")[1]
    second = cli("omniglot_train.py", *RUN, "--meta_steps", "4", "--resume", "--output_dir", str(out_b))
    assert second.returncode == 0, second.stderr
    assert re.search(r"resumed from \S*maml_step0000002\.ckpt at step 2", second.stdout)
    assert "not loaded" not in second.stderr  # no MindSpore warning about the learning-rate table
    assert "steps 3..4" in second.stdout
    assert "settings changed since maml_step0000002.ckpt: meta_steps 2 -> 4\n" in second.stdout
    params_a, meta_a = checkpoint.read(out_a / "maml_step0000004.ckpt")
    params_b, meta_b = checkpoint.read(out_b / "maml_step0000004.ckpt")
    assert meta_a["step"] == meta_b["step"] == 4
    assert meta_a["sampler_state"] == meta_b["sampler_state"]
    # The cost carries over a resume: run b's totals cover both of its runs.
    for key in checkpoint.COST_KEYS:
        assert 0 < first_meta[key] < meta_b[key], key
    assert sorted(params_a) == sorted(params_b)
    assert any(name.startswith("optimizer.moment2.") for name in params_a)
    for name in params_a:
        np.testing.assert_array_equal(params_a[name].asnumpy(), params_b[name].asnumpy(), err_msg=name)
    # The records: each step once, the first step after the resume included. Validation and training
    # accuracies are identical; a training loss may differ in its last bit (float32, relative 1e-7):
    # MindSpore's CPU kernels split the loss's mean over threads as their call history has it, so
    # the process that resumed can sum it in another order. The weights above are bit-exact.
    records_a, records_b = ({key: r for key, r in metrics(out).items() if key[0] != "compile"} for out in (out_a, out_b))
    assert sorted(records_b) == sorted(records_a)
    for key, a in records_a.items():
        b = records_b[key]
        assert a.get("acc") == b.get("acc") and a.get("meta_lr") == b.get("meta_lr"), key
        if "loss" in a:
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-6, abs=0), key


def metrics(out):
    """{(event, step): record} of a metrics.jsonl, which must hold each (event, step) once."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keyed = {(r["event"], r["step"]): r for r in records}
    assert len(keyed) == len(records), "a step is recorded twice"
    return keyed


def test_killed_mid_save_then_resume(cli, data_args, tmp_path):
    out = tmp_path / "killed"
    args = TINY + ["--save_every", "1", "--eval_every", "0", "--keep_checkpoint_max", "3", "--output_dir", str(out)]
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "omniglot_train.py"), *data_args, *args,
                                 "--meta_steps", "100000"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.time() + 300
            while proc.poll() is None and time.time() < deadline:
                if out.is_dir() and len(run_folder.step_checkpoints(out)) >= 3:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, (tmp_path / "log").read_text()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # What a kill inside a save leaves: MindSpore's own half-written file and our not yet renamed one.
    (out / ".maml_step9999999.maml-tmp-99999999.tmp").write_bytes(b"\x00" * 100)
    (out / ".maml_step9999999.maml-tmp-99999999.ckpt").write_bytes(b"\x00" * 100)
    found = run_folder.step_checkpoints(out)
    for path in found:
        assert checkpoint.read(path)[1]["step"] == int(path.stem[len(run_folder.PREFIX):])
    newest = int(found[-1].stem[len(run_folder.PREFIX):])
    resumed = cli("omniglot_train.py", *args, "--meta_steps", str(newest + 1), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {found[-1]} at step {newest}" in resumed.stdout
    assert not list(out.glob(".*"))
    _, meta = checkpoint.read(run_folder.step_checkpoint_path(out, newest + 1))
    assert meta["step"] == newest + 1
    # The killed run's records past its last checkpoint are gone: each step once, none past the end.
    assert sorted(step for event, step in metrics(out) if event == "train") == list(range(1, newest + 2))


def test_resume_falls_back_past_a_corrupt_newest_checkpoint(trained, cli, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    good = (out / "maml_step0000004.ckpt").read_bytes()
    corrupt = out / "maml_step0000006.ckpt"
    corrupt.write_bytes(good[: len(good) // 2])
    proc = cli("omniglot_train.py", *RUN, "--meta_steps", "5", "--resume", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"warning: skipping maml_step0000006\.ckpt: checkpoint \S+ (is unreadable or corrupt|has no step)",
                     proc.stderr), proc.stderr
    assert f"resumed from {out / 'maml_step0000004.ckpt'} at step 4" in proc.stdout
    assert checkpoint.read(out / "maml_step0000005.ckpt")[1]["step"] == 5
    # Pruning kept the newest checkpoint of this run's history; the unreadable one waits to be replaced.
    assert sorted(p.name for p in out.glob("maml_step*")) == ["maml_step0000005.ckpt", "maml_step0000006.ckpt"]


def test_resume_keeps_a_better_best_ckpt(trained, cli, tmp_path):
    """best.ckpt is replaced only by a model that beats it, even one saved after the step a resume continues from."""
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    best = checkpoint.read(out / "best.ckpt")
    better = out / "better.ckpt"
    ms.save_checkpoint([{"name": k, "data": v} for k, v in best[0].items()], str(better), crc_check=True,
                       append_dict={"step": 4, "best_val_acc": 2.0, "config": json.dumps(best[1]["config"]),
                                    "sampler_state": json.dumps(best[1]["sampler_state"]), "train_seconds": 1.0,
                                    "cpu_seconds": 1.0})
    better.replace(out / "best.ckpt")
    before = (out / "best.ckpt").read_bytes()
    proc = cli("omniglot_train.py", *RUN, "--meta_steps", "6", "--resume", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "new best validation accuracy" not in proc.stdout and (out / "best.ckpt").read_bytes() == before


def test_a_resume_on_other_tasks_ranks_its_own_validations(trained, cli, tmp_path):
    """A stage on other validation tasks (3-shot after 1-shot), resumed in a folder holding the step checkpoint
    and metrics.jsonl: best.ckpt is this stage's best whatever the earlier stage reached, and the ensemble ranks
    this stage's validations only. Where the earlier best.ckpt is in the folder:
    omniglot_train.py ... --k_spt 3 --resume -> exit 2, "error: OUT/best.ckpt is the best of validations on
    other tasks than this run's (k_spt 1 -> 3) and would be replaced: move it away, ...", the folder unchanged."""
    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    before = snapshot(run)
    proc = cli("omniglot_train.py", *RUN, "--k_spt", "3", "--meta_steps", "6", "--resume", "--output_dir", str(run))
    refused(proc, f"{run / 'best.ckpt'} is the best of validations on other tasks than this run's (k_spt 1 -> 3) "
                  "and would be replaced: move it away")
    assert proc.returncode == 2 and snapshot(run) == before

    stage = tmp_path / "stage"
    stage.mkdir()
    for name in ("maml_step0000004.ckpt", "metrics.jsonl"):
        shutil.copy2(trained[0] / name, stage / name)
    proc = cli("omniglot_train.py", *RUN, "--k_spt", "3", "--meta_steps", "6", "--resume", "--output_dir", str(stage))
    assert proc.returncode == 0, proc.stderr
    assert "validation scores other tasks from now on" in proc.stdout
    records = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert {"event": "validation_settings", "step": 4, "changed": ["k_spt 1 -> 3"]} in records
    stage_val = [r for r in records if r["event"] == "val" and r["step"] > 4]
    assert [r["step"] for r in stage_val] == [6]
    assert checkpoint.read(stage / "best.ckpt")[1]["step"] == 6
    assert checkpoint.read(stage / "best.ckpt")[1]["best_val_acc"] == pytest.approx(stage_val[0]["acc"])
    assert ensemble_checkpoints(stage, 1) == [(6, stage / "maml_step0000006.ckpt")]

def test_resume_past_the_end_is_refused(trained, cli, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    before = snapshot(out)
    line = refused(cli("omniglot_train.py", *RUN, "--meta_steps", "4", "--resume", "--output_dir", str(out)))
    assert f"{out} is already at step 4" in line and "--meta_steps" in line
    assert snapshot(out) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_checkpoint_is_refused(trained, cli, tmp_path, damage):
    out, _ = trained
    bad = tmp_path / "bad.ckpt"
    good = (out / "maml_step0000004.ckpt").read_bytes()
    bad.write_bytes(good[: len(good) // 2] if damage == "truncated" else os.urandom(len(good)))
    line = refused(cli("eval.py", *TINY, *N_WAY, "--ckpt", str(bad)), str(bad))
    # Whether MindSpore's reader rejects a cut-short file or returns what precedes the cut depends on
    # where the cut falls; either way the message says the file is damaged.
    assert "unreadable or corrupt" in line or "truncated or damaged" in line


def test_output_dir_that_is_a_file(cli, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    refused(cli("omniglot_train.py", *TINY, "--meta_steps", "2", "--output_dir", str(target)), "is a file")
    assert target.read_text() == "keep me"


def test_existing_checkpoints_need_resume(trained, cli, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    before = snapshot(out)
    refused(cli("omniglot_train.py", *RUN, "--meta_steps", "4", "--output_dir", str(out)), "already holds checkpoints",
            "--resume")
    assert snapshot(out) == before


def test_eval_without_ckpt(cli):
    refused(cli("eval.py", *TINY), "--ckpt")


def test_eval_missing_ckpt(cli, tmp_path):
    refused(cli("eval.py", *TINY, "--ckpt", str(tmp_path / "absent.ckpt")), "not found", "absent.ckpt")


def test_eval_other_n_way(trained, cli):
    # Trained 3-way; evaluated as 5-way.
    refused(cli("eval.py", *TINY, "--n_way", "5", "--ckpt", str(trained[0] / "best.ckpt")), "n_way=3", "n_way=5", "--n_way 3")


@pytest.mark.parametrize("save_every, problem, step", [
    ("1", "the weights became nan or inf", 5),  # caught before the nan weights of step 5 are saved
    ("100", "the meta-loss became nan", 6),  # the nan weights of step 5 give a nan loss at step 6
])
def test_divergence_keeps_the_last_good_checkpoint(trained, cli, tmp_path, save_every, problem, step):
    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    (out / "best.ckpt").unlink()  # validation fine-tunes with update_lr: a resume changing it may not replace it
    before = snapshot(out)
    # An inner learning rate of 1e30 makes the meta-gradient nan at once.
    proc = cli("omniglot_train.py", *RUN, "--meta_steps", "8", "--resume", "--update_lr", "1e30",
               "--save_every", save_every, "--eval_every", "0", "--output_dir", str(out))
    line = refused(proc, f"{problem} at step {step}", f"the last good checkpoint {out / 'maml_step0000004.ckpt'} is kept")
    assert "--meta_lr" in line
    assert "update_lr 0.4 -> 1e+30" in proc.stdout
    after = snapshot(out)
    assert {name: data for name, data in after.items() if name != "metrics.jsonl"} == \
        {name: data for name, data in before.items() if name != "metrics.jsonl"}
    params, meta = checkpoint.read(out / "maml_step0000004.ckpt")
    assert meta["step"] == 4
    assert all(np.isfinite(p.asnumpy()).all() for p in params.values())


def test_eval_end_to_end_is_repeatable(trained, cli):
    ckpt = trained[0] / "best.ckpt"
    reports, lines = [], []
    for extra in ([], [], ["--eval_per_step"]):
        # Only the checkpoint: its network, n_way and inner-loop settings come from inside it.
        proc = cli("eval.py", "--ckpt", str(ckpt), "--eval_tasks", "6", "--eval_batch", "4", *extra)
        assert proc.returncode == 0, proc.stderr
        per_step = re.findall(r"after +(\d+) inner steps: ([\d.]+)%", proc.stdout)
        final = re.search(r"test accuracy: ([\d.]+) \+/- ([\d.]+)% \(95% CI, 6 tasks", proc.stdout)
        assert final
        lines.append((per_step, final.groups()))
        reports.append(json.loads(ckpt.with_name("best.ckpt.eval.json").read_text()))
    report = reports[0]
    assert report["tasks"] == 6 and report["ckpt_step"] in (2, 4) and report["ckpt"] == "best.ckpt"
    assert (report["n_way"], report["k_qry_test"], report["update_step_test"]) == (3, 2, 2)
    assert 0 <= report["acc"] <= 1 and report["ci95"] >= 0
    assert f"{100 * report['acc']:.2f}" == lines[0][1][0]
    keys = ("acc", "ci95", "tasks")
    assert [{k: r[k] for k in keys} for r in reports] == [{k: report[k] for k in keys}] * 3
    assert lines[0] == lines[1] and lines[0][1] == lines[2][1]
    # Per-step scoring only on request; its last step is the final accuracy.
    assert "acc_per_step" not in report and lines[0][0] == []
    assert [step for step, _ in lines[2][0]] == ["0", "1", "2"]
    assert reports[2]["acc_per_step"][-1] == report["acc"]


def test_eval_on_the_validation_classes_gives_the_logged_validation(trained, cli, tmp_path):
    """eval.py --eval_split val with the run's val_tasks scores the tasks training validated on: each step
    checkpoint's figure is the one metrics.jsonl logged for its step, and the report goes apart from the test one."""
    out = trained[0]
    logged = {r["step"]: r["acc"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if r["event"] == "val"}
    for source in (out / "best.ckpt", out / "maml_step0000004.ckpt"):
        ckpt = shutil.copy(source, tmp_path / source.name)
        proc = cli("eval.py", "--ckpt", str(ckpt), "--eval_split", "val", "--eval_tasks", "4")
        assert proc.returncode == 0, proc.stderr
        report = json.loads((tmp_path / f"{source.name}.eval_val.json").read_text())
        assert report["eval_split"] == "val" and report["acc"] == logged[report["ckpt_step"]]
        assert re.search(r"validation accuracy: [\d.]+ \+/- [\d.]+% \(95% CI, 4 tasks", proc.stdout)
    assert not list(tmp_path.glob("*.eval.json"))


def test_eval_report_goes_where_asked(trained, cli, tmp_path):
    """--eval_report keeps a second protocol's result (here 1 query per class) apart from CKPT.eval.json."""
    ckpt = shutil.copy(trained[0] / "best.ckpt", tmp_path / "best.ckpt")
    refused(cli("eval.py", "--ckpt", str(ckpt), "--eval_report", str(tmp_path / "absent" / "r.json")),
            "does not exist", str(tmp_path / "absent"), "--eval_report")
    report = tmp_path / "one_query.json"
    proc = cli("eval.py", "--ckpt", str(ckpt), "--eval_tasks", "6", "--eval_batch", "4", "--k_qry_test", "1",
               "--eval_report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {report}" in proc.stdout
    assert json.loads(report.read_text())["k_qry_test"] == 1
    assert not (tmp_path / "best.ckpt.eval.json").exists()


def test_keep_best_checkpoints_then_ensemble(cli, data_args, tmp_path):
    """Training keeps the step checkpoints of the best validations besides the newest; eval.py --ensemble N
    scores the mean logits of the N best, reports their steps apart from CKPT.eval.json, and with N = 1
    gives exactly best.ckpt's accuracy (the same weights)."""
    out = tmp_path / "run"
    proc = cli("omniglot_train.py", *TINY, *N_WAY, "--meta_steps", "6", "--eval_every", "2", "--save_every", "2",
               "--keep_checkpoint_max", "1", "--keep_best_checkpoints", "2", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    records = metrics(out)
    ranked = sorted((-r["acc"], step) for (event, step), r in records.items() if event == "val")
    best_two = [step for _, step in ranked[:2]]
    kept = sorted(int(path.stem[len(run_folder.PREFIX):]) for path in out.glob(f"{run_folder.PREFIX}*.ckpt"))
    assert kept == sorted(set(best_two) | {6})
    assert checkpoint.read(out / "best.ckpt")[1]["step"] == best_two[0]

    evaluate = ["--eval_tasks", "6", "--eval_batch", "4"]
    single = cli("eval.py", "--ckpt", str(out / "best.ckpt"), *evaluate)
    assert single.returncode == 0, single.stderr
    reports = {}
    for n in (1, 2):
        proc = cli("eval.py", "--ckpt", str(out / "best.ckpt"), *evaluate, "--ensemble", str(n))
        assert proc.returncode == 0, proc.stderr
        steps = ", ".join(map(str, best_two[:n]))
        assert f"evaluating the ensemble of the {n} best validated checkpoints in {out} (steps {steps})" in proc.stdout
        reports[n] = json.loads((out / f"best.ckpt.eval_ensemble{n}.json").read_text())
        assert reports[n]["ensemble_steps"] == best_two[:n] and reports[n]["tasks"] == 6
        assert "ckpt_step" not in reports[n]  # --ckpt only names the run: it need not be a member
    single_report = json.loads((out / "best.ckpt.eval.json").read_text())
    assert reports[1]["acc"] == single_report["acc"] and "ensemble_steps" not in single_report

    # Refused in one line, the folder untouched: more members than validations; a member trained with
    # another inner learning rate (here rewritten so); and the data-parallel launcher's check before msrun.
    before = snapshot(out)
    refused(cli("eval.py", "--ckpt", str(out / "best.ckpt"), *evaluate, "--ensemble", "4"),
            "--ensemble 4 needs 4 validations", "records 3")
    assert snapshot(out) == before
    other = tmp_path / "other"
    shutil.copytree(out, other)
    member = run_folder.step_checkpoint_path(other, best_two[1])
    params, meta = checkpoint.read(member)
    checkpoint.save(member, [{"name": name, "data": p} for name, p in params.items()], meta["step"],
                    {**meta["config"], "update_lr": 0.25}, meta["sampler_state"], meta["best_val_acc"])
    before = snapshot(other)
    refused(cli("eval.py", "--ckpt", str(other / "best.ckpt"), *evaluate, "--ensemble", "2"),
            f"{member} was trained with update_lr=0.25", "with update_lr=0.4", "pass a smaller --ensemble")
    assert snapshot(other) == before
    with pytest.raises(UserError, match="was trained with update_lr=0.25"):
        launch_plan.main(["eval", "2", "", *data_args, "--ckpt", str(other / "best.ckpt"), "--ensemble", "2"])
