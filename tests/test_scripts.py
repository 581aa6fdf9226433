"""The launch scripts scripts/run_standalone_train_*.sh and scripts/run_eval_*.sh, and the argument
checks of quickstart.sh (its run: tests/test_quickstart.py).

Argument checks and the GPU/Ascend plumbing run the scripts with a fake PYTHON that records its
argv and environment (no MindSpore run, no hardware faked) and hands only the standalone
`-m src.model_utils.launch_plan`, which checks the settings and names the log, to the real interpreter; the CPU scripts also run for real
on tiny settings (marked slow).
"""
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.tiny_checkpoints import save_tiny_checkpoint
from conftest import run_script as run  # noqa: E402 (pytest puts tests/ on sys.path)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
TARGETS = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}
TRAIN = {d: SCRIPTS / f"run_standalone_train_{d}.sh" for d in TARGETS}
EVAL = {d: SCRIPTS / f"run_eval_{d}.sh" for d in TARGETS}
ALL = [*TRAIN.values(), *EVAL.values()]
IDS = [p.name for p in ALL]
QUICKSTART = SCRIPTS / "quickstart.sh"




@functools.cache
def tiny_checkpoint():
    """The bytes of a checkpoint of a small 5-way network, written once per test process."""
    with tempfile.TemporaryDirectory() as tmp:
        return save_tiny_checkpoint(Path(tmp) / "model.ckpt").read_bytes()


def valid_args(script, tmp_path):
    """Positional arguments that pass every check (a data folder as the Omniglot root holds it, and a
    checkpoint for eval)."""
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True, exist_ok=True)
    if script in EVAL.values():
        ckpt = tmp_path / "model.ckpt"
        ckpt.write_bytes(tiny_checkpoint())
        return ["0", data, ckpt]
    return ["0", "5", data]


def option(argv, key):
    return argv[argv.index(key) + 1]


# ----------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("script", ALL, ids=IDS)
@pytest.mark.parametrize("nargs", [0, 1, 2])
def test_too_few_arguments_are_one_line(script, nargs, tmp_path, fake_python):
    """Too few arguments, as a user would type them: exit code 2 and one line naming the positional arguments
    and pointing to --help (no usage block); nothing runs or is created."""
    args = valid_args(script, tmp_path)[:nargs]
    caller = tmp_path / "caller"
    caller.mkdir()
    code, out = run(script, *args, cwd=caller, env={"PYTHON": fake_python.path})
    positional = "DEVICE_ID EPOCH DATA_PATH" if script in TRAIN.values() else "DEVICE_ID DATA_PATH CKPT_PATH"
    got = f"{nargs} argument" + ("" if nargs == 1 else "s")
    assert (code, out.splitlines()) == (2, [f"error: expected {positional} [--key value ...], got {got}: see bash "
                                            f"scripts/{script.name} --help"])
    assert fake_python.calls() == [] and list(caller.iterdir()) == []


@pytest.mark.parametrize("script", ALL, ids=IDS)
def test_help(script):
    code, out = run(script, "--help")
    assert code == 0 and "Usage" in out


@pytest.mark.parametrize("script", ALL, ids=IDS)
@pytest.mark.parametrize("bad, message", [
    ("x", "--device_id takes an integer, got 'x'"),
    ("-1", "device_id must be >= 0, got -1"),
    ("1.5", "--device_id takes an integer, got '1.5'"),
], ids=["word", "negative", "fraction"])
def test_bad_device_id(script, bad, message, tmp_path, fake_python):
    """Python checks DEVICE_ID (as --device_id): one error line, exit code 2, and nothing is run."""
    args = valid_args(script, tmp_path)
    code, out = run(script, bad, *args[1:], "--output_dir", tmp_path / "out", env={"PYTHON": fake_python.path})
    assert (code, out.splitlines()) == (2, [f"error: {message}"])
    assert fake_python.calls() == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", TRAIN.values(), ids=[p.name for p in TRAIN.values()])
@pytest.mark.parametrize("bad", ["0", "abc", "-3", "00"])
def test_bad_epoch(script, bad, tmp_path, fake_python):
    """Python checks EPOCH (as --meta_steps): one error line, exit code 2, and nothing is run."""
    data = valid_args(script, tmp_path)[2]
    code, out = run(script, "0", bad, data, "--output_dir", tmp_path / "out", env={"PYTHON": fake_python.path})
    message = "--meta_steps takes an integer, got 'abc'" if bad == "abc" else f"meta_steps must be >= 1, got {int(bad)}"
    assert (code, out.strip().splitlines()[-1]) == (2, f"error: {message}")
    assert fake_python.calls() == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ALL, ids=IDS)
