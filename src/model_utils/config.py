"""Settings: default_config.yaml merged with `--key value` overrides, type-checked and validated."""
import argparse
import difflib
import math
import os
import re
import sys
from pathlib import Path

import yaml

from src.data.release import NUM_DRAWERS, SOURCE_SIZE
from src.data.splits import EVAL_SPLITS, SPLITS, split_sizes
from src.formulation import BN_CHOICES, CONV_CHOICES
from src.model_utils.errors import ArgumentParser, UserError, shown
from src.model_utils.memory import check_batch_memory
from src.model_utils.paths import checked_path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "default_config.yaml"
DEVICE_TARGETS = ("CPU", "GPU", "Ascend")
MODES = ("GRAPH", "PYNATIVE")
MAX_SEED = 2**32 - 1
# Bounds on settings that cost time or memory in proportion to their value: far above any real use,
# they turn a typo (an extra zero, a negative number wrapped round) into an error instead of a run
# that never ends or exhausts the memory.
UPPER_BOUNDS = {
    "meta_steps": (10**7, "meta-steps; the paper trains 60000"),
    "update_step": (100, "inner steps unrolled into the training graph"),
    "update_step_test": (10**4, "fine-tuning steps"),
    "eval_tasks": (10**5, "test tasks"),
    "val_tasks": (10**5, "validation tasks"),
    "task_num": (10**4, "tasks per meta-batch"),
    "eval_batch": (10**4, "tasks fine-tuned at once"),
    "num_filters": (4096, "filters per convolution"),
    "num_blocks": (16, "convolution blocks"),
    "ensemble": (100, "checkpoints fine-tuned on every test task"),
}
META_LR_SCHEDULES = ("step", "cosine")
# Old names of settings, still read since users' settings files and the configs stored in their checkpoints
# use them: a warning line for each (none for a checkpoint's), the value taken under the current name.
RENAMED = {"epoch": "meta_steps", "msl_epochs": "msl_steps"}
# Settings that are gone, ignored with a warning: the images have one channel (grey-scale).
DROPPED = ("imgc",)
# Settings that name files or folders: refused with control characters or over-long names (src/model_utils/paths.py).
PATH_KEYS = ("data_path", "npy_dir", "output_dir", "ckpt", "eval_report", "support_dir", "query_dir")
# A settings file is a page of `key: value` lines: a larger one is a mistake (or an attack), not a config.
MAX_CONFIG_BYTES = 2**20
MAX_NUMBER_DIGITS = 30  # far above any setting's bound; int() of a longer text is slow or refused
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


class Config(dict):
    """A dict whose keys read as attributes (cfg.n_way), the form ModelZoo code expects."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as err:
            raise AttributeError(key) from err


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (`*name`): settings never need them, and a few nested ones expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("an alias (*name)")
        return super().compose_node(parent, index)


def _read_yaml(path):
    path = Path(checked_path("--config_path", path))
    try:
        if not path.is_file():
            raise UserError(f"config file {path} not found: pass --config_path to an existing YAML file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UserError(f"config file {path} is {path.stat().st_size} bytes, over the {MAX_CONFIG_BYTES} a "
                            "settings file may have: pass --config_path a file of key: value lines")
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"config file {path} is unreadable or not text ({err.__class__.__name__}): "
                        "pass --config_path a readable YAML file") from None
    except (yaml.YAMLError, ValueError, RecursionError) as err:  # ValueError: e.g. an integer of 5000 digits
        what = "uses an alias (*name), which settings do not take" if "alias" in str(err)[:20] else \
            f"is not valid YAML ({err.__class__.__name__})"
        raise UserError(f"config file {path} {what}: fix its syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of key: value lines")
    return data


def _convert(key, value, default):
    """Cast `value` (a CLI string or a YAML scalar) to the type of the default value."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in TRUE_WORDS or text in FALSE_WORDS:
            return text in TRUE_WORDS
        raise UserError(f"--{key} takes true or false, got {shown(value)}")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise UserError(f"--{key} takes an integer, got {shown(value)}")
        if isinstance(value, float):
            return int(value)
        # Digits only: int() would also take " 1", "+1" and "1_0", which the launchers export as they are.
        if not re.fullmatch(rf"-?[0-9]{{1,{MAX_NUMBER_DIGITS}}}", str(value)):
            raise UserError(f"--{key} takes an integer, got {shown(value)}")
        return int(str(value))
    if kind is float:
        try:
            if isinstance(value, str) and len(value) > MAX_NUMBER_DIGITS:
                raise ValueError
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"--{key} takes a number, got {shown(value)}") from None
    if value is not None and not isinstance(value, (str, int, float)):  # a list or a mapping in a YAML file
        raise UserError(f"--{key} takes text, got {shown(value)}: write it as a plain string")
    text = "" if value is None else str(value)
    return checked_path(f"--{key}", text) if key in PATH_KEYS else text


