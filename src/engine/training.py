"""The meta-training loop: episodes in, meta-updates, validation and checkpoints (omniglot_train.py)."""
import math
import time
from pathlib import Path

import mindspore as ms
import numpy as np

from src.data.dataset import prepare_omniglot_for
from src.data.episode_sampler import EpisodeSampler
from src.data.splits import split_class_ids, split_rotates
from src.engine import checkpoint
from src.engine.evaluation import evaluate
from src.engine.progress import Progress, RunCost
from src.engine.resume import Start, resume
from src.engine.run_folder import BEST, METRICS_NAME, prepare_run_folder, step_checkpoint_path
from src.maml import AdaptAndScore
from src.meta_optimizer import MetaOptimizer
from src.model_utils import distributed
from src.model_utils.atomic_file import remove_stale_temporaries
from src.model_utils.device import setup_device
from src.model_utils.errors import UserError
from src.model_utils.log import counted, log
from src.model_utils.metrics_file import MetricsWriter, best_validated_steps


def prepare_output_dir(cfg):
    """output_dir, checked (src/engine/run_folder.py) and cleared of the temporaries of killed runs."""
    out = prepare_run_folder(cfg, hold=True)
    remove_stale_temporaries(out)
    return out


def _order(cfg, step):
    """The derivative order of the steps after `step`, as the training log states it."""
    if cfg.first_order:
        return "first-order"
    if step < cfg.first_order_steps:
        return f"first-order to step {cfg.first_order_steps}, then second-order"
    return "second-order"


class TrainingRun:
    """A meta-training run built from the config (continuing its newest step checkpoint with --resume);
    `run()` trains to `meta_steps` meta-steps, validating and saving on the way."""

    def __init__(self, cfg):
        self.cfg = cfg
        # Checked before joining the other ranks, so that every process of a launch (msrun's scheduler
        # too) stops at once; the scheduler never returns from setup_device.
        distributed.check_meta_batch(cfg.task_num, distributed.launched_size())
        setup_device(cfg)
        self.ranks = distributed.current()
        self.out = prepare_output_dir(cfg) if self.ranks.main else Path(cfg.output_dir)
        data = prepare_omniglot_for(cfg, log)
        self.images, self.splits = data.images, split_class_ids(data.classes, cfg.split)
        self.rotate = split_rotates(cfg.split)
        # Augmentation is for meta-training alone: validation and test tasks come from fixed_task_batches.
        self.sampler = EpisodeSampler(data.images, self.splits["train"], cfg.n_way, cfg.k_spt, cfg.k_qry,
                                      cfg.task_num, self.rotate or cfg.augment_rotations, cfg.seed, cfg.augment_affine)
        self.meta_optimizer = MetaOptimizer(cfg, self.ranks.mean_cell())
        self.scorer = AdaptAndScore(self.meta_optimizer.maml, cfg.update_step_test, cfg.eval_per_step)
        self.metrics = MetricsWriter(self.out / METRICS_NAME if self.ranks.main else None)
        start = resume(self.out, cfg, self.meta_optimizer.train_step, self.sampler) if cfg.resume else Start()
        self.step, self.best_val_acc, self.last_saved = start.step, start.best_val_acc, start.checkpoint
        self.cost = RunCost(self.ranks, start.cost)
        self.progress = Progress(cfg, self.metrics, self.cost, self.meta_optimizer.meta_lr_at)
        # Records past the step this run starts from belong to a history that it replaces.
        self.metrics.truncate_after(self.step)
        if start.changes:  # best_validated_steps ranks the validations after this record only
            self.metrics.write(event="validation_settings", step=self.step, changed=start.changes)

    def _save(self, path, cost):
        checkpoint.save(path, self.meta_optimizer.train_step, self.step, self.cfg, self.sampler.get_state(),
                        self.best_val_acc, cost)

    def save_step(self):
        path, cost = step_checkpoint_path(self.out, self.step), self.cost()
        if self.ranks.main:
            self._save(path, cost)
            best = self.cfg.keep_best_checkpoints
            best_steps = best_validated_steps(self.out / METRICS_NAME, best)[0] if best else ()
            checkpoint.prune(self.out, self.cfg.keep_checkpoint_max, self.step, best_steps)
        self.last_saved = path
        log(f"saved {path}")

    def validate(self):
        cfg = self.cfg
        start = time.time()
        result = evaluate(self.scorer, self.images, self.splits["val"], cfg, cfg.val_tasks, self.rotate, self.ranks)
        seconds = time.time() - start
        log(f"step {self.step}: validation accuracy {100 * result['acc']:.2f} +/- {100 * result['ci95']:.2f}% "
            f"on {result['tasks']} tasks after {counted(cfg.update_step_test, 'inner step')} ({seconds:.1f} s)")
        cost = self.cost()
        self.metrics.write(event="val", step=self.step, seconds=seconds, **cost, **result)
        if result["acc"] > self.best_val_acc:
            self.best_val_acc = result["acc"]
            if self.ranks.main:
                self._save(self.out / BEST, cost)
            log(f"new best validation accuracy: saved {self.out / BEST}")
        return result

    def check_finite(self, loss, saving):
        """Stop at a non-finite loss, and before non-finite weights are saved: an update with a nan
        gradient leaves a finite loss but nan weights, which must not become the checkpoint to resume."""
        problem = None
        if not math.isfinite(loss):
            problem = f"the meta-loss became {loss}"
        elif saving and not all(np.isfinite(p.asnumpy()).all() for p in self.meta_optimizer.train_step.get_parameters()):
            problem = "the weights became nan or inf"
        if problem:
            kept = f"the last good checkpoint {self.last_saved} is kept" if self.last_saved else "no checkpoint was saved yet"
            raise UserError(f"{problem} at step {self.step}; {kept}: lower --meta_lr or --update_lr and resume")

    def run(self):
        """Train to `meta_steps` meta-steps; returns the final validation result."""
        cfg = self.cfg
        log(f"training {cfg.n_way}-way {cfg.k_spt}-shot, {counted(cfg.task_num, 'task')} per step, "
            f"{counted(cfg.update_step, 'inner step')}, {_order(cfg, self.step)}, on {cfg.device_target}"
            f"{f' x {self.ranks.size} ranks' if self.ranks.size > 1 else ''}, steps {self.step + 1}..{cfg.meta_steps}")
        run_start, result = time.time(), None
        while self.step < cfg.meta_steps:
            batch = [ms.Tensor(part[self.ranks.share(cfg.task_num)]) for part in self.sampler.next_batch()]
            cell, loss_weights = self.meta_optimizer.step_at(self.step)
            step_start = time.time()
            loss, acc = (float(value.asnumpy()) for value in cell(*batch, *loss_weights))
            self.step += 1
            last = self.step == cfg.meta_steps
            validating = last or (cfg.eval_every and self.step % cfg.eval_every == 0)
            saving = last or self.step % cfg.save_every == 0
            self.check_finite(loss, validating or saving)  # validation may save best.ckpt: it counts as saving
            # A change of order or the end of the multi-step loss runs another graph, compiled on first use.
            self.progress.step(self.step, (id(cell), len(loss_weights)), time.time() - step_start, loss, acc)
            if validating:
                result = self.validate()
                self.progress.restart()
            if saving:
                self.save_step()
        log(f"done: {self.step} steps in {(time.time() - run_start) / 60:.1f} min; "
            f"best validation accuracy {100 * self.best_val_acc:.2f}%")
        return result
