"""MAML's inner and outer loops (Finn et al., 2017) as MindSpore Cells that compile in graph mode.

- `MAML.adapt` is the inner loop: `steps` gradient steps of the support loss from the given
  weights, the gradient taken with `mindspore.grad` (GradOperation). With `second_order` the
  steps stay differentiable, so the meta-gradient contains the Hessian-vector terms of true
  MAML; without, each inner gradient is a constant (first-order MAML).
- `MetaGradient` adapts every task of the meta-batch and returns the mean query loss (with the
  multi-step loss, its weighted sum over the inner steps), the mean query accuracy and the loss's
  gradient with respect to the meta-parameters; `MetaTrainStep` adds the Adam update.
- `AdaptAndScore` fine-tunes without second-order terms and scores the query set (after the last
  inner step, or after every one) or predicts it; validation, eval.py and predict.py use it.

MAML++'s options (Antoniou et al., 2019) slot into the same loop: the learner's learned per-step
learning rates and per-step batch-norm weights are picked by the inner step's number, and the
multi-step loss weighs the query loss after every inner step by an input vector.
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops

from src.formulation import resolve
from src.learner import Learner
from src.loss import accuracy, cross_entropy


class MAML(nn.Cell):
    """A learner plus its inner-loop rule: the object a researcher adapts and predicts with."""

    def __init__(self, learner, update_lr):
        super().__init__()
        self.learner = learner
        self.update_lr = update_lr
        # Weights are passed unpacked: MindSpore 2.10 returns no gradient for a tuple argument.
        # Argument positions of the weights in `fn(x, y, step, *weights)`, the signature every gradient here
        # uses (`step`: the inner updates the weights have had, see Learner.forward).
        self.weight_positions = tuple(range(3, 3 + len(learner.weights)))
        self.support_grad = ms.grad(self.support_loss, grad_position=self.weight_positions)

    def support_loss(self, x, y, step, *weights):
        """Sum over tasks of each task's mean loss: task t's weights then get exactly task t's gradient."""
        return cross_entropy(self.learner.forward(x, weights, step), y).sum()

    def adapt(self, weights, x_spt, y_spt, steps, second_order, first_step=0):
        """Fast weights after `steps` SGD steps on the support set (exactly `steps`, not one more).

        The steps are numbered from `first_step` (an int, or a scalar Tensor when each step is a compiled
        call): the number picks the per-step batch-norm weights and learned learning rates, if any."""
        for k in range(steps):
            step = first_step + k
            grads = self.support_grad(x_spt, y_spt, step, *weights)
            if not second_order:
                grads = tuple([ops.stop_gradient(g) for g in grads])
            updated = []
            for w, g, adapted, lr_index in zip(weights, grads, self.learner.adapted, self.learner.lr_index):
                if not adapted:
                    updated.append(w)
                elif lr_index is None:
                    updated.append(w - self.update_lr * g)
                else:
                    updated.append(w - self.learner.inner_lrs[lr_index][self.learner.slot(step)] * g)
            weights = tuple(updated)
        return weights

    def construct(self, x_spt, y_spt, x_qry, steps):
        """Query logits after adapting the meta-parameters to the support set (no meta-gradient)."""
        weights = self.adapt(self.learner.per_task(x_spt.shape[0]), x_spt, y_spt, steps, False)
        return self.learner.query_logits(x_spt, x_qry, weights, steps)