def test_settings_are_checked_by_python_before_the_run(script, tmp_path, fake_python):
    """Python owns every check of a setting: one `error:` line, exit code 2, and nothing is run."""
    code, out = run(script, *valid_args(script, tmp_path), "--n_way", "0", env={"PYTHON": fake_python.path})
    assert code == 2
    assert out.splitlines() == ["error: n_way must be between 2 and 100 (the smallest class set of split finn), got 0"]
    assert fake_python.calls() == []


@pytest.mark.parametrize("script", ALL, ids=IDS)
def test_path_option_followed_by_another_option_is_one_line(script, tmp_path, fake_python):
    """bash SCRIPT ... --output_dir --resume -> exit 2, one line naming --output_dir: the next option is not taken
    for its value (as a folder named --resume), nothing is run or created."""
    caller = tmp_path / "caller"
    caller.mkdir()
    code, out = run(script, *valid_args(script, tmp_path), "--output_dir", "--resume", cwd=caller,
                    env={"PYTHON": fake_python.path})
    assert (code, out.splitlines()) == (2, ["error: argument --output_dir: expected one argument"])
    assert fake_python.calls() == [] and list(caller.iterdir()) == []


@pytest.mark.parametrize("script", [TRAIN["cpu"], EVAL["cpu"]], ids=["train", "eval"])
def test_missing_data_is_refused_before_the_log_is_started(script, tmp_path, fake_python):
    """bash SCRIPT ... DATA ... --output_dir OUT, DATA without Omniglot -> exit 2, 'error: no Omniglot data: ...';
    nothing runs, and neither OUT nor a log is created."""
    args = valid_args(script, tmp_path)
    (tmp_path / "data" / "raw").rmdir()
    code, out = run(script, *args, "--output_dir", tmp_path / "out", env={"PYTHON": fake_python.path})
    assert code == 2 and out.splitlines()[0].startswith(f"error: no Omniglot data: {tmp_path / 'data'} has no raw/")
    assert fake_python.calls() == [] and sorted(p.name for p in tmp_path.iterdir()) == ["bin", "data"] + (
        ["model.ckpt"] if script == EVAL["cpu"] else [])


def test_eval_launcher_takes_the_checkpoints_settings_as_eval_py_does(tmp_path, fake_python):
    """A checkpoint trained with 5 queries per class, evaluated 10-shot with 10 queries: k_spt + k_qry = 15 of
    the 20 drawings (the defaults' k_qry 15 would exceed them), so eval.py accepts it and so must the launcher."""
    args = valid_args(EVAL["cpu"], tmp_path)
    save_tiny_checkpoint(args[2], "--k_spt", "5", "--k_qry", "5")
    code, out = run(EVAL["cpu"], *args, "--k_spt", "10", "--k_qry_test", "10", env={"PYTHON": fake_python.path})
    assert code == 0, out
    (call,) = fake_python.calls()
    assert call["argv"][0] == "eval.py" and option(call["argv"], "--k_spt") == "10"


@pytest.mark.parametrize("script", ALL, ids=IDS)
def test_option_without_its_value_is_one_line(script, tmp_path, fake_python):
    """bash SCRIPT ... --k_qry_test (no value) -> exit 2, one line naming the option, no usage text, nothing run."""
    code, out = run(script, *valid_args(script, tmp_path), "--k_qry_test", env={"PYTHON": fake_python.path})
    assert (code, out.splitlines()) == (2, ["error: argument --k_qry_test: expected one argument"])
    assert fake_python.calls() == []


@pytest.mark.parametrize("script", EVAL.values(), ids=[p.name for p in EVAL.values()])
def test_missing_ckpt_path(script, tmp_path, fake_python):
    args = valid_args(script, tmp_path)
    code, out = run(script, args[0], args[1], "nowhere/best.ckpt", cwd=tmp_path, env={"PYTHON": fake_python.path})
    assert code == 2
    assert out.splitlines() == [f"error: checkpoint {tmp_path / 'nowhere' / 'best.ckpt'} not found: pass --ckpt the "
                                "path of a .ckpt file written by omniglot_train.py"]
    assert fake_python.calls() == []


