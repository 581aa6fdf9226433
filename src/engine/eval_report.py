"""eval.py's JSON report: where it goes, what it records, and which earlier report it may replace.

A report records the checkpoint and the protocol (the tasks and the fine-tuning that were scored). An
earlier report is replaced only by one of the same checkpoint and protocol: a run of another checkpoint
or with other settings never overwrites a result quoted elsewhere (re-evaluating a checkpoint that
training has updated does).
"""
import json
import os
from pathlib import Path

from src.model_utils.config import recorded_settings
from src.model_utils.errors import UserError
from src.model_utils.outputs import check_output_file

_REPORT_KEYS = {"ckpt", "acc", "ci95", "tasks"}
# The settings a report records, which with its task count and ensemble size define what it measured.
PROTOCOL_KEYS = ("split", "eval_split", "imgsz", "redraw", "n_way", "k_spt", "k_qry_test", "update_step_test", "update_lr",
                 "eval_seed", "transductive")


def read_report(path):
    """The eval.py report in `path` (a small JSON object with the accuracy fields), None if it is not one."""
    try:
        if path.stat().st_size > 2**20:
            return None
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and _REPORT_KEYS <= set(report) else None


def eval_report_path(cfg):
    """eval.py's JSON report: --eval_report, or beside the checkpoint CKPT.eval.json (CKPT.eval_ensembleN.json
    for an ensemble; _val added for the validation classes, _nontransductive for queries normalised with the
    support set's statistics)."""
    ckpt = Path(cfg.ckpt)
    if cfg.eval_report:
        return Path(cfg.eval_report)
    ensemble = f"_ensemble{cfg.ensemble}" if cfg.ensemble else ""
    classes = "" if cfg.eval_split == "test" else f"_{cfg.eval_split}"
    return ckpt.with_name(f"{ckpt.name}.eval{ensemble}{classes}{'' if cfg.transductive else '_nontransductive'}.json")


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
    recorded = recorded_settings(report)
    return {**{key: recorded.get(key) for key in PROTOCOL_KEYS}, "tasks": report.get("tasks"),
            "ensemble": len(report.get("ensemble_steps", ()))}


def check_eval_report(cfg):
    """eval.py's report path for settings cfg, checked for writing (see the module's docstring)."""
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