class MetaGradient(nn.Cell):
    """(mean query loss, mean query accuracy) of a meta-batch and the meta-gradient of that loss.

    Called with `step_weights` (a vector of update_step weights), the loss is MAML++'s multi-step loss:
    the weighted sum of the query losses after each inner step. The weights are an input, so that
    annealing them does not recompile the graph. The accuracy is always the last step's."""

    def __init__(self, maml, update_step, first_order=False):
        super().__init__()
        self.maml = maml
        self.learner = maml.learner
        self.update_step = update_step
        self.first_order = first_order
        # Every meta-parameter: the weights and the learned inner learning rates, in the optimizer's order.
        self.meta_grad = ms.value_and_grad(self.meta_loss, None, ms.ParameterTuple(self.learner.trainable_params()),
                                           has_aux=True)
        self.fast_weight_grad = ms.value_and_grad(self.query_loss, grad_position=tuple(
            position + 1 for position in maml.weight_positions), has_aux=True)  # query_loss takes x_spt too
        # First-order MAML's meta-gradient is the query gradient at the fast weights when these are all
        # the meta-parameters (no learned learning rates, every weight adapted).
        self.fast_weights_only = first_order and not self.learner.steps

    def query_loss(self, x_spt, x_qry, y_qry, step, *weights):
        logits = self.learner.query_logits(x_spt, x_qry, weights, step)
        return cross_entropy(logits, y_qry).mean(), accuracy(logits, y_qry).mean()

    def meta_loss(self, x_spt, y_spt, x_qry, y_qry, step_weights=None):
        """Query loss as a differentiable function of the meta-parameters, through the inner loop."""
        weights = self.learner.per_task(x_spt.shape[0])
        if step_weights is None:
            weights = self.maml.adapt(weights, x_spt, y_spt, self.update_step, not self.first_order)
            return self.query_loss(x_spt, x_qry, y_qry, self.update_step, *weights)
        total, acc = 0.0, 0.0
        for step in range(self.update_step):
            weights = self.maml.adapt(weights, x_spt, y_spt, 1, not self.first_order, step)
            loss, acc = self.query_loss(x_spt, x_qry, y_qry, step + 1, *weights)
            total = total + step_weights[step] * loss
        return total, acc

    def construct(self, x_spt, y_spt, x_qry, y_qry, step_weights=None):
        """First-order MAML needs no differentiation through the inner loop: its meta-gradient is the
        query gradient at the fast weights, summed over tasks."""
        if self.fast_weights_only and step_weights is None:
            weights = self.maml.adapt(self.learner.per_task(x_spt.shape[0]), x_spt, y_spt, self.update_step, False)
            (loss, acc), grads = self.fast_weight_grad(x_spt, x_qry, y_qry, self.update_step, *weights)
            return (loss, acc), tuple([g.sum(axis=0) for g in grads])
        if step_weights is None:
            return self.meta_grad(x_spt, y_spt, x_qry, y_qry)
        return self.meta_grad(x_spt, y_spt, x_qry, y_qry, step_weights)


class MetaTrainStep(nn.Cell):
    """One meta-update with the optimizer; returns (mean query loss, mean query accuracy) before it.

    In data-parallel training `rank_mean` (src.model_utils.distributed.MeanOverRanks) turns this rank's means
    over its share of the tasks into the means over all tasks, before the update."""

    def __init__(self, maml, optimizer, update_step, first_order=False, rank_mean=None):
        super().__init__()
        self.meta_gradient = MetaGradient(maml, update_step, first_order)
        self.optimizer = optimizer
        self.rank_mean = rank_mean

    def construct(self, x_spt, y_spt, x_qry, y_qry, step_weights=None):
        (loss, acc), grads = self.meta_gradient(x_spt, y_spt, x_qry, y_qry, step_weights)
        if self.rank_mean is not None:
            means = self.rank_mean((loss, acc) + grads)
            loss, acc, grads = means[0], means[1], means[2:]
        self.optimizer(grads)
        return loss, acc


class _StartWeights(nn.Cell):
    """The meta-parameters copied once per task."""

    def __init__(self, learner):
        super().__init__()
        self.learner = learner

    def construct(self, x_spt):
        return self.learner.per_task(x_spt.shape[0])


