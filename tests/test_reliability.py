"""Probes of the promises of reliability: nothing a user has is overwritten, every bad input is one
`error:` line (exit code 2) before any work, and a failed write leaves the previous file intact.

Each probe states the command, its exit code, its one line and the file it must leave untouched
(compared by checksum). None trains: they stop before MindSpore compiles anything.
"""
import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.data.image_folder import read_queries, read_support
from src.data_preprocess import build_omniglot
from src.engine import checkpoint
from src.engine.loading import inference_settings
from src.model_utils.atomic_file import remove_stale_temporaries, temporary_path, write_atomic
from src.model_utils.config import load_config
from src.model_utils.errors import UserError, one_line
from src.model_utils.launch_plan import log_path
from src.model_utils.metrics_file import MetricsWriter
from tests.tiny_checkpoints import save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
DEAD_PID = 99999999  # above any pid_max: the process that wrote such a temporary is gone


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(script, *args, cwd):
    """(exit code, the single `error:` line) of a command that must fail cleanly."""
    proc = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return proc.returncode, errors[0]


@pytest.fixture
def unwritable(tmp_path):
    """An existing folder this process cannot create files in."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    folder = Path("/sys/kernel")  # root writes through permissions, not into a read-only file system
    try:
        write_atomic(folder / "probe", lambda f: None)
    except UserError:
        yield folder
        return
    pytest.skip("no unwritable folder available")


# ----------------------------------------------------------------------------- nothing is overwritten


def test_eval_report_onto_the_checkpoint_is_refused(tiny_ckpt, tmp_path):
    before = sha(tiny_ckpt)
    code, line = run("eval.py", "--ckpt", tiny_ckpt, "--eval_report", tiny_ckpt, "--data_path", tmp_path / "absent",
                     cwd=tmp_path)
    assert code == 2
    assert line == f"error: --eval_report {tiny_ckpt} is a checkpoint: it is left untouched; pass another --eval_report"
    assert sha(tiny_ckpt) == before


@pytest.mark.parametrize("report, words", [
    ("link.json", ["is a checkpoint (through the link to", "model.ckpt"]),  # a link to the checkpoint
    ("notes.txt", ["is a file that is not an eval report", "left untouched"]),
    ("folder", ["is a folder"]),
    ("absent/r.json", ["folder absent does not exist"]),
    ("loop.json", ["loop.json is a symbolic-link loop: pass another --eval_report"]),  # a link to itself
])
def test_eval_report_never_replaces_a_users_file(tiny_ckpt, tmp_path, monkeypatch, report, words):
    """The check eval.py runs before any work (the command-line probe above shows where)."""
    from src.engine.eval_report import check_eval_report

    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.json").symlink_to(tiny_ckpt)
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "loop.json").symlink_to(tmp_path / "loop.json")
    before = {name: sha(tmp_path / name) for name in ("link.json", "notes.txt")}
    with pytest.raises(UserError) as err:
        check_eval_report(load_config(["--ckpt", str(tiny_ckpt), "--eval_report", report]))
    assert all(word in str(err.value) for word in words), err.value
    assert {name: sha(tmp_path / name) for name in before} == before


def test_an_earlier_report_may_be_replaced(tiny_ckpt, tmp_path):
    """A report of the same evaluation (the same protocol) is replaced by its re-run."""
    from src.engine.eval_report import PROTOCOL_KEYS, check_eval_report

    report = tmp_path / "r.json"
    cfg = load_config(["--ckpt", str(tiny_ckpt), "--eval_report", str(report)])
    report.write_text(json.dumps({"ckpt": f"../{tiny_ckpt.parent.name}/model.ckpt",
                                  **{key: cfg[key] for key in PROTOCOL_KEYS}, "acc": 0.9, "ci95": 0.01,
                                  "tasks": cfg.eval_tasks}))
    assert check_eval_report(cfg) == report


def test_a_report_of_another_evaluation_is_kept(tiny_ckpt, tmp_path):
    """python eval.py --ckpt CKPT --k_qry_test 1 (CKPT.eval.json holds a 2-query report) -> exit 2, one line
    naming the difference; the report is untouched. The same protocol may replace it."""
    from src.engine.eval_report import PROTOCOL_KEYS, check_eval_report

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(tiny_ckpt.read_bytes())
    report = tmp_path / "model.ckpt.eval.json"
    cfg, _, _ = inference_settings(["--ckpt", str(ckpt)])
    report.write_text(json.dumps({"ckpt": ckpt.name, "ckpt_step": 5, **{key: cfg[key] for key in PROTOCOL_KEYS},
                                  "tasks": cfg.eval_tasks, "acc": 0.9, "ci95": 0.01}))
    before = sha(report)
    code, line = run("eval.py", "--ckpt", ckpt, "--k_qry_test", 1, "--data_path", tmp_path / "absent", cwd=tmp_path)
    assert code == 2
    assert line == (f"error: --eval_report {report} holds the report of another evaluation (k_qry_test 2, not 1): "
                    "it is left untouched; pass another --eval_report or move the file away")
    assert sha(report) == before
    assert check_eval_report(cfg) == report
    ensemble = load_config(["--ckpt", str(ckpt), "--eval_report", str(report), "--ensemble", "2",
                            "--eval_tasks", "100"], inherit=cfg)
    with pytest.raises(UserError, match=r"\(tasks 600, not 100; ensemble 0, not 2\)"):
        check_eval_report(ensemble)
    # The image size is part of what a report measured: a 56-pixel run keeps the 28-pixel report.
    with pytest.raises(UserError, match=r"\(imgsz 28, not 56\)"):
        check_eval_report(load_config(["--ckpt", str(ckpt), "--eval_report", str(report), "--imgsz", "56"], inherit=cfg))
    # python eval.py --ckpt OTHER --eval_report CKPT.eval.json: the report of another checkpoint is kept too.
    other = tmp_path / "other.ckpt"
    other.write_bytes(tiny_ckpt.read_bytes())
    code, line = run("eval.py", "--ckpt", other, "--eval_report", report, "--data_path", tmp_path / "absent",
                     cwd=tmp_path)
    assert (code, line) == (2, f"error: --eval_report {report} holds the report of another evaluation (ckpt "
                               "model.ckpt, not other.ckpt): it is left untouched; pass another --eval_report or "
                               "move the file away")
    assert sha(report) == before


def test_eval_report_in_an_unwritable_folder_fails_before_evaluating(tiny_ckpt, tmp_path, unwritable):
    code, line = run("eval.py", "--ckpt", tiny_ckpt, "--eval_report", unwritable / "r.json",
                     "--data_path", tmp_path / "absent", cwd=tmp_path)
    assert code == 2 and f"cannot write to folder {unwritable}" in line and "--eval_report" in line


def test_npy_dir_that_is_a_file_names_the_programs_own_option(tiny_ckpt, omniglot_root, tmp_path):
    """eval.py --ckpt C --data_path ROOT --npy_dir F (F a file) -> exit 2, 'error: cannot write to output folder F
    (File exists): pass --npy_dir somewhere writable' (eval.py has no --output_path); F untouched."""
    npy_dir = tmp_path / "a_file"
    npy_dir.write_text("mine\n")
    before = sha(npy_dir)
    code, line = run("eval.py", "--ckpt", tiny_ckpt, "--data_path", omniglot_root, "--npy_dir", npy_dir, cwd=tmp_path)
    assert code == 2 and line.startswith(f"error: cannot write to output folder {npy_dir}")
    assert line.endswith(": pass --npy_dir somewhere writable")
    assert sha(npy_dir) == before