@pytest.mark.parametrize("script", ALL, ids=IDS)
def test_help_anywhere_prints_the_usage_and_runs_nothing(script, tmp_path, fake_python):
    code, out = run(script, *valid_args(script, tmp_path), "--output_dir", tmp_path / "out", "--help",
                    env={"PYTHON": fake_python.path})
    assert code == 0 and out.startswith("Usage: bash scripts/") and "error" not in out
    assert fake_python.calls() == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ALL, ids=IDS)
def test_positional_keys_are_not_overridable(script, tmp_path, fake_python):
    code, out = run(script, *valid_args(script, tmp_path), "--device_id=1", env={"PYTHON": fake_python.path})
    assert (code, out.splitlines()) == (2, ["error: --device_id is set by this script (see its usage): do not pass "
                                            "it as an override"])
    assert fake_python.calls() == []


def test_missing_python(tmp_path):
    code, out = run(TRAIN["cpu"], *valid_args(TRAIN["cpu"], tmp_path), env={"PYTHON": "no-such-python-here"})
    assert (code, len(out.splitlines())) == (2, 1)
    assert out.startswith("error: python 'no-such-python-here' not found")


# ----------------------------------------------------------------------------- quickstart.sh's arguments


def run_quickstart(tmp_path, *args):
    """quickstart.sh from an empty tmp_path, with VENV a new folder there and PYTHON_BIN no interpreter:
    setup_env.sh, if reached, would fail to create the venv (exit code 127) rather than install anything."""
    env = dict(os.environ, VENV=str(tmp_path / "venv"), PYTHON_BIN=str(tmp_path / "no-python"),
               NPY_DIR=str(tmp_path / "npy"))
    return subprocess.run(["bash", str(QUICKSTART), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["/data/omniglot", "out", "--meta_steps", "3", "--help"]],
                         ids=["help", "h", "help_last"])