class _InnerStep(nn.Cell):
    """One first-order inner step, number `step` (a Tensor: one graph serves every step)."""

    def __init__(self, maml):
        super().__init__()
        self.maml = maml

    def construct(self, x_spt, y_spt, step, *weights):
        return self.maml.adapt(weights, x_spt, y_spt, 1, False, step)


class _QueryLogits(nn.Cell):
    """Query logits under the given weights after `step` inner updates."""

    def __init__(self, learner):
        super().__init__()
        self.learner = learner

    def construct(self, x_spt, x_qry, step, *weights):
        return self.learner.query_logits(x_spt, x_qry, weights, step)


class _QueryScore(nn.Cell):
    """Per-task query loss and accuracy under the given weights after `step` inner updates."""

    def __init__(self, learner):
        super().__init__()
        self.learner = learner

    def construct(self, x_spt, x_qry, y_qry, step, *weights):
        logits = self.learner.query_logits(x_spt, x_qry, weights, step)
        return cross_entropy(logits, y_qry), accuracy(logits, y_qry)


class AdaptAndScore:
    """Fine-tuning as validation, eval.py and predict.py do it: `fine_tune_steps` first-order inner steps from
    the meta-parameters, each a compiled call, so that many steps do not unroll (and compile) the
    network once per step.

    Calling it scores the query set: (loss, accuracy) per task as two (rows, tasks) arrays, one row
    per inner step 0..fine_tune_steps with `every_step`, else the single row after the last step. A query set
    holds more images than a support set, so scoring it after every step would cost more than the
    steps themselves: by default only the end is scored.

    The cells take the weights unpacked: a tuple argument would be taken for a constant by
    MindSpore's graph compiler, recompiled on every call and given no gradient."""

    def __init__(self, maml, fine_tune_steps, every_step=False):
        self.fine_tune_steps = fine_tune_steps
        self.every_step = every_step
        self.start = _StartWeights(maml.learner)
        self.inner_step = _InnerStep(maml)
        self.score = _QueryScore(maml.learner)
        self.logits = _QueryLogits(maml.learner)

    def fine_tune(self, x_spt, y_spt):
        """The fast weights after each of 0..fine_tune_steps inner steps, as they are computed."""
        weights = self.start(x_spt)
        yield weights
        for step in range(self.fine_tune_steps):
            weights = self.inner_step(x_spt, y_spt, _step(step), *weights)
            yield weights

    def predict(self, x_spt, y_spt, x_qry):
        """Query logits (tasks, queries, n_way) after fine-tuning on the support set."""
        *_, weights = self.fine_tune(x_spt, y_spt)
        return self.logits(x_spt, x_qry, _step(self.fine_tune_steps), *weights)

    def __call__(self, x_spt, y_spt, x_qry, y_qry):
        losses, accs = [], []
        for step, weights in enumerate(self.fine_tune(x_spt, y_spt)):
            if self.every_step or step == self.fine_tune_steps:
                loss, acc = self.score(x_spt, x_qry, y_qry, _step(step), *weights)
                losses.append(loss.asnumpy())
                accs.append(acc.asnumpy())
        return np.stack(losses), np.stack(accs)


def _step(step):
    """An inner step's number as a Tensor input, so that one compiled graph serves every step."""
    return ms.Tensor(step, ms.int32)


def build_maml(cfg):
    """The network and inner-loop rule a config describes; training, eval.py, predict.py and export.py share it."""
    steps = cfg.update_step  # the per-step meta-parameters cover the inner steps of training
    conv_impl, bn_impl = resolve(cfg)
    learner = Learner(cfg.n_way, num_filters=cfg.num_filters, num_blocks=cfg.num_blocks, seed=cfg.seed,
                      bn_steps=steps if cfg.per_step_bn else 0, lr_steps=steps if cfg.learn_inner_lr else 0,
                      update_lr=cfg.update_lr, transductive=cfg.transductive,
                      bn_impl=bn_impl, conv_impl=conv_impl)
    return MAML(learner, cfg.update_lr)
