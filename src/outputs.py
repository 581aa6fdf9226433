"""Where the package writes, and the one rule that guards it: nothing a user has is overwritten.

An output file may replace only an earlier output of the same kind (an eval report, a plot); a
checkpoint, a folder or any other file at that path, directly or through a symbolic link, is
refused. A fresh training run refuses a folder that holds checkpoints (best.ckpt included) or the
metrics of an earlier run. Every location is checked for writing before any work starts.
"""
import json
import os
import re
import tempfile
from pathlib import Path

from src import run_lock
from src.errors import UserError
from src.metrics import best_validated_steps

METRICS_NAME = "metrics.jsonl"
CHECKPOINT_SUFFIX = ".ckpt"
PREFIX = "maml_step"  # step checkpoints: maml_step0001000.ckpt
BEST = "best.ckpt"
LOG_HEADER = b"==== "  # the first line of a launch script's log (scripts/common.sh)
_REPORT_KEYS = {"ckpt", "acc", "ci95", "tasks"}
# The settings an eval report records, which with its task count and ensemble size define what it measured.
PROTOCOL_KEYS = ("split", "imgsz", "n_way", "k_spt", "k_qry_test", "update_step_test", "update_lr", "eval_seed",
                 "transductive")
# What a run or a report written before a setting existed did: the MAML++ options off, queries normalised together.
PREDATING = {"learn_inner_lr": False, "per_step_bn": False, "transductive": True}


def check_writable(folder, fix):
    """Fail now, not after the work: create and delete a file in `folder`."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"cannot write to folder {folder} ({err.strerror or err}): {fix}") from None


def read_report(path):
    """The eval.py report in `path` (a small JSON object with the accuracy fields), None if it is not one."""
    try:
        if path.stat().st_size > 2**20:
            return None
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and _REPORT_KEYS <= set(report) else None


def check_output_file(path, option, kind, replaceable, fix=None):
    """Refuse `path` as the output `option` unless it is new or an earlier output (`replaceable(path)`;
    None: no existing file is ever replaced); its folder must exist and be writable. `kind` names what
    the option writes; `fix` what to do instead (default: pass another `option`)."""
    path = Path(path)
    fix = fix or f"pass another {option}"
    try:
        target = path.resolve()
    except RuntimeError:  # how pathlib reports a symbolic-link loop
        raise UserError(f"{option} {path} is a symbolic-link loop: {fix}") from None
    if replaceable is None and (target.exists() or path.is_symlink()):
        raise UserError(f"{path} already exists: {fix} or move the file away")
    if target.is_dir():
        raise UserError(f"{option} {path} is a folder: {fix} (a file name)")
    if target.exists() or path.is_symlink():
        if target.suffix == CHECKPOINT_SUFFIX or not replaceable(target):
            what = "a checkpoint" if target.suffix == CHECKPOINT_SUFFIX else f"a file that is not {kind}"
            via = f" (through the link to {target})" if str(target) != os.path.abspath(path) else ""
            raise UserError(f"{option} {path} is {what}{via}: it is left untouched; {fix}")
    if not target.parent.is_dir():
        raise UserError(f"{option} {path}: folder {path.parent} does not exist; create it or {fix}")
    check_writable(target.parent, f"make it writable or {fix}")
    return path


def existing_checkpoint(path):
    """`path` as a Path, if it is a file; the one message for a checkpoint that is missing or not given."""
    if not path:
        raise UserError("no checkpoint given: pass --ckpt PATH (e.g. output/best.ckpt)")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found: pass --ckpt the path of a .ckpt file written by omniglot_train.py")
    return path


def eval_report_path(cfg):
    """eval.py's JSON report: --eval_report, or beside the checkpoint CKPT.eval.json (CKPT.eval_ensembleN.json
    for an ensemble; _nontransductive added for queries normalised with the support set's statistics)."""
    ckpt = Path(cfg.ckpt)
    if cfg.eval_report:
        return Path(cfg.eval_report)
    ensemble = f"_ensemble{cfg.ensemble}" if cfg.ensemble else ""
    return ckpt.with_name(f"{ckpt.name}.eval{ensemble}{'' if cfg.transductive else '_nontransductive'}.json")


def report_ckpt(ckpt, report):
    """A report's "ckpt": the checkpoint's path from the report's folder, its name when beside it (the
    default), so that a report names its checkpoint without naming this machine's folders."""
    return os.path.relpath(Path(ckpt).resolve(), Path(report).resolve().parent)


def eval_protocol(cfg):
    """What eval.py with settings cfg measures: the fields of its report that name the tasks and the
    fine-tuning, plus `ensemble`, the number of checkpoints scored together (0: --ckpt alone)."""
    return {**{key: cfg[key] for key in PROTOCOL_KEYS}, "tasks": cfg.eval_tasks, "ensemble": cfg.ensemble}


def report_protocol(report):
    """eval_protocol of the settings that wrote `report` (a report's dict)."""
    return {**{key: report.get(key, PREDATING.get(key)) for key in PROTOCOL_KEYS}, "tasks": report.get("tasks"),
            "ensemble": len(report.get("ensemble_steps", ()))}