def test_quickstart_help_prints_the_usage_and_installs_nothing(tmp_path, args):
    proc = run_quickstart(tmp_path, *args)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    lines = proc.stdout.splitlines()
    assert "Usage: bash scripts/quickstart.sh OMNIGLOT_ROOT [OUTPUT_DIR] [--key value ...]" in lines
    assert lines[0].startswith("The README's main command") and not any(line.startswith("#") for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_quickstart_needs_the_data_folder(tmp_path):
    """`bash scripts/quickstart.sh` alone: exit code 2, one `error:` line naming OMNIGLOT_ROOT; nothing installed."""
    proc = run_quickstart(tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == ["error: expected OMNIGLOT_ROOT [OUTPUT_DIR] [--key value ...], got 0 arguments: "
                                        "see bash scripts/quickstart.sh --help"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, name", [(["/data/omniglot", "--meta_steps", "100"], "OUTPUT_DIR"),
                                        (["--meta_steps", "100"], "OMNIGLOT_ROOT")], ids=["output_dir", "omniglot_root"])
def test_quickstart_refuses_an_option_in_place_of_a_folder(tmp_path, args, name):
    """`bash scripts/quickstart.sh /data/omniglot --meta_steps 100`: exit code 2, one `error:` line saying that
    overrides come after both folders; nothing is installed or created."""
    proc = run_quickstart(tmp_path, *args)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == [f"error: {name} '--meta_steps' starts with '-': overrides come after OMNIGLOT_ROOT "
                                        "and OUTPUT_DIR, e.g. bash scripts/quickstart.sh /data/omniglot "
                                        "output/quickstart --meta_steps 100"]
    assert list(tmp_path.iterdir()) == []


def test_quickstart_refuses_an_override_of_its_arguments_before_installing(tmp_path):
    """`bash scripts/quickstart.sh DATA OUT --output_dir X`: exit code 2, one line (the second argument sets
    output_dir: training would write to X and evaluation look in OUT); nothing installed or written."""
    proc = run_quickstart(tmp_path, tmp_path / "data", tmp_path / "out", "--output_dir", "elsewhere")
    assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (
        2, "", ["error: --output_dir is set by this script (see its usage): do not pass it as an override"])
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- plumbing (fake python)


@pytest.mark.parametrize("device", ["gpu", "ascend"])
def test_train_plumbing(device, tmp_path, fake_python):
    """Relative paths resolved from the caller's directory; training builds omniglot.npy itself."""
    caller = tmp_path / "elsewhere"
    (caller / "data" / "raw").mkdir(parents=True)
    relative_python = os.path.relpath(fake_python.path, caller)  # contains a slash: resolved before the cd
    code, out = run(TRAIN[device], "3", "7", "data", "--npy_dir", "npy", "--output_dir=out", "--task_num", "2",
                    "--resume", "--imgsz", "28", cwd=caller, env={"PYTHON": relative_python, "CUDA_VISIBLE_DEVICES": "5"})
    assert code == 0, out
    (train,) = fake_python.calls()
    data, npy, output = caller / "data", caller / "npy", caller / "out"
    argv = train["argv"]
    assert argv[0] == "omniglot_train.py"
    assert option(argv, "--device_target") == TARGETS[device]
    assert option(argv, "--device_id") == "3"
    assert option(argv, "--meta_steps") == "7"
    assert option(argv, "--data_path") == str(data)
    assert option(argv, "--npy_dir") == str(npy)
    assert option(argv, "--output_dir") == str(output)
    assert option(argv, "--task_num") == "2"
    assert "--resume" in argv
    for call in (train,):
        assert call["cwd"] == str(REPO)
        assert call["env"]["DEVICE_ID"] == "3"
        assert call["env"]["CUDA_VISIBLE_DEVICES"] == "5"  # left alone: MindSpore picks the card from device_id
        if device == "ascend":
            assert call["env"]["RANK_SIZE"] == "1" and call["env"]["RANK_ID"] == "0"
        else:
            assert "RANK_SIZE" not in call["env"] and "RANK_ID" not in call["env"]
    log = output / "train.log"
    assert "omniglot_train.py" in log.read_text()


@pytest.mark.parametrize("device", ["gpu", "ascend"])
def test_eval_plumbing(device, tmp_path, fake_python):
    """Straight to eval.py, with the log beside the checkpoint."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "omniglot.npy").write_bytes(b"")
    (data / "omniglot_index.json").write_text("{}")
    ckpt = tmp_path / "run" / "best.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(tiny_checkpoint())
    code, out = run(EVAL[device], "2", "data", "run/best.ckpt", "--eval_tasks", "4", cwd=tmp_path,
                    env={"PYTHON": fake_python.path})
    assert code == 0, out
    (call,) = fake_python.calls()
    argv = call["argv"]
    assert argv[0] == "eval.py"
    assert option(argv, "--device_target") == TARGETS[device]
    assert option(argv, "--device_id") == "2"
    assert option(argv, "--data_path") == str(data)
    assert option(argv, "--ckpt") == str(ckpt)
    assert option(argv, "--eval_tasks") == "4"
    assert call["env"]["DEVICE_ID"] == "2"
    assert (tmp_path / "run" / "best.ckpt.eval.log").is_file()


def test_eval_report_is_made_absolute_and_gets_the_log(tmp_path, fake_python):
    """--eval_report (a second protocol's result) is taken from the caller's directory; its log lies beside it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "omniglot.npy").write_bytes(b"")
    (data / "omniglot_index.json").write_text("{}")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.ckpt").write_bytes(tiny_checkpoint())
    code, out = run(EVAL["cpu"], "0", "data", "run/best.ckpt", "--eval_report", "run/one_query.json", cwd=tmp_path,
                    env={"PYTHON": fake_python.path})
    assert code == 0, out
    (call,) = fake_python.calls()
    assert option(call["argv"], "--eval_report") == str(tmp_path / "run" / "one_query.json")
    assert (tmp_path / "run" / "one_query.log").is_file()
    assert not (tmp_path / "run" / "best.ckpt.eval.log").exists()
    code, out = run(EVAL["cpu"], "0", "data", "run/best.ckpt", "--eval_report", "absent/r.json", cwd=tmp_path,
                    env={"PYTHON": fake_python.path})
    assert code == 2 and "absent" in out and "does not exist" in out
    assert len(fake_python.calls()) == 1


@pytest.mark.parametrize("name", ["from_yaml", "run#2"])
def test_exit_code_is_pythons_and_log_follows_config_path(tmp_path, fake_python, name):
    """No --output_dir: the log goes to the output_dir of --config_path, read as Python reads it (a `#`
    inside quotes is part of the value); python's exit code is kept."""
    out_dir = tmp_path / name
    config = tmp_path / "my.yaml"
    config.write_text(f"output_dir: \"{out_dir}\"   # a comment\n")
    data = tmp_path / "data"
    data.mkdir()
    for name in ("omniglot.npy", "omniglot_index.json"):
        (data / name).write_bytes(b"")
    code, out = run(TRAIN["cpu"], "0", "1", data, "--config_path", config,
                    env={"PYTHON": fake_python.path, "FAKE_EXIT": "3"})
    assert code == 3
    assert (out_dir / "train.log").is_file() and sorted(os.listdir(tmp_path / "data")) == ["omniglot.npy", "omniglot_index.json"]
    assert not (REPO / '"').exists()
    (call,) = fake_python.calls()
    assert option(call["argv"], "--config_path") == str(config)


# ----------------------------------------------------------------------------- real python


@pytest.mark.parametrize("ranks", [[], ["2", ""]], ids=["standalone", "data_parallel"])
@pytest.mark.parametrize("kind", ["train", "eval"])
def test_a_mistyped_setting_is_refused_before_mindspore_loads(kind, ranks):
    """The launch plan answers a value of the wrong type at once: MindSpore (seconds to load) is not imported."""
    code = (f"import runpy, sys\nsys.argv = ['launch_plan', {kind!r}, *{ranks!r}, '--task_num', 'x']\n"
            "try:\n    runpy.run_module('src.model_utils.launch_plan', run_name='__main__')\n"
            "except SystemExit as done:\n    print(done.code, 'mindspore' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    assert proc.stderr == "error: --task_num takes an integer, got 'x'\n"


def test_gpu_unavailable_is_one_line_error(tmp_path, omniglot_root, omniglot_npy_dir):
    code, out = run(TRAIN["gpu"], "0", "1", omniglot_root, "--npy_dir", omniglot_npy_dir, "--output_dir",
                    tmp_path / "out", "--task_num", "2", "--num_filters", "8",
                    env={"PYTHON": sys.executable}, timeout=300)
    assert code == 2
    # Stopped before training: the launch plan's one line, MindSpore's reason in it, no log begun.
    assert len(out.splitlines()) == 1 and out.startswith("error: device_target GPU is not available here ("), out
    assert "libmindspore_gpu" in out and not (tmp_path / "out").exists()


TINY = ["--k_qry", "2", "--k_qry_test", "2", "--num_filters", "16", "--update_step_test", "2", "--eval_batch", "4"]


@pytest.mark.slow
def test_cpu_train_then_eval(tmp_path, omniglot_root, omniglot_npy_dir):
    out = tmp_path / "out"
    code, text = run(TRAIN["cpu"], "0", "4", omniglot_root, "--npy_dir", omniglot_npy_dir, "--output_dir", out,
                     "--task_num", "2", "--update_step", "1", "--log_every", "2", "--eval_every", "0",
                     "--val_tasks", "4", "--save_every", "2", *TINY, cwd=tmp_path,
                     env={"PYTHON": sys.executable}, timeout=600)
    assert code == 0, text
    assert (out / "best.ckpt").is_file()
    assert sorted(p.name for p in out.glob("maml_step*.ckpt"))
    assert (out / "metrics.jsonl").is_file()
    log = (out / "train.log").read_text()
    assert "step 4/4" in log and "done: 4 steps" in log

    code, text = run(EVAL["cpu"], "0", omniglot_root, out / "best.ckpt", "--npy_dir", omniglot_npy_dir,
                     "--eval_tasks", "4", *TINY, cwd=tmp_path, env={"PYTHON": sys.executable}, timeout=600)
    assert code == 0, text
    assert "test accuracy" in text
    report = json.loads((out / "best.ckpt.eval.json").read_text())
    assert report["tasks"] == 4
    assert "test accuracy" in (out / "best.ckpt.eval.log").read_text()


def test_shell_syntax_and_shellcheck():
    """Every shell script of the repository parses and passes shellcheck (requirements-dev.txt installs it
    into the venv, beside the interpreter running the tests)."""
    scripts = sorted(SCRIPTS.glob("*.sh")) + [REPO / ".ci" / "run"]
    assert {*ALL, QUICKSTART, SCRIPTS / "common.sh"} <= set(scripts)
    for script in scripts:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    beside = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside) if beside.is_file() else shutil.which("shellcheck")
    assert shellcheck, "shellcheck not found: pip install -r requirements-dev.txt"
    proc = subprocess.run([shellcheck, "-x", *(str(p.relative_to(REPO)) for p in scripts)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
