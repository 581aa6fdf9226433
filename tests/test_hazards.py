"""Probes of the second reliability round, each as a careless or hostile user would try it: the command (the
real entry point or launch script), its exit code 2, its single `error:` line, and the file it must leave
untouched (compared by checksum). Only the two marked slow train; the others stop before any work.
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import pytest

from src.model_utils import run_lock
from src.model_utils.config import load_config
from src.model_utils.errors import LINE_CHARS
from src.maml import build_maml
from tests.tiny_checkpoints import TINY, save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
LONG = "n" * 300  # a path component over the 255 bytes a file name may have


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def refused(command, cwd, env=None, timeout=300):
    """The single `error:` line of `command` (a list: python scripts run by this interpreter, .sh by bash), which
    must exit with code 2 and print no traceback."""
    head = [sys.executable] if command[0].endswith(".py") else ["bash"] if command[0].endswith(".sh") else []
    command = [REPO / command[0], *command[1:]] if head else command
    proc = subprocess.run([*head, *map(str, command)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, (proc.returncode, proc.stderr[-3000:])
    assert len(errors[0]) < LINE_CHARS + 100
    return errors[0]


def script(name):
    return REPO / name


def save_with(path, meta_changes=(), cell_settings=TINY, config_settings=TINY):
    """A checkpoint as training writes one, with the weights of a network of `cell_settings`, the settings
    `config_settings` and the entries beside the weights changed by `meta_changes`."""
    cfg = load_config(list(config_settings))
    meta = {"step": 5, "config": json.dumps(dict(cfg)), "sampler_state": json.dumps(None), "best_val_acc": 0.5,
            "train_seconds": 1.0, "cpu_seconds": 1.0, **dict(meta_changes)}
    ms.save_checkpoint(build_maml(load_config(list(cell_settings))), str(path), append_dict=meta, crc_check=True)
    return path


# ----------------------------------------------------------------------------- 1-3: data changed or lost


def test_1_eval_launcher_log_never_written_through_a_link(tiny_ckpt, omniglot_root, tmp_path):
    """ln -s mine.ckpt dir/evil.log; bash scripts/run_eval_cpu.sh 0 DATA CKPT --eval_tasks 4 --eval_report
    dir/evil.json: exit 2, one line naming the log and the link, mine.ckpt untouched; likewise a user's text
    file where the log would go."""
    mine = save_tiny_checkpoint(tmp_path / "mine.ckpt")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "evil.log").symlink_to(mine)
    (tmp_path / "dir" / "notes.log").write_text("my notes\n")
    before = {path: sha(path) for path in (mine, tmp_path / "dir" / "notes.log")}
    common = ["scripts/run_eval_cpu.sh", 0, omniglot_root, tiny_ckpt, "--npy_dir", tmp_path / "npy", "--eval_tasks", 4]
    line = refused([*common, "--eval_report", tmp_path / "dir" / "evil.json"], tmp_path, {"PYTHON": sys.executable})
    assert line == (f"error: log {tmp_path / 'dir' / 'evil.log'} is a checkpoint (through the link to {mine}): "
                    "it is left untouched; pass another --eval_report (its log goes beside it)")
    line = refused([*common, "--eval_report", tmp_path / "dir" / "notes.json"], tmp_path, {"PYTHON": sys.executable})
    assert "notes.log is a file that is not a log of the launch scripts: it is left untouched" in line
    assert {path: sha(path) for path in before} == before
    assert not (tmp_path / "dir" / "evil.json").exists() and not (tmp_path / "npy").exists()


def test_2_newline_in_output_dir_is_refused_before_any_write(omniglot_root, tmp_path):
    """output_dir: "DIR/notes\\nx" in a config file; bash scripts/run_distribute_train_cpu.sh 2 2 DATA --config_path
    cfg.yaml: exit 2, one line; the file DIR/notes is untouched and no folder `notes\\nx` is made."""
    (tmp_path / "notes").write_text("my notes\n")
    before = sha(tmp_path / "notes")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f'output_dir: "{tmp_path}/notes\\nx"\n')
    line = refused(["scripts/run_distribute_train_cpu.sh", 2, 2, omniglot_root, "--config_path", cfg, "--npy_dir",
                    tmp_path / "npy"], tmp_path, {"PYTHON": sys.executable})
    assert line == "error: --output_dir must not contain control characters (line breaks, tabs, NUL): pass a plain path"
    assert sha(tmp_path / "notes") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml", "notes"]


def test_2_the_launch_plan_cannot_be_split(fake_python, tmp_path):
    """The plan reaches bash NUL-separated: a log path holding a line break stays one path (the fake plan answers
    it), so nothing is appended to the file its first line would name."""
    (tmp_path / "notes").write_text("my notes\n")
    before = sha(tmp_path / "notes")
    log = tmp_path / "notes\nx.log"
    proc = subprocess.run(["bash", "scripts/run_distribute_train_cpu.sh", "2", "2", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": fake_python.path, "FAKE_LOG": str(log),
                               "FAKE_LOG_DIR": str(tmp_path / "logs")})
    assert proc.returncode == 0, proc.stderr
    assert log.exists() and sha(tmp_path / "notes") == before
    msrun = fake_python.calls()[-1]["argv"]
    assert msrun[:5] == ["-m", "src.model_utils.msrun", "2", "23456", str(tmp_path / "logs")]


def test_3_a_second_run_in_a_folder_in_use_is_refused(tmp_path):
    """A run holds D (here a process holding its lock, as omniglot_train.py does for its life); python
    omniglot_train.py --output_dir D: exit 2, one line naming the holder's pid, D's files untouched. Once the
    holder is killed with kill -9, the system has released the lock: D may be resumed."""
    out = tmp_path / "D"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"event": "train", "step": 1}\n')
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from src.model_utils import run_lock; "
                               f"run_lock.hold({str(out)!r}); print('held', flush=True); time.sleep(300)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = sha(out / "metrics.jsonl")
        for argv in ([], ["--resume"]):
            line = refused(["omniglot_train.py", "--output_dir", out, "--data_path", tmp_path / "absent", *argv], tmp_path)
            assert line == (f"error: output_dir {out} is in use by another run (pid {holder.pid}): wait for it to end "
                            "or pass another --output_dir")
        assert sha(out / "metrics.jsonl") == before
    finally:
        holder.kill()
        holder.wait()
    run_lock.hold(out)  # free again: the system released the dead holder's lock
    run_lock.release(out)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl"]


@pytest.mark.slow
def test_3_two_identical_runs_one_second_apart(omniglot_npy_dir, tmp_path):
    """Two `omniglot_train.py --output_dir D --meta_steps 30` one second apart: the second exits 2 naming the first's pid,
    the first finishes (exit 0) and metrics.jsonl records each step once."""
    out = tmp_path / "D"
    argv = [sys.executable, str(script("omniglot_train.py")), "--output_dir", str(out), "--meta_steps", "30",
            "--npy_dir", str(omniglot_npy_dir), "--data_path", str(omniglot_npy_dir), *TINY, "--task_num", "2",
            "--update_step", "1", "--update_step_test", "1", "--val_tasks", "2", "--eval_every", "0", "--log_every", "1",
            "--cpu_threads", "1"]
    first = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    while not (out / run_lock.LOCK_NAME).exists() and first.poll() is None:
        time.sleep(0.1)
    second = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output
    assert second.returncode == 2 and second.stderr.strip() == (
        f"error: output_dir {out} is in use by another run (pid {first.pid}): wait for it to end or pass another "
        "--output_dir"), second.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "train"]
    assert len(steps) == len(set(steps)) and max(steps) == 30
    assert not (out / run_lock.LOCK_NAME).exists()


# ----------------------------------------------------------------------------- 4-10: one line, no traceback


@pytest.mark.parametrize("entry", ["eval.py", "predict.py", "export.py", "resume"])
def test_4_checkpoint_metadata_is_type_checked(entry, tmp_path):
    """A checkpoint whose train_seconds is "x" (or its step 10**15): eval, predict, export and --resume (through
    the launcher) exit 2 with one line; the checkpoint is untouched."""
    out = tmp_path / "run"
    out.mkdir()
    bad = save_with(out / "maml_step0000005.ckpt", {"train_seconds": "x"})
    huge = save_with(tmp_path / "huge.ckpt", {"step": 10**15})
    before = sha(bad)
    if entry == "resume":
        line = refused(["scripts/run_standalone_train_cpu.sh", 0, 20, tmp_path, "--output_dir", out, "--resume", *TINY],
                       tmp_path, {"PYTHON": sys.executable})
        assert line.startswith(f"error: --resume: none of the 1 step checkpoints in {out} is readable")
    else:
        extra = {"predict.py": ["--support_dir", tmp_path, "--query_dir", tmp_path],
                 "export.py": ["--file_name", tmp_path / "m"]}.get(entry, ["--data_path", tmp_path])
        for ckpt, what in ((bad, "has a malformed train_seconds entry"), (huge, f"has step {10**15}")):
            line = refused([entry, "--ckpt", ckpt, *extra], tmp_path)
            assert line.startswith(f"error: checkpoint {ckpt} {what}: it is truncated or damaged"), line
    assert sha(bad) == before and not (tmp_path / "m.mindir").exists()


def test_5_weights_of_the_wrong_shape_are_one_line(tmp_path):
    """A checkpoint with 8-filter weights under a 16-filter config: eval.py exits 2 with one line naming the
    parameter and both shapes, and without MindSpore's own error lines before it."""
    bad = save_with(tmp_path / "bad.ckpt", config_settings=("--num_filters", "16", "--num_blocks", "2"))
    before = sha(bad)
    proc = subprocess.run([sys.executable, str(script("eval.py")), "--ckpt", str(bad), "--data_path", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"error: checkpoint {bad} holds ") and "of shape (8," in proc.stderr
    assert "not (16," in proc.stderr and sha(bad) == before


def test_5_resume_falls_back_past_weights_of_the_wrong_shape(tmp_path):
    """Step 10's checkpoint holds weights of the wrong shape: resuming takes step 5's, warning about step 10's."""
    from src.engine.loading import load_for_resume

    save_with(tmp_path / "maml_step0000005.ckpt")
    save_with(tmp_path / "maml_step0000010.ckpt", {"step": 10}, cell_settings=("--num_filters", "4", "--num_blocks", "2"))
    warnings = []
    cfg = load_config([*TINY, "--output_dir", str(tmp_path), "--resume"])
    path, meta = load_for_resume(tmp_path, cfg, warnings.append, build_maml(cfg))
    assert (path.name, meta["step"]) == ("maml_step0000005.ckpt", 5)
    assert len(warnings) == 1 and "skipping maml_step0000010.ckpt" in warnings[0] and "of shape (4," in warnings[0]


@pytest.mark.parametrize("option, value", [("--query_images", "999999999"), ("--support_images", "3000000")])
def test_6_14_export_shapes_are_bounded_by_memory(tiny_ckpt, tmp_path, option, value):
    """export.py --query_images 999999999 (or --support_images 3000000): exit 2 with the memory estimate, before
    any work; nothing written."""
    line = refused(["export.py", "--ckpt", tiny_ckpt, "--file_name", tmp_path / "m", option, value], tmp_path)
    assert line.startswith(f"error: --support_images {value if option == '--support_images' else 0} --query_images "
                           f"{value if option == '--query_images' else 0} needs at least ")
    assert "GiB of memory" in line and "but this machine has" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["omniglot_train.py", "--output_dir", f"out/{LONG}"],
    ["omniglot_train.py", "--data_path", f"{LONG}/x"],
    ["omniglot_train.py", "--npy_dir", LONG],
    ["omniglot_train.py", "--config_path", f"{LONG}.yaml"],
    ["eval.py", "--ckpt", f"{LONG}.ckpt"],
    ["eval.py", "--ckpt", "CKPT", "--eval_report", f"{LONG}.json"],
    ["predict.py", "--ckpt", "CKPT", "--support_dir", LONG],
    ["export.py", "--ckpt", "CKPT", "--file_name", LONG],
    ["src/data_preprocess.py", "--data_path", LONG],
    ["src/data/demo_task.py", "--data_path", ".", "--output_path", LONG],
    ["plot_curves.py", "--metrics", "m.jsonl", "--output", f"{LONG}.png"],
    ["src/model_utils/launch_plan.py", "train", "--output_dir", LONG],
])
def test_7_a_name_over_255_bytes_is_one_line(tiny_ckpt, tmp_path, command):
    """Any path component over 255 bytes, in every entry point: exit 2, one line naming the option; nothing made."""
    command = [str(tiny_ckpt) if arg == "CKPT" else arg for arg in command]
    if command[0] == "src/model_utils/launch_plan.py":
        command = ["-m", "src.model_utils.launch_plan", *command[1:]]
        line = refused([sys.executable, *command], REPO)
    else:
        line = refused(command, tmp_path)
    option = next(arg for arg in command if LONG in arg)
    assert re.search(r"has a name of 30[0-5] bytes \(n+\.\.\.\), over the 255", line) and "pass a shorter path" in line, line
    assert command[command.index(option) - 1] in line
    assert list(tmp_path.iterdir()) == []


