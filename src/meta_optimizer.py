"""The meta-optimizer a config describes, built in one place: omniglot_train.py (src/engine/training.py) runs
it, and benchmarks/bench_meta_step.py and benchmarks/onednn_kernels.py time and probe the same step."""
import mindspore as ms
from mindspore import nn

from src.lr_schedule import MetaLearningRate
from src.maml import MetaTrainStep, build_maml
from src.multi_step_loss import step_loss_weights


class MetaOptimizer:
    """The network, Adam with its meta learning rate schedule, and the compiled meta-updates (MetaTrainStep)
    of a run, with the one that runs each meta-step.

    `train_step` is the configured order's update; with derivative-order annealing (first_order_steps)
    `first_order_step`, sharing its parameters and optimizer, runs the first meta-steps, else it is
    `train_step` itself. `rank_mean` (src.model_utils.distributed) averages over data-parallel ranks."""

    def __init__(self, cfg, rank_mean=None):
        self.cfg = cfg
        self.maml = build_maml(cfg)
        self.meta_lr = MetaLearningRate(cfg)
        self.optimizer = nn.Adam(self.maml.learner.trainable_params(), learning_rate=self.meta_lr)
        self.train_step = MetaTrainStep(self.maml, self.optimizer, cfg.update_step, cfg.first_order, rank_mean)
        self.first_order_step = (MetaTrainStep(self.maml, self.optimizer, cfg.update_step, True, rank_mean)
                                 if cfg.first_order_steps and not cfg.first_order else self.train_step)

    def first_order_at(self, step):
        """Whether meta-step `step` (0 for the first) drops the second-order terms."""
        return self.cfg.first_order or step < self.cfg.first_order_steps

    def step_at(self, step):
        """The cell that runs meta-step `step` (0 for the first), and the inputs it takes after the
        episodes: the multi-step loss weights while they anneal, else none (the last step's loss alone)."""
        cell = self.first_order_step if self.first_order_at(step) else self.train_step
        weights = step_loss_weights(self.cfg.update_step, self.cfg.msl_steps, step)
        return cell, () if weights is None else (ms.Tensor(weights),)

    def meta_lr_at(self, step):
        """The meta learning rate of meta-step `step` (0 for the first), as the progress log reports it."""
        return float(self.meta_lr.at(ms.Tensor(step, ms.int32)).asnumpy())