def check_eval_report(cfg):
    """eval.py's report path for settings cfg, checked for writing. An earlier report there is replaced only
    by one of the same checkpoint and protocol (eval_protocol): a run of another checkpoint or with other
    settings never overwrites a result quoted elsewhere (re-evaluating a checkpoint that training has
    updated does)."""
    path, protocol = eval_report_path(cfg), eval_protocol(cfg)

    def replaceable(target):
        report = read_report(target)
        if report is not None:
            earlier = {"ckpt": report["ckpt"], **report_protocol(report)}
            now = {"ckpt": report_ckpt(cfg.ckpt, target), **protocol}
            changed = [f"{key} {earlier[key]}, not {now[key]}" for key in now if earlier[key] != now[key]]
            if changed:
                raise UserError(f"--eval_report {path} holds the report of another evaluation ({'; '.join(changed)}): "
                                "it is left untouched; pass another --eval_report or move the file away")
        return report is not None

    return check_output_file(path, "--eval_report", "an eval report", replaceable)


def ensemble_checkpoints(folder, count):
    """(step, path) of the step checkpoints of the `count` best validations that folder/metrics.jsonl records,
    best first: the members of eval.py --ensemble."""
    metrics = Path(folder) / METRICS_NAME
    steps, validations = best_validated_steps(metrics, count)
    if validations < count:
        raise UserError(f"--ensemble {count} needs {count} validations but {metrics} "
                        f"{'records ' + str(validations) if validations else 'is missing or records none'}: "
                        "pass --ckpt a checkpoint in the folder of the run, with its metrics.jsonl, or a smaller --ensemble")
    chosen = [(step, step_checkpoint_path(folder, step)) for step in steps]
    for present, (step, path) in enumerate(chosen):
        if not path.is_file():
            smaller = (f"pass --ensemble {present} (the {present} best are there)" if present
                       else "evaluate best.ckpt alone (no --ensemble)")
            raise UserError(f"--ensemble {count}: {path.name}, the checkpoint of step {step}, number {present + 1} of "
                            f"the {count} best validations, is not in {folder}: {smaller}, or train with "
                            f"--keep_best_checkpoints {count} to keep them")
    return chosen


def step_checkpoint_path(output_dir, step):
    return Path(output_dir) / f"{PREFIX}{step:07d}{CHECKPOINT_SUFFIX}"


def step_checkpoints(output_dir, upto=None):
    """Step checkpoints in output_dir, oldest first; only those of steps <= `upto` if given."""
    pattern = re.compile(rf"^{PREFIX}(\d+){re.escape(CHECKPOINT_SUFFIX)}$")
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob(f"{PREFIX}*{CHECKPOINT_SUFFIX}")
             if (m := pattern.match(p.name))]
    return [p for step, p in sorted(found) if upto is None or step <= upto]


def prepare_run_folder(cfg, hold=False):
    """output_dir, checked and created (removed again if it then proves unwritable), and locked for this
    process with `hold` (src/run_lock.py; else only checked that no run holds it).

    A folder that holds checkpoints (best.ckpt included) or earlier metrics belongs to another run:
    a fresh run (no --resume) refuses it, and so does --resume when there is no step checkpoint to
    continue from, since starting from step 0 would replace best.ckpt and the metrics."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir {out} is a file: pass --output_dir a folder (it is created if missing)")
    created = not out.exists()
    lock = run_lock.hold if hold else run_lock.check_free
    if not created:  # first: a run still writing there is named as such
        lock(out)
    held = [] if created else sorted(p.name for p in out.glob(f"*{CHECKPOINT_SUFFIX}"))
    metrics = out / METRICS_NAME
    if metrics.is_file() and metrics.stat().st_size:
        held.append(METRICS_NAME)
    if held:
        listed = f"{', '.join(held[:3])}{', ...' if len(held) > 3 else ''}"
        resumable = bool(step_checkpoints(out))
        if not cfg.resume:
            fix = ("pass --resume to continue it or another --output_dir to start afresh" if resumable else
                   f"it has no step checkpoint ({PREFIX}*{CHECKPOINT_SUFFIX}) to resume from: pass another --output_dir")
            raise UserError(f"output_dir {out} already holds checkpoints or metrics of a run ({listed}): {fix}")
        if not resumable:
            raise UserError(f"--resume: output_dir {out} holds {listed} but no step checkpoint "
                            f"({PREFIX}*{CHECKPOINT_SUFFIX}) to continue from, and starting from step 0 would "
                            "replace them: pass another --output_dir to start afresh")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output_dir {out} ({err.strerror or err}): pass another --output_dir") from None
    try:
        check_writable(out, "make it writable or pass another --output_dir")
    except UserError:
        if created:
            remove_if_empty(out)
        raise
    if created:
        lock(out)
    return out


def remove_if_empty(folder):
    try:
        Path(folder).rmdir()
    except OSError:
        pass


def is_log(path):
    """Whether `path` is a log the launch scripts wrote (it starts with their header line), or empty."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(LOG_HEADER))
    except OSError:
        return False
    return start in (b"", LOG_HEADER)


def log_path(kind, cfg):
    """Where the launch scripts append the log of `kind` ("train" or "eval") run with the settings cfg: checked
    as every output is (an earlier log may be appended to; a checkpoint or another file, also through a link,
    never) and created, so that the script appends to the file checked here."""
    if kind == "train":
        path, fix = prepare_run_folder(cfg) / "train.log", "pass another --output_dir"
    else:
        report = check_eval_report(cfg)
        path = report.with_name(report.name + ".log") if report.suffix == ".log" else report.with_suffix(".log")
        fix = "pass another --eval_report (its log goes beside it)"
    check_output_file(path, "log", "a log of the launch scripts", is_log, fix)
    try:
        path.touch()
    except OSError as err:
        raise UserError(f"cannot create the log {path} ({err.strerror or err}): pass another folder") from None
    return path.resolve()