@pytest.mark.parametrize("script", ["eval.py", "predict.py", "export.py"])
def test_learned_inner_learning_rates_refuse_update_lr(script, tmp_path):
    """SCRIPT --ckpt C --update_lr 5.0, C trained with learn_inner_lr -> exit 2, one line: the learned rates replace
    update_lr, which would change nothing; nothing written. The checkpoint's own update_lr is accepted."""
    ckpt = save_tiny_checkpoint(tmp_path / "mamlpp.ckpt", "--n_way", "3", "--learn_inner_lr", "true", "--update_step", "2",
                                "--update_lr", "0.1")
    work = tmp_path / "work"
    work.mkdir()
    code, line = run(script, "--ckpt", ckpt, "--update_lr", "5.0", cwd=work)
    assert code == 2 and line == (f"error: --update_lr 5.0: checkpoint {ckpt} learned its inner learning rates "
                                  "(learn_inner_lr), which fine-tuning uses instead of update_lr: drop --update_lr")
    assert list(work.iterdir()) == []
    assert inference_settings(["--ckpt", str(ckpt), "--update_lr", "0.1"])[0].update_lr == 0.1


@pytest.mark.parametrize("script", ["eval.py", "predict.py", "export.py"])
def test_no_checkpoint_given_is_one_line(script, tmp_path):
    """python SCRIPT (no --ckpt) -> exit 2, 'error: no checkpoint given: pass --ckpt PATH ...'; nothing written."""
    code, line = run(script, cwd=tmp_path)
    assert code == 2 and line == "error: no checkpoint given: pass --ckpt PATH (e.g. output/best.ckpt)"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", ["predict.py", "export.py"])