def test_8_nul_in_a_yaml_path_is_one_line(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text('npy_dir: "a\\0b"\n')
    line = refused(["omniglot_train.py", "--config_path", cfg, "--output_dir", tmp_path / "out"], tmp_path)
    assert line == "error: --npy_dir must not contain control characters (line breaks, tabs, NUL): pass a plain path"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]


@pytest.mark.parametrize("size", [900_000, 100_000_000])
def test_9_12_huge_values_and_files_are_one_short_line(tmp_path, size):
    """A 900 KB string value for output_dir (a file under the cap): one line quoting a short piece of it. A 100 MB
    file: refused by its size before it is read."""
    cfg = tmp_path / "cfg.yaml"
    with open(cfg, "w") as f:
        f.write("output_dir: ")
        f.write("x" * size)
        f.write("\n")
    start = time.time()
    line = refused(["omniglot_train.py", "--config_path", cfg], tmp_path)
    assert time.time() - start < 60 and len(line) < 300, line
    expected = "--output_dir is 900000 bytes long, over the 4095" if size < 2**20 else f"is {size + 13} bytes, over the 1048576"
    assert expected in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]


def test_11_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """A 1 KB YAML of nested aliases on known keys: exit 2 within seconds, one short line."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        lines.append(f"{'bcdefghij'[level - 1]}: &{'bcdefghij'[level - 1]} [{','.join(['*' + 'abcdefghij'[level - 1]] * 9)}]")
    text = "\n".join(lines).replace("a: &a", "split: &a").replace("i: &i", "output_dir: &i") + "\n"
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(text)
    assert cfg.stat().st_size < 1024
    start = time.time()
    line = refused(["omniglot_train.py", "--config_path", cfg], tmp_path)
    assert time.time() - start < 60
    assert line == f"error: config file {cfg} uses an alias (*name), which settings do not take: fix its syntax"


def test_12_many_keys_are_refused_by_size(tmp_path):
    cfg = tmp_path / "keys.yaml"
    cfg.write_text("".join(f"k{i}: {i}\n" for i in range(200_000)))
    line = refused(["omniglot_train.py", "--config_path", cfg], tmp_path)
    assert f"config file {cfg} is {cfg.stat().st_size} bytes, over the 1048576 a settings file may have" in line


@pytest.mark.parametrize("argv, expected", [
    (["--eval_batch", "32000"], "error: eval_batch must be at most 10000 (tasks fine-tuned at once), got 32000"),
    (["--task_num", "3200", "--imgsz", "105"], "error: task_num 3200 needs at least "),
    (["--eval_batch", "10000", "--eval_tasks", "10000", "--imgsz", "105"], "error: eval_batch 10000 needs at least "),
])
def test_13_batches_are_bounded_by_memory(tmp_path, argv, expected):
    """--eval_batch 32000 (a typo for 32), --task_num 3200: exit 2 at once, the estimate in the line; no folder."""
    line = refused(["omniglot_train.py", "--output_dir", tmp_path / "out", *argv], tmp_path)
    assert line.startswith(expected), line
    assert not (tmp_path / "out").exists()


def test_16_cpu_ranks_are_capped_by_the_cores(omniglot_root, tmp_path):
    cores = os.cpu_count()
    ranks = cores + 1
    line = refused(["scripts/run_distribute_train_cpu.sh", ranks, 2, omniglot_root, "--task_num", ranks, "--npy_dir",
                    tmp_path / "npy", "--output_dir", tmp_path / "out"], tmp_path, {"PYTHON": sys.executable})
    assert line == (f"error: RANK_SIZE {ranks} is more CPU ranks than this machine has cores ({cores}): each rank "
                    f"computes on a core of its own; pass at most {cores}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- 17-18 and the noted points


def test_17_a_list_for_a_text_setting_is_refused(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("output_dir: [1]\n")
    line = refused(["omniglot_train.py", "--config_path", cfg], tmp_path)
    assert line == "error: --output_dir takes text, got [1]: write it as a plain string"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_18_ctrl_c_to_standalone_training_is_130(omniglot_npy_dir, omniglot_root, tmp_path, sigint):
    """bash scripts/run_standalone_train_cpu.sh ..., then Ctrl-C (SIGINT to its process group) once it trains:
    exit code 130 and `error: interrupted`, also when the script was started with SIGINT ignored (by `&`)."""
    out = tmp_path / "out"
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    proc = subprocess.Popen(["bash", "scripts/run_standalone_train_cpu.sh", "0", "100000", str(omniglot_root),
                             "--npy_dir", str(omniglot_npy_dir), "--output_dir", str(out), *TINY, "--task_num", "2",
                             "--update_step", "1", "--log_every", "1", "--cpu_threads", "1"],
                            cwd=REPO, start_new_session=True, preexec_fn=ignore, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHON": sys.executable})
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / "train.log").exists() and "step 2/" in (out / "train.log").read_text()):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output[-2000:]
    assert "error: interrupted" in output.splitlines() and "Traceback" not in output, output[-2000:]


def test_noted_eval_refuses_another_imgsz_than_the_checkpoints(tiny_ckpt, tmp_path):
    line = refused(["eval.py", "--ckpt", tiny_ckpt, "--imgsz", "56", "--data_path", tmp_path, "--npy_dir", tmp_path],
                   tmp_path)
    assert line == (f"error: --imgsz 56: checkpoint {tiny_ckpt} was trained on 28-pixel images: drop --imgsz "
                    "(or pass its own)")
    assert list(tmp_path.iterdir()) == []


def test_noted_export_refuses_abbreviations(tiny_ckpt, tmp_path):
    line = refused(["export.py", "--ckpt", tiny_ckpt, "--file_n", tmp_path / "m"], tmp_path)
    assert line.startswith("error: unknown option '--file_n'")
    assert list(tmp_path.iterdir()) == []
