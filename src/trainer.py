"""The meta-training loop: episodes in, meta-updates, progress logs, validation and checkpoints."""
import math
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np

from src import checkpoint, distributed
from src.atomic_file import remove_stale_temporaries
from src.dataset import prepare_omniglot, split_class_ids, split_rotates
from src.device import setup_device
from src.episode_sampler import EpisodeSampler
from src.errors import UserError
from src.evaluation import evaluate
from src.maml import AdaptAndScore
from src.meta_training import MetaTraining
from src.metrics import MetricsWriter, best_validated_steps, counted, log
from src.outputs import BEST, METRICS_NAME, prepare_run_folder, step_checkpoint_path


def prepare_output_dir(cfg):
    """output_dir, checked (see src/outputs.py) and cleared of the temporaries of killed runs."""
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


class Trainer:
    """Builds everything a run needs from the config, then `run()` trains for `epoch` meta-steps."""

    def __init__(self, cfg):
        self.cfg = cfg
        # Checked before joining the other ranks, so that every process of a launch (msrun's scheduler
        # too) stops at once; the scheduler never returns from setup_device.
        distributed.check_meta_batch(cfg.task_num, distributed.launched_size())
        setup_device(cfg)
        self.ranks = distributed.current()
        self.share = self.ranks.share(cfg.task_num)
        self.out = prepare_output_dir(cfg) if self.ranks.main else Path(cfg.output_dir)
        data = prepare_omniglot(cfg.data_path, cfg.npy_dir, cfg.imgsz, log=log)
        self.images = data.images
        self.splits = split_class_ids(data.classes, cfg.split)
        self.rotate = split_rotates(cfg.split)
        # Augmentation is for meta-training alone: validation and test tasks come from fixed_task_batches.
        self.sampler = EpisodeSampler(data.images, self.splits["train"], cfg.n_way, cfg.k_spt, cfg.k_qry,
                                      cfg.task_num, self.rotate or cfg.augment_rotations, cfg.seed, cfg.augment_affine)
        self.training = MetaTraining(cfg, self.ranks.mean_cell())
        self.scorer = AdaptAndScore(self.training.maml, cfg.update_step_test, cfg.eval_per_step)
        self.metrics = MetricsWriter(self.out / METRICS_NAME if self.ranks.main else None)
        self.step = 0
        self.best_val_acc = -1.0
        self.last_saved = None
        self.cost_before = dict.fromkeys(checkpoint.COST_KEYS, 0.0)  # earlier runs of a resumed training
        self.clock_start = (time.time(), time.process_time())  # graph compilation counts as cost too
        changes = self._resume() if cfg.resume else []
        # Records past the step this run starts from belong to a history that it replaces.
        self.metrics.truncate_after(self.step)
        if changes:  # best_validated_steps ranks the validations after this record only
            self.metrics.write(event="validation_settings", step=self.step, changed=changes)

    def _resume(self):
        """Continue from the newest step checkpoint; returns the changes of validation settings (VALIDATION_KEYS)."""
        newest = checkpoint.resumable(self.out, self.cfg, lambda message: log(message, sys.stderr),
                                      self.training.train_step)
        if newest is None:
            log(f"--resume: no checkpoint in {self.out}, starting from step 0")
            return []
        path, params, meta = newest
        # A resume may change settings (a longer run, a decaying learning rate): say which, for the record.
        changed = checkpoint.setting_changes(meta, self.cfg)
        if changed:
            log(f"settings changed since {path.name}: {', '.join(changed)}")
        checkpoint.load_into(self.training.train_step, params, path)
        self.sampler.set_state(meta["sampler_state"])
        changes = checkpoint.setting_changes(meta, self.cfg, checkpoint.VALIDATION_KEYS)
        self.step, self.last_saved = meta["step"], path
        self.best_val_acc = -1.0 if changes else self._best_so_far(meta)
        if changes:
            log("validation scores other tasks from now on: best.ckpt and --ensemble take this run's validations only")
        self.cost_before = {key: meta[key] or 0.0 for key in checkpoint.COST_KEYS}
        for key in checkpoint.COST_KEYS:
            if meta[key] is None:
                log(f"{path} predates the {key} record: this run's {key} counts from step {meta['step']}")
        log(f"resumed from {path} at step {self.step}")
        return changes

    def _best_so_far(self, meta):
        """The validation accuracy that a new best.ckpt must beat: that of the best.ckpt in the folder, which
        may come from a later step than the one resumed (a resume that fell back past a damaged checkpoint)."""
        best = self.out / BEST
        if not best.exists():
            return meta["best_val_acc"]
        try:
            return max(meta["best_val_acc"], checkpoint.load(best)[1]["best_val_acc"])
        except UserError as err:
            raise UserError(f"{err}; --resume would replace it: move it away and resume") from None

    def cost(self):
        """Wall-clock seconds and CPU seconds (all threads of all ranks) since step 0, across resumes: the cost
        of a run and the x axis of its curves. CPU time stays meaningful when other jobs share the machine.
        Every rank calls it: their CPU times are summed."""
        wall, cpu = self.clock_start
        return {"train_seconds": self.cost_before["train_seconds"] + time.time() - wall,
                "cpu_seconds": self.cost_before["cpu_seconds"] + self.ranks.total(time.process_time() - cpu)}

    def meta_lr_at(self, step):
        """The meta learning rate meta-step `step` (counted from 1) ran with."""
        return float(self.training.meta_lr.at(ms.Tensor(step - 1, ms.int32)).asnumpy())

    def _save(self):
        path, cost = step_checkpoint_path(self.out, self.step), self.cost()
        if self.ranks.main:
            checkpoint.save(path, self.training.train_step, self.step, self.cfg, self.sampler.get_state(),
                            self.best_val_acc, cost)
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
                checkpoint.save(self.out / BEST, self.training.train_step, self.step, cfg, self.sampler.get_state(),
                                self.best_val_acc, cost)
            log(f"new best validation accuracy: saved {self.out / BEST}")
        return result

    def _check_finite(self, loss, saving):
        """Stop at a non-finite loss, and before non-finite weights are saved: an update with a nan
        gradient leaves a finite loss but nan weights, which must not become the checkpoint to resume."""
        problem = None
        if not math.isfinite(loss):
            problem = f"the meta-loss became {loss}"
        elif saving and not all(np.isfinite(p.asnumpy()).all() for p in self.training.train_step.get_parameters()):
            problem = "the weights became nan or inf"
        if problem:
            kept = f"the last good checkpoint {self.last_saved} is kept" if self.last_saved else "no checkpoint was saved yet"
            raise UserError(f"{problem} at step {self.step}; {kept}: lower --meta_lr or --update_lr and resume")

    def run(self):
        """Train to `epoch` steps; returns the final validation result."""
        cfg = self.cfg
        log(f"training {cfg.n_way}-way {cfg.k_spt}-shot, {counted(cfg.task_num, 'task')} per step, "
            f"{counted(cfg.update_step, 'inner step')}, "
            f"{_order(cfg, self.step)}, on {cfg.device_target}"
            f"{f' x {self.ranks.size} ranks' if self.ranks.size > 1 else ''}, steps {self.step + 1}..{cfg.epoch}")
        window_start, window_steps, run_start = time.time(), 0, time.time()
        result = None
        compiling, graph = True, None
        while self.step < cfg.epoch:
            batch = [ms.Tensor(part[self.share]) for part in self.sampler.next_batch()]
            train_step, loss_weights = self.training.step_at(self.step)
            # A change of order or the end of the multi-step loss runs another graph, compiled on first use.
            compiling = compiling or graph != (id(train_step), len(loss_weights))
            graph = (id(train_step), len(loss_weights))
            step_start = time.time()
            loss, acc = train_step(*batch, *loss_weights)
            loss, acc = float(loss.asnumpy()), float(acc.asnumpy())
            self.step += 1
            last = self.step == cfg.epoch
            validating = last or (cfg.eval_every and self.step % cfg.eval_every == 0)
            saving = last or self.step % cfg.save_every == 0
            # Validation may save best.ckpt, so it counts as saving.
            self._check_finite(loss, validating or saving)
            window_steps += 1
            if compiling:
                # The first call compiles the graph: report it apart so s/step is the steady speed.
                seconds = time.time() - step_start
                log(f"step {self.step}: graph compiled and first step run in {seconds:.1f} s  loss {loss:.4f}  "
                    f"acc {100 * acc:.2f}%")
                self.metrics.write(event="compile", step=self.step, seconds=seconds)
                # The step's loss is recorded too; its time, mostly compilation, is not a step time.
                self.metrics.write(event="train", step=self.step, loss=loss, acc=acc,
                                   meta_lr=self.meta_lr_at(self.step), **self.cost())
                window_start, window_steps, compiling = time.time(), 0, False
            if window_steps and (self.step % cfg.log_every == 0 or self.step == cfg.epoch):
                per_step = (time.time() - window_start) / window_steps
                eta = per_step * (cfg.epoch - self.step)
                meta_lr = self.meta_lr_at(self.step)
                log(f"step {self.step}/{cfg.epoch}  loss {loss:.4f}  acc {100 * acc:.2f}%  meta_lr {meta_lr:.3g}  "
                    f"{per_step:.3f} s/step  {cfg.task_num / per_step:.1f} tasks/s  ETA {eta / 60:.1f} min")
                self.metrics.write(event="train", step=self.step, loss=loss, acc=acc, meta_lr=meta_lr,
                                   s_per_step=per_step, **self.cost())
                window_start, window_steps = time.time(), 0
            if validating:
                result = self.validate()
                window_start, window_steps = time.time(), 0
            if saving:
                self._save()
        log(f"done: {self.step} steps in {(time.time() - run_start) / 60:.1f} min; "
            f"best validation accuracy {100 * self.best_val_acc:.2f}%")
        return result