_warned = set()


def _warn(message):
    """A warning line on standard error, once per process (the settings may be read more than once)."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def current_names(values, source=None):
    """`values` (settings) under their current names: RENAMED keys renamed, DROPPED ones left out, each with
    a warning naming `source` ("the command line" or a settings file; None, a checkpoint's config: silent)."""
    current = {}
    for key, value in values.items():
        if key in RENAMED or key in DROPPED:
            old = f"--{key}" if source == "the command line" else f"{key} in {source}" if source else key
            if key in DROPPED:
                if source:
                    _warn(f"{old} is ignored: it is no longer a setting (the images are grey-scale); drop it")
                continue
            new = RENAMED[key]
            if new in values:
                raise UserError(f"{old} is the old name of {new}, which is given too: drop {key}")
            if source:
                _warn(f"{old} is now {new} (it counts meta-steps): use {new}")
            key = new
        current[key] = value
    return current


def recorded_settings(values):
    """The settings a checkpoint or an eval report records, under their current names. One it lacks was added
    after it was written, with what every run did before as its default, so it takes that default; k_qry_test
    was the queries of training (k_qry) before it could differ."""
    values = current_names(values)
    earlier = {"k_qry_test": values["k_qry"]} if "k_qry" in values else {}
    return _read_yaml(DEFAULT_CONFIG) | earlier | values


def _parse_overrides(argv, defaults):
    parser = ArgumentParser(add_help=True, allow_abbrev=False, description="MAML on Omniglot. Every key of default_config.yaml can be overridden.")
    parser.add_argument("--config_path", default=str(DEFAULT_CONFIG), help="YAML file with the settings")
    for key, value in defaults.items():
        # A bare boolean flag (`--resume`) means true.
        flag = {"nargs": "?", "const": "true"} if isinstance(value, bool) else {}
        parser.add_argument(f"--{key}", default=None, help=f"default: {value!r}", **flag)
    for key in (*RENAMED, *DROPPED):  # still read: current_names
        parser.add_argument(f"--{key}", default=None, help=argparse.SUPPRESS)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # A program's own options (export.py's --file_name, ...) are not keys: --help lists both.
        typed = unknown[0].split("=", 1)[0].lstrip("-").replace("-", "_")
        close = difflib.get_close_matches(typed, defaults, n=1)
        hint = f"did you mean --{close[0]}? " if close else ""
        raise UserError(f"unknown option {shown(unknown[0])}: {hint}--help lists the options")
    return args


def validate(cfg, trains=True):
    """Reject settings that cannot work, naming the valid values. k_qry is checked only for a program that
    trains: eval.py, predict.py and export.py never draw training queries (and inherit k_qry)."""
    def need(ok, message):
        if not ok:
            raise UserError(message)

    need(cfg.output_dir.strip() != "", "output_dir must not be empty: pass --output_dir a folder (e.g. output/run1)")

    need(cfg.device_target in DEVICE_TARGETS, f"device_target {cfg.device_target!r} is not valid: use one of {', '.join(DEVICE_TARGETS)}")
    cfg["mode"] = cfg.mode.upper()
    need(cfg.mode in MODES, f"mode {cfg.mode!r} is not valid: use GRAPH or PYNATIVE")
    for key, choices in (("conv_impl", CONV_CHOICES), ("bn_impl", BN_CHOICES)):
        need(cfg[key] in choices, f"{key} {cfg[key]!r} is not valid: use one of {', '.join(choices)}")
    need(cfg.device_id >= 0, f"device_id must be >= 0, got {cfg.device_id}")
    need(cfg.cpu_threads >= 0, f"cpu_threads must be >= 0 (0 lets MindSpore choose), got {cfg.cpu_threads}")
    need(cfg.split in SPLITS, f"split {cfg.split!r} is not valid: use one of {', '.join(SPLITS)}")
    need(cfg.eval_split in EVAL_SPLITS, f"eval_split {cfg.eval_split!r} is not valid: use one of {', '.join(EVAL_SPLITS)}")
    smallest = min(split_sizes(cfg.split).values())
    need(2 <= cfg.n_way <= smallest, f"n_way must be between 2 and {smallest} (the smallest class set of split {cfg.split}), got {cfg.n_way}")
    need(cfg.k_spt >= 1, f"k_spt must be >= 1, got {cfg.k_spt}")
    for key in ("k_qry", "k_qry_test") if trains else ("k_qry_test",):
        need(cfg[key] >= 1, f"{key} must be >= 1, got {cfg[key]}")
        need(cfg.k_spt + cfg[key] <= NUM_DRAWERS,
             f"k_spt + {key} must be <= {NUM_DRAWERS} (drawers per Omniglot character), got {cfg.k_spt + cfg[key]}")
    for key in ("imgsz", "task_num", "num_filters", "num_blocks", "meta_steps", "log_every", "save_every",
                "val_tasks", "eval_tasks", "eval_batch", "keep_checkpoint_max", "lr_decay_steps"):
        need(cfg[key] >= 1, f"{key} must be >= 1, got {cfg[key]}")
    for key in ("update_step", "update_step_test", "eval_every", "keep_best_checkpoints", "ensemble"):
        need(cfg[key] >= 0, f"{key} must be >= 0, got {cfg[key]}")
    for key in ("meta_lr", "update_lr", "lr_scheduler_gamma"):
        need(math.isfinite(cfg[key]) and cfg[key] > 0, f"{key} must be a finite number > 0, got {cfg[key]}")
    for key in ("seed", "eval_seed"):
        need(0 <= cfg[key] <= MAX_SEED, f"{key} must be between 0 and {MAX_SEED} (the seeds NumPy and MindSpore "
                                        f"accept), got {cfg[key]}")
    upper = dict(UPPER_BOUNDS, imgsz=(SOURCE_SIZE, "the size of the Omniglot originals"))
    for key, (limit, why) in upper.items():
        need(cfg[key] <= limit, f"{key} must be at most {limit} ({why}), got {cfg[key]}")
    need(not cfg.keep_best_checkpoints or (cfg.eval_every and cfg.eval_every % cfg.save_every == 0),
         f"keep_best_checkpoints needs a checkpoint of every validated step: make eval_every a positive multiple of "
         f"save_every ({cfg.save_every}), got eval_every {cfg.eval_every}")
    need(not (cfg.ensemble and cfg.eval_per_step),
         "eval_per_step scores a single checkpoint, not an ensemble: drop --eval_per_step or --ensemble")
    _validate_mamlpp(cfg, need)
    check_batch_memory(cfg, trains)
    return cfg


def _validate_mamlpp(cfg, need):
    """The MAML++ options."""
    need(cfg.meta_lr_schedule in META_LR_SCHEDULES,
         f"meta_lr_schedule {cfg.meta_lr_schedule!r} is not valid: use one of {', '.join(META_LR_SCHEDULES)}")
    need(0 <= cfg.min_meta_lr < cfg.meta_lr or cfg.meta_lr_schedule != "cosine",
         f"min_meta_lr must be >= 0 and below meta_lr ({cfg.meta_lr}) for the cosine schedule, got {cfg.min_meta_lr}")
    for key in ("msl_steps", "first_order_steps"):
        need(cfg[key] >= 0, f"{key} must be >= 0 (0 = off), got {cfg[key]}")
    for key in ("msl_steps", "learn_inner_lr", "per_step_bn"):
        need(not cfg[key] or cfg.update_step >= 1, f"{key} needs update_step >= 1 (per-step values), got update_step 0")


def load_config(argv=None, inherit=None, check=True, trains=True):
    """Defaults from the YAML file, then `inherit` (e.g. the settings a checkpoint was trained with),
    then the --config_path file, then command-line overrides, each cast to the default's type and,
    with `check`, validated together (`trains`: see validate)."""
    defaults = _read_yaml(DEFAULT_CONFIG)
    args = _parse_overrides(argv, defaults)
    values = dict(defaults)
    values.update(inherit or {})
    if os.path.realpath(args.config_path) != str(DEFAULT_CONFIG):  # realpath: a link loop is then "not found"
        custom = current_names(_read_yaml(args.config_path), args.config_path)
        unknown = sorted(map(str, set(custom) - set(defaults)))  # str: YAML reads keys such as 1 or yes as int, bool
        if unknown:
            raise UserError(f"unknown key {shown(unknown[0])} in {args.config_path}; valid keys: "
                            f"{', '.join(sorted(defaults))}")
        values.update(custom)
    given = {key: value for key, value in vars(args).items() if key != "config_path" and value is not None}
    values.update(current_names(given, "the command line"))
    cfg = Config({key: _convert(key, values[key], defaults[key]) for key in defaults})
    return validate(cfg, trains) if check else cfg