def test_an_ensemble_is_only_evaluated(script, tiny_ckpt, tmp_path):
    """python SCRIPT --ckpt CKPT --ensemble 5 -> exit 2, one line: only eval.py scores an ensemble; nothing written."""
    code, line = run(script, "--ckpt", tiny_ckpt, "--ensemble", 5, cwd=tmp_path)
    assert code == 2 and line == ("error: --ensemble 5: only eval.py scores an ensemble; this program uses the one "
                                  "checkpoint --ckpt names: drop --ensemble")
    assert list(tmp_path.iterdir()) == []


def test_export_into_an_unwritable_folder_fails_before_exporting(tiny_ckpt, tmp_path, unwritable):
    """python export.py --ckpt CKPT --file_name UNWRITABLE/maml -> exit 2, one line naming the folder; nothing written."""
    before = sorted(unwritable.iterdir())
    code, line = run("export.py", "--ckpt", tiny_ckpt, "--file_name", unwritable / "maml", cwd=tmp_path)
    assert code == 2 and f"cannot write to folder {unwritable}" in line and "pass another --file_name" in line
    assert sorted(unwritable.iterdir()) == before and list(tmp_path.iterdir()) == []


def test_a_report_named_log_gets_a_log_of_its_own(tiny_ckpt, tmp_path):
    """The launchers append their log beside the report; it must never be the report itself."""
    assert log_path("eval", load_config(["--ckpt", str(tiny_ckpt), "--eval_report", str(tmp_path / "r.log")])) == \
        (tmp_path / "r.log.log").resolve()
    assert log_path("eval", load_config(["--ckpt", str(tiny_ckpt), "--eval_report", str(tmp_path / "r.json")])) == \
        (tmp_path / "r.log").resolve()


def test_fresh_run_refuses_a_folder_holding_only_best_ckpt(tiny_ckpt, tmp_path):
    out = tmp_path / "shipped"
    out.mkdir()
    (out / "best.ckpt").write_bytes(tiny_ckpt.read_bytes())
    before = sha(out / "best.ckpt")
    code, line = run("omniglot_train.py", "--output_dir", out, "--data_path", tmp_path / "absent", cwd=tmp_path)
    assert code == 2
    assert line == (f"error: output_dir {out} already holds checkpoints or metrics of a run (best.ckpt): it has no "
                    "step checkpoint (maml_step*.ckpt) to resume from: pass another --output_dir")
    assert sha(out / "best.ckpt") == before and sorted(os.listdir(out)) == ["best.ckpt"]


