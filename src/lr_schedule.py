"""The meta learning rate of each meta-step, computed from the optimizer's step counter.

A MindSpore LearningRateSchedule: its memory does not depend on the length of the run. Two schedules:
- `step`: meta_lr * lr_scheduler_gamma ** (step // lr_decay_steps); gamma 1.0 keeps it constant.
- `cosine` (MAML++): from meta_lr at the first step to min_meta_lr at the last (`meta_steps`) along half
  a cosine period.
On CPU both are computed in float64 and rounded to float32, so the step decay is exact to the float32
rate. On GPU and Ascend they are computed in float32 (MindSpore documents float64 there for few operators,
and ops.cos warns that float64 may lose precision): within a few float32 ulps of the CPU's rates.
"""
import math

import mindspore as ms
from mindspore import nn, ops


class MetaLearningRate(nn.learning_rate_schedule.LearningRateSchedule):
    """The optimizer's learning rate at its global step (0 for the first meta-step)."""

    def __init__(self, cfg):
        super().__init__()
        self.cosine = cfg.meta_lr_schedule == "cosine"
        self.dtype = ms.float64 if cfg.device_target == "CPU" else ms.float32
        self.meta_lr = ms.Tensor(cfg.meta_lr, self.dtype)
        self.min_meta_lr = ms.Tensor(cfg.min_meta_lr, self.dtype)
        self.gamma = ms.Tensor(cfg.lr_scheduler_gamma, self.dtype)
        self.decay_steps = cfg.lr_decay_steps
        self.last_step = max(cfg.meta_steps - 1, 1)

    def at(self, step):
        """The rate at `step` (an int32 Tensor) in the schedule's precision: what the progress log reports."""
        if self.cosine:
            progress = ops.minimum(step.astype(self.dtype) / self.last_step, 1.0)
            return self.min_meta_lr + (self.meta_lr - self.min_meta_lr) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.meta_lr * ops.pow(self.gamma, (step // self.decay_steps).astype(self.dtype))

    def construct(self, global_step):
        return self.at(global_step).astype(ms.float32)
