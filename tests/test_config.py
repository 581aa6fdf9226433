"""Settings: defaults, --key value overrides with type casts, and one-line errors for bad values."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src.model_utils.config import DEFAULT_CONFIG, load_config
from src.model_utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_load_and_every_key_is_commented():
    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg = load_config([])
    assert dict(cfg) == defaults
    assert cfg.n_way == 5 and cfg.first_order is False and cfg.device_target == "CPU"
    key_lines = [line for line in DEFAULT_CONFIG.read_text().splitlines() if re.match(r"^\w+:", line)]
    assert {line.split(":")[0] for line in key_lines} == set(defaults)
    uncommented = [line for line in key_lines if "#" not in line.split(":", 1)[1]]
    assert not uncommented, f"keys without a comment: {uncommented}"


def test_override_is_cast_to_the_default_type():
    cfg = load_config(["--n_way", "20", "--meta_lr", "1e-4", "--split", "background"])
    assert cfg.n_way == 20 and isinstance(cfg.n_way, int)
    assert cfg.meta_lr == 1e-4 and isinstance(cfg.meta_lr, float)
    assert cfg.split == "background"
    assert load_config(["--mode", "pynative"]).mode == "PYNATIVE"


@pytest.mark.parametrize("argv, first_order, resume", [
    (["--first_order", "true"], True, False),
    (["--first_order", "no"], False, False),
    (["--resume"], False, True),
    (["--resume", "--meta_steps", "3"], False, True),
    (["--resume", "false"], False, False),
])
def test_bool_forms(argv, first_order, resume):
    cfg = load_config(argv)
    assert (cfg.first_order, cfg.resume) == (first_order, resume)


def _error(argv):
    with pytest.raises(UserError) as err:
        load_config(argv)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_unknown_option_suggests_the_closest_key():
    assert _error(["--n_wya", "5"]) == "unknown option '--n_wya': did you mean --n_way? --help lists the options"
    assert _error(["--k-spt", "5"]) == "unknown option '--k-spt': did you mean --k_spt? --help lists the options"
    assert _error(["--colour", "red"]) == "unknown option '--colour': --help lists the options"


@pytest.mark.parametrize("argv, expected", [
    (["--n_way", "abc"], "--n_way takes an integer, got 'abc'"),
    # int() takes these; the launch scripts would export DEVICE_ID as written.
    (["--device_id", " 1"], "--device_id takes an integer, got ' 1'"),
    (["--device_id", "+1"], "--device_id takes an integer, got '+1'"),
    (["--meta_steps", "1_000"], "--meta_steps takes an integer, got '1_000'"),
    (["--meta_lr", "fast"], "--meta_lr takes a number"),
    (["--first_order", "maybe"], "--first_order takes true or false"),
])
def test_wrong_type(argv, expected):
    assert expected in _error(argv)


@pytest.mark.parametrize("argv, expected", [
    # The finn split has only 100 validation classes.
    (["--n_way", "101"], "n_way must be between 2 and 100 (the smallest class set of split finn), got 101"),
    (["--n_way", "0"], "n_way must be between 2 and 100"),
    (["--k_spt", "0"], "k_spt must be >= 1, got 0"),
    (["--imgsz", "0"], "imgsz must be >= 1, got 0"),
    (["--k_spt", "10", "--k_qry", "11"], "k_spt + k_qry must be <= 20 (drawers per Omniglot character), got 21"),
    (["--k_qry_test", "20"], "k_spt + k_qry_test must be <= 20 (drawers per Omniglot character), got 21"),
    (["--device_target", "TPU"], "device_target 'TPU' is not valid: use one of CPU, GPU, Ascend"),
    (["--mode", "FAST"], "mode 'FAST' is not valid: use GRAPH or PYNATIVE"),
    (["--cpu_threads", "-1"], "cpu_threads must be >= 0 (0 lets MindSpore choose), got -1"),
    (["--split", "lake"], "split 'lake' is not valid: use one of finn, background"),
    (["--eval_split", "train"], "eval_split 'train' is not valid: use one of test, val"),
    (["--ensemble", "-1"], "ensemble must be >= 0, got -1"),
    (["--ensemble", "101"], "ensemble must be at most 100"),
    # The best validations' checkpoints can only be kept if every validated step is saved.
    (["--keep_best_checkpoints", "5", "--eval_every", "500", "--save_every", "1000"],
     "keep_best_checkpoints needs a checkpoint of every validated step: make eval_every a positive multiple of save_every (1000), got eval_every 500"),
    (["--keep_best_checkpoints", "5", "--eval_every", "0"], "make eval_every a positive multiple of save_every"),
    (["--ensemble", "5", "--eval_per_step"], "eval_per_step scores a single checkpoint, not an ensemble"),
])
def test_invalid_values_name_what_is_valid(argv, expected):
    assert expected in _error(argv)


def test_config_file_overrides_defaults_and_cli_overrides_it(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("n_way: 10\nk_spt: 5\n")
    cfg = load_config(["--config_path", str(path), "--k_spt", "3"])
    assert (cfg.n_way, cfg.k_spt, cfg.k_qry) == (10, 3, 15)


@pytest.mark.parametrize("text, key", [
    ("n_way: 10\nlearning_rate: 0.1\n", "learning_rate"),
    ("n_way: 5\n1: 2\nfoo: 3\n", "1"),  # YAML reads 1 (and yes, on) as a number (a boolean), not a string
    ("on: 1\nn_way: 5\n", "True")])
def test_config_file_with_unknown_key(tmp_path, text, key):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    message = _error(["--config_path", str(path)])
    assert f"unknown key '{key}'" in message and str(path) in message and "valid keys:" in message


def test_missing_config_file(tmp_path):
    assert "not found" in _error(["--config_path", str(tmp_path / "absent.yaml")])


def test_config_file_that_is_a_link_loop(tmp_path):
    """--config_path loop.yaml (a link to itself): one error, not pathlib's RuntimeError."""
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    assert "loop.yaml not found: pass --config_path" in _error(["--config_path", str(tmp_path / "loop.yaml")])