def test_resume_refuses_a_folder_without_a_step_checkpoint(tiny_ckpt, tmp_path):
    """Starting from step 0 there would replace best.ckpt at the first validation and truncate the metrics."""
    out = tmp_path / "shipped"
    out.mkdir()
    (out / "best.ckpt").write_bytes(tiny_ckpt.read_bytes())
    (out / "metrics.jsonl").write_text('{"event": "train", "step": 3, "loss": 1.0, "acc": 0.5}\n')
    before = {name: sha(out / name) for name in ("best.ckpt", "metrics.jsonl")}
    code, line = run("omniglot_train.py", "--output_dir", out, "--resume", "--data_path", tmp_path / "absent",
                     cwd=tmp_path)
    assert code == 2
    assert line == (f"error: --resume: output_dir {out} holds best.ckpt, metrics.jsonl but no step checkpoint "
                    "(maml_step*.ckpt) to continue from, and starting from step 0 would replace them: pass another "
                    "--output_dir to start afresh")
    assert {name: sha(out / name) for name in before} == before and len(os.listdir(out)) == 2


def test_fresh_run_refuses_the_metrics_of_an_earlier_run(tiny_ckpt, tmp_path):
    from src.engine.run_folder import prepare_run_folder

    (tmp_path / "metrics.jsonl").write_text('{"event": "train", "step": 3, "loss": 1.0, "acc": 0.5}\n')
    before = sha(tmp_path / "metrics.jsonl")
    with pytest.raises(UserError, match=r"already holds checkpoints or metrics of a run \(metrics.jsonl\): it has no"):
        prepare_run_folder(load_config(["--output_dir", str(tmp_path)]))
    (tmp_path / "maml_step0000003.ckpt").write_bytes(tiny_ckpt.read_bytes())
    with pytest.raises(UserError, match=r"\(maml_step0000003.ckpt, metrics.jsonl\): pass --resume to continue it"):
        prepare_run_folder(load_config(["--output_dir", str(tmp_path)]))
    assert sha(tmp_path / "metrics.jsonl") == before
    assert prepare_run_folder(load_config(["--output_dir", str(tmp_path), "--resume"])) == tmp_path
    assert prepare_run_folder(load_config(["--output_dir", str(tmp_path / "new"), "--resume"])) == tmp_path / "new"


def test_unwritable_output_dir_fails_before_any_work(tmp_path, unwritable):
    code, line = run("omniglot_train.py", "--output_dir", unwritable, "--data_path", tmp_path / "absent", cwd=tmp_path)
    assert code == 2 and line.startswith(f"error: cannot write to folder {unwritable}") and "--output_dir" in line


def test_failed_fresh_run_leaves_no_empty_folder(tmp_path):
    out = tmp_path / "new" / "run"
    code, line = run("omniglot_train.py", "--output_dir", out, "--data_path", tmp_path / "absent", cwd=tmp_path)
    assert code == 2 and "no Omniglot data" in line
    assert not out.exists()


def test_plot_output_never_replaces_the_metrics(tmp_path):
    import plot_curves

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"event": "val", "step": 1, "acc": 0.5}) + "\n")
    before = sha(metrics)
    with pytest.raises(UserError, match="is a file that is not a plot of plot_curves.py: it is left untouched"):
        plot_curves.main(["--metrics", str(metrics), "--output", str(metrics)])
    assert sha(metrics) == before


# ----------------------------------------------------------------------------- inputs checked first


