"""Evaluate a checkpoint on fixed meta-test (or validation) tasks: python eval.py --ckpt PATH [--key value ...].

The task, network and fine-tuning settings default to those the checkpoint was trained with.
Prints the final mean query accuracy with its 95% confidence interval (with --eval_per_step also
the accuracy after each inner step) and writes the same as JSON next to the checkpoint
(PATH.eval.json; PATH.eval_nontransductive.json with --transductive false, each query normalised with the
support set's statistics as predict.py does), or to --eval_report.
With --eval_split val it scores the validation classes instead (PATH.eval_val.json): with --eval_tasks set to the
run's val_tasks, the tasks training validated on, so that a validation figure of its log can be checked.
Started by msrun, the ranks share the tasks and rank 0 reports the result of all of them.
With --ensemble N it scores MAML++'s way: the mean query logits of the step checkpoints of the N best
validations in the folder of --ckpt, which then only names the run and its settings (training keeps
them with --keep_best_checkpoints N).
"""
import json
import time
from pathlib import Path

from src.data.dataset import prepare_omniglot_for
from src.data.splits import split_class_ids, split_rotates
from src.engine.ensemble import ensemble_scorer
from src.engine.eval_report import PROTOCOL_KEYS, check_eval_report, report_ckpt
from src.engine.evaluation import evaluate
from src.engine.loading import fine_tuning, load_for_inference
from src.maml import AdaptAndScore
from src.model_utils import distributed
from src.model_utils.atomic_file import write_atomic
from src.model_utils.errors import run_cli
from src.model_utils.log import counted, log


def main(argv=None):
    cfg, maml, meta = load_for_inference(argv)
    ranks = distributed.current()
    ckpt = Path(cfg.ckpt)
    # Before any work: never a checkpoint, another file of the user's or a report of another evaluation.
    out = check_eval_report(cfg)
    if cfg.ensemble:
        scorer, steps = ensemble_scorer(cfg, meta)
        what = f"the ensemble of the {cfg.ensemble} best validated checkpoints in {ckpt.parent} (steps {', '.join(map(str, steps))})"
    else:
        scorer = AdaptAndScore(maml, cfg.update_step_test, cfg.eval_per_step)
        what = f"{ckpt} (step {meta['step']})"
    data = prepare_omniglot_for(cfg, log)
    classes = split_class_ids(data.classes, cfg.split)[cfg.eval_split]
    name = "test" if cfg.eval_split == "test" else "validation"
    log(f"evaluating {what} on {cfg.eval_tasks} {cfg.n_way}-way {cfg.k_spt}-shot {name} tasks "
        f"of split {cfg.split}{', every image redrawn,' if cfg.redraw else ''} with {counted(cfg.k_qry_test, 'query', 'queries')} per class, "
        f"{fine_tuning(cfg)}, {'the queries normalised together' if cfg.transductive else 'each query on its own'}")
    start = time.time()
    result = evaluate(scorer, data.images, classes, cfg, cfg.eval_tasks, split_rotates(cfg.split), ranks)
    seconds = time.time() - start
    for step, acc in enumerate(result.get("acc_per_step", [])):
        log(f"  after {step:2d} inner steps: {100 * acc:.2f}%")
    log(f"{name} accuracy: {100 * result['acc']:.2f} +/- {100 * result['ci95']:.2f}% (95% CI, {result['tasks']} tasks, "
        f"{seconds:.1f} s)")
    if not ranks.main:
        return None
    # An ensemble's --ckpt only names the run and its settings: the report lists the members' steps instead.
    source = {"ensemble_steps": steps} if cfg.ensemble else {"ckpt_step": meta["step"]}
    report = {"ckpt": report_ckpt(ckpt, out), **source, **{key: cfg[key] for key in PROTOCOL_KEYS}, "ranks": ranks.size,
              "seconds": seconds, **result}
    write_atomic(out, lambda f: f.write(json.dumps(report, indent=2).encode() + b"\n"),
                 "make its folder writable, evaluate a copy of the checkpoint or pass another --eval_report")
    log(f"wrote {out}")
    return report


if __name__ == "__main__":
    run_cli(main)
