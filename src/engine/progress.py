"""A training run's progress: its cost across resumes, and the log lines and metrics records of its steps."""
import time

from src.model_utils.log import log


class RunCost:
    """Wall-clock seconds and CPU seconds (all threads of all ranks) since step 0, across resumes: the cost
    of a run and the x axis of its curves. CPU time stays meaningful when other jobs share the machine.
    Every rank calls it: their CPU times are summed."""

    def __init__(self, ranks, before):
        self.ranks = ranks
        self.before = before  # {train_seconds, cpu_seconds} of the earlier runs of a resumed training
        self.wall, self.cpu = time.time(), time.process_time()  # graph compilation counts as cost too

    def __call__(self):
        return {"train_seconds": self.before["train_seconds"] + time.time() - self.wall,
                "cpu_seconds": self.before["cpu_seconds"] + self.ranks.total(time.process_time() - self.cpu)}


class Progress:
    """The progress log of the meta-steps, each line also a metrics record. The first step of each compiled
    graph (the first step, a change of derivative order, the end of the multi-step loss) is reported apart:
    its time is mostly compilation. Then every log_every steps and at the last: the loss, accuracy and meta
    learning rate, the steady time per step and the time left."""

    def __init__(self, cfg, metrics, cost, meta_lr_at):
        self.cfg, self.metrics, self.cost, self.meta_lr_at = cfg, metrics, cost, meta_lr_at
        self.graph = None
        self.restart()

    def restart(self):
        """Time the steps from now on: after a report, and after work that is not a meta-step (validation)."""
        self.window_start, self.window_steps = time.time(), 0

    def step(self, step, graph, seconds, loss, acc):
        """Meta-step `step` (counted from 1) was run by compiled `graph` in `seconds`, with this query loss and
        accuracy before its update."""
        cfg = self.cfg
        self.window_steps += 1
        if graph != self.graph:
            self.graph = graph
            log(f"step {step}: graph compiled and first step run in {seconds:.1f} s  loss {loss:.4f}  "
                f"acc {100 * acc:.2f}%")
            self.metrics.write(event="compile", step=step, seconds=seconds)
            # The step's loss is recorded too; its time, mostly compilation, is not a step time.
            self.metrics.write(event="train", step=step, loss=loss, acc=acc, meta_lr=self.meta_lr_at(step - 1),
                               **self.cost())
            self.restart()
        elif step % cfg.log_every == 0 or step == cfg.meta_steps:
            per_step = (time.time() - self.window_start) / self.window_steps
            eta = per_step * (cfg.meta_steps - step)
            meta_lr = self.meta_lr_at(step - 1)
            log(f"step {step}/{cfg.meta_steps}  loss {loss:.4f}  acc {100 * acc:.2f}%  meta_lr {meta_lr:.3g}  "
                f"{per_step:.3f} s/step  {cfg.task_num / per_step:.1f} tasks/s  ETA {eta / 60:.1f} min")
            self.metrics.write(event="train", step=step, loss=loss, acc=acc, meta_lr=meta_lr,
                               s_per_step=per_step, **self.cost())
            self.restart()