@pytest.mark.parametrize("argv, expected", [
    (["--seed", "-1"], "seed must be between 0 and 4294967295 (the seeds NumPy and MindSpore accept), got -1"),
    (["--seed", "4294967296"], "seed must be between 0 and 4294967295"),
    (["--seed", "18446744073709551616"], "seed must be between 0 and 4294967295"),
    (["--eval_seed", "-1"], "eval_seed must be between 0 and 4294967295"),
    (["--meta_lr", "inf"], "meta_lr must be a finite number > 0, got inf"),
    (["--meta_lr", "nan"], "meta_lr must be a finite number > 0, got nan"),
    (["--update_lr=-inf"], "update_lr must be a finite number > 0, got -inf"),
    (["--lr_scheduler_gamma", "inf"], "lr_scheduler_gamma must be a finite number > 0"),
    (["--meta_steps", "1000000000"], "meta_steps must be at most 10000000"),
    (["--meta_steps", "99999999999999999999999"], "meta_steps must be at most 10000000"),
    (["--update_step", "101"], "update_step must be at most 100"),
    (["--update_step_test", "1000000000"], "update_step_test must be at most 10000"),
    (["--imgsz", "1000"], "imgsz must be at most 105 (the size of the Omniglot originals), got 1000"),
    (["--eval_tasks", "100001"], "eval_tasks must be at most 100000"),
    (["--task_num", "10001"], "task_num must be at most 10000 (tasks per meta-batch), got 10001"),
    (["--num_filters", "4097"], "num_filters must be at most 4096"),
    (["--num_blocks", "17"], "num_blocks must be at most 16"),
    (["--output_dir", ""], "output_dir must not be empty: pass --output_dir a folder"),
    (["--ep", "0"], "unknown option '--ep'"),  # no abbreviations: a launcher's guards see whole names only
])
def test_bad_values_are_refused_when_read(argv, expected):
    with pytest.raises(UserError) as err:
        load_config(argv)
    assert expected in str(err.value)


def test_bounds_refuse_no_real_use():
    """Each bound at its limit; the batches small enough for the memory of any machine (src/model_utils/memory.py)."""
    cfg = load_config(["--seed", "4294967295", "--eval_seed", "0", "--meta_steps", "10000000", "--update_step", "100",
                       "--update_step_test", "10000", "--imgsz", "105", "--eval_tasks", "100000", "--meta_lr", "1e-9",
                       "--task_num", "1", "--eval_batch", "1", "--n_way", "2", "--k_qry", "1", "--k_qry_test", "1",
                       "--num_filters", "4096", "--num_blocks", "16"])
    assert (cfg.seed, cfg.meta_steps, cfg.imgsz) == (4294967295, 10**7, 105)
    cfg = load_config(["--task_num", "10000", "--eval_batch", "10000", "--n_way", "2", "--k_qry", "1", "--k_qry_test",
                       "1", "--num_filters", "8", "--num_blocks", "2"])
    assert (cfg.task_num, cfg.eval_batch) == (10000, 10000)


def test_bad_seed_on_the_command_line_stops_before_any_work(tmp_path):
    out = tmp_path / "run"
    code, line = run("omniglot_train.py", "--eval_seed", "-1", "--output_dir", out, cwd=tmp_path)
    assert code == 2 and "eval_seed must be between 0 and 4294967295" in line
    assert not out.exists()


def test_data_preprocess_huge_imgsz_is_one_line(tmp_path):
    code, line = run("src/data_preprocess.py", "--data_path", tmp_path, "--imgsz", "1000", cwd=tmp_path)
    assert code == 2
    assert line == "error: --imgsz must be an integer between 1 and 105 (the size of the Omniglot originals), got 1000"
    assert os.listdir(tmp_path) == []


def with_config_entry(tiny_ckpt, path, config):
    """A copy of the tiny checkpoint, its CRC valid, whose `config` entry is the given text."""
    import mindspore as ms

    params, _ = checkpoint.read(tiny_ckpt)
    entries = [{"name": name, "data": p} for name, p in params.items()]
    ms.save_checkpoint(entries, str(path), append_dict={"step": 5, "config": config, "sampler_state": "null",
                                                        "best_val_acc": 0.5, "train_seconds": 1.0, "cpu_seconds": 1.0},
                       crc_check=True)
    return path