def test_binary_config_file_is_refused_untouched(tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    message = _error(["--config_path", str(path)])
    assert "unreadable or not text" in message and str(path) in message and "pass --config_path" in message
    assert path.read_bytes() == b"\x89PNG\r\n\x1a\n\xff\xfe"


def test_option_without_its_value_is_one_error():
    message = _error(["--ckpt"])
    assert message == "argument --ckpt: expected one argument"


@pytest.mark.slow
def test_cli_bad_value_is_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "omniglot_train.py"), "--n_way", "0",
                           "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: n_way must be between 2 and 100 (the smallest class set of split finn), got 0"]
    assert not (tmp_path / "out").exists()


CONFIG_FILES = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_shipped_config_files_load(path):
    """Every configuration in configs/ passes validation (a refused value would surface only when a user
    starts a run); the training ones write to output/<their name>, where the READMEs look."""
    cfg = load_config(["--config_path", str(path)])
    if path.stem != "quickstart_cpu":
        assert cfg.output_dir == f"output/{path.stem}"


def test_mamlpp_5shot_stage_differs_from_the_1shot_run_only_where_it_says():
    """The 20-way 5-shot MAML++ configuration resumes a 1-shot MAML++ run: it changes the shots, the end of the
    cosine schedule and the folder, nothing else (a changed network or option would not resume)."""
    one, five = (yaml.safe_load((REPO / "configs" / f"omniglot_20way_{k}shot_mamlpp.yaml").read_text()) for k in (1, 5))
    assert set(one) == set(five)
    assert {key for key in one if one[key] != five[key]} == {"k_spt", "meta_steps", "output_dir"}


def test_old_names_still_work_with_one_warning_each(tmp_path, capsys):
    """Settings files and command lines of users name meta_steps `epoch`, msl_steps `msl_epochs` and carry the
    gone `imgc`: they still load, the same as with the current names, each old name warned about once."""
    from src.model_utils import config

    config._warned.clear()
    old = tmp_path / "old.yaml"
    old.write_text("epoch: 7\nmsl_epochs: 3\nimgc: 1\n")
    cfg = load_config(["--config_path", str(old)])
    assert (cfg.meta_steps, cfg.msl_steps, "imgc" in cfg) == (7, 3, False)
    assert load_config(["--epoch", "9", "--imgc", "1"]).meta_steps == 9
    assert load_config(["--epoch", "9"]).meta_steps == 9  # warned once only
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 5 and all(line.startswith("warning: ") for line in warnings)
    assert sum("--epoch" in w and "meta_steps" in w for w in warnings) == 1
    assert load_config(["--config_path", str(old), "--meta_steps", "11"]).meta_steps == 11  # the command line wins


def test_an_old_name_beside_its_new_one_is_refused(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("epoch: 7\nmeta_steps: 8\n")
    with pytest.raises(UserError, match=f"epoch in {both} is the old name of meta_steps, which is given too: drop epoch"):
        load_config(["--config_path", str(both)])
    with pytest.raises(UserError, match="--epoch is the old name of meta_steps, which is given too: drop epoch"):
        load_config(["--epoch", "3", "--meta_steps", "4"])