def test_checkpoint_config_that_is_a_json_list(tiny_ckpt, tmp_path):
    bad = with_config_entry(tiny_ckpt, tmp_path / "bad.ckpt", json.dumps([1, 2]))
    before = sha(bad)
    code, line = run("predict.py", "--ckpt", bad, "--support_dir", tmp_path, "--query_dir", tmp_path, cwd=tmp_path)
    assert code == 2
    assert line == (f"error: checkpoint {bad} has a config or sampler_state entry that is not a JSON object: it is "
                    "truncated or damaged, or was not written by omniglot_train.py; use another checkpoint of this "
                    "package or train again")
    assert sha(bad) == before


def test_checkpoint_config_that_is_not_json(tiny_ckpt, tmp_path):
    bad = with_config_entry(tiny_ckpt, tmp_path / "bad.ckpt", "not json {")
    with pytest.raises(UserError, match=r"bad.ckpt has a malformed step/config entry \(JSONDecodeError\)"):
        checkpoint.read(bad)


def test_checkpoint_with_a_refused_setting(tmp_path):
    """A checkpoint whose config asks for 10^9 fine-tuning steps is refused, not run for ever."""
    from src.maml import build_maml

    cfg = load_config(["--n_way", "3", "--num_filters", "8", "--num_blocks", "2"])
    path = checkpoint.save(tmp_path / "m.ckpt", build_maml(cfg), step=1, cfg=dict(cfg, update_step_test=10**9))
    with pytest.raises(UserError, match=r"checkpoint .*m.ckpt holds a setting that is refused \(update_step_test must "
                                        r"be at most 10000.*\): pass the setting on the command line"):
        inference_settings(["--ckpt", str(path)])
    assert inference_settings(["--ckpt", str(path), "--update_step_test", "3"])[0].update_step_test == 3


# ----------------------------------------------------------------------------- failed writes


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EACCES])
def test_failed_checkpoint_write_keeps_the_previous_one(tiny_ckpt, tmp_path, monkeypatch, error):
    import mindspore as ms

    best = tmp_path / "best.ckpt"
    best.write_bytes(tiny_ckpt.read_bytes())
    before = sha(best)
    params, meta = checkpoint.read(tiny_ckpt)
    real_save = ms.save_checkpoint

    def save_then_fail(cell, name, **kwargs):
        real_save(cell, name, **kwargs)  # the whole file written, then the disk fills up / permission goes
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(ms, "save_checkpoint", save_then_fail)
    entries = [{"name": name, "data": p} for name, p in params.items()]
    with pytest.raises(UserError) as err:
        checkpoint.save(best, entries, 6, meta["config"])
    assert str(err.value) == (f"cannot write {best} ({os.strerror(error)}): make the folder writable or free some space, "
                              "then pass --resume; its previous content, if any, is unchanged")
    assert sha(best) == before and sorted(os.listdir(tmp_path)) == ["best.ckpt"]


def test_metrics_write_error_is_one_line(tmp_path):
    writer = MetricsWriter(tmp_path / "absent" / "metrics.jsonl")
    with pytest.raises(UserError, match=r"cannot write .*metrics.jsonl \(No such file or directory\)"):
        writer.write(event="train", step=1)


# ----------------------------------------------------------------------------- honest output


def test_one_line_escapes_what_could_forge_a_line():
    assert one_line("new\nline.png") == "new\\nline.png"
    assert one_line("Greek\nINJECTED\tx") == "Greek\\nINJECTED\\tx"
    assert one_line("a\\nb") == "a\\\\nb"  # a real backslash stays distinguishable from an escape
    assert one_line("\u2028\x1b[31m\x85") == "\\u2028\\x1b[31m\\x85"
    assert one_line("Ελληνικά_character01 ü") == "Ελληνικά_character01 ü"


def test_metrics_keep_each_step_once(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"event": "train", "step": s, "loss": 1.0 / s} for s in range(1, 15)] + [{"event": "val", "step": 10}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"event": "tra')  # torn by a kill
    MetricsWriter(path).truncate_after(10)
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["event"], r["step"]) for r in kept] == [("train", s) for s in range(1, 11)] + [("val", 10)]
    before = sha(path)
    MetricsWriter(path).truncate_after(10)  # nothing past step 10: the file is not rewritten
    assert sha(path) == before
    assert os.listdir(tmp_path) == ["metrics.jsonl"]


def test_demo_folders_note_every_entry_left_out(tmp_path):
    """FIFOs, link loops, broken links and hidden files are left out with the note, not silently."""
    from PIL import Image

    support, query = tmp_path / "support", tmp_path / "query"
    for folder in (support / "a", support / "b", query):
        folder.mkdir(parents=True)
        Image.new("L", (28, 28), 255).save(folder / "x.png")
    os.mkfifo(support / "a" / "pipe.png")
    (support / "b" / "loop.png").symlink_to(support / "b" / "loop.png")
    (query / "broken.png").symlink_to(tmp_path / "absent.png")
    os.mkfifo(query / "fifo.png")
    (query / ".hidden.png").write_bytes((query / "x.png").read_bytes())
    (query / "sub").mkdir()
    names, _, _, skipped = read_support(support, 28, 5)
    assert names == ["a", "b"] and sorted(p.name for p in skipped) == ["loop.png", "pipe.png"]
    files, _, skipped = read_queries(query, 28)
    assert [p.name for p in files] == ["x.png"]
    assert sorted(p.name for p in skipped) == [".hidden.png", "broken.png", "fifo.png", "sub"]


# ----------------------------------------------------------------------------- leftovers


def test_stale_preprocessing_temporaries_are_removed(omniglot_root, omniglot_npy_dir):
    """What a data_preprocess.py killed while writing leaves is removed by the next run, even when
    omniglot.npy is up to date; a temporary of a running process is kept."""
    stale = [omniglot_npy_dir / f".omniglot.maml-tmp-{DEAD_PID}.npy", omniglot_npy_dir / f".raw.maml-tmp-{DEAD_PID}"]
    live = omniglot_npy_dir / f".omniglot_index.maml-tmp-{os.getppid()}.json"
    for path in (*stale, live):
        path.write_bytes(b"\x00" * 1000)
    before = sha(omniglot_npy_dir / "omniglot.npy")
    try:
        build_omniglot(omniglot_root, omniglot_npy_dir, imgsz=28, log=lambda message: None)
        assert not any(path.exists() for path in stale) and live.exists()
        assert sha(omniglot_npy_dir / "omniglot.npy") == before
    finally:
        live.unlink()


def test_temporary_names_are_recognised(tmp_path):
    """Only the package's own temporaries of processes that are gone are removed: a user's hidden files
    and folders with `tmp` and a number in their names stay."""
    keep = ["best.ckpt", ".hidden", ".notes.tmp", "a.maml-tmp-12", f".draft.tmp{DEAD_PID}.txt", f".draft.tmp-{DEAD_PID}.txt",
            f".backup.tmp-{DEAD_PID}", f".old.ckpt.tmp-{DEAD_PID}"]
    for name in keep + [f".best.maml-tmp-{DEAD_PID}.ckpt", f".best.maml-tmp-{DEAD_PID}.tmp", f".task.maml-tmp-{DEAD_PID}"]:
        (tmp_path / name).mkdir() if name.startswith((".task", ".backup")) else (tmp_path / name).write_bytes(b"")
    assert temporary_path(tmp_path / "best.ckpt").name == f".best.maml-tmp-{os.getpid()}.ckpt"
    remove_stale_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)

