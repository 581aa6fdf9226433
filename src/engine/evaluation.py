"""Few-shot accuracy on a fixed set of tasks: validation during training and eval.py share it."""
import math

import numpy as np
import mindspore as ms

from src.data.episode_sampler import fixed_task_batches
from src.model_utils.distributed import Ranks


def mean_ci95(values):
    """Mean and half-width of its 95% confidence interval, 1.96 * std / sqrt(n), as MAML papers report."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(1.96 * values.std() / math.sqrt(len(values)))


def evaluate(scorer, images, class_ids, cfg, num_tasks, rotate, ranks=Ranks()):
    """Fine-tune on each of `num_tasks` seeded tasks (the same for every call and checkpoint).

    Returns the final accuracy with its 95% confidence interval and, when the scorer scores every
    step, the accuracy after each inner step (0..update_step_test) averaged over tasks. Batches are padded to
    one size so that the graph is compiled once. Over several ranks each scores its round-robin
    share of the same batches and every rank returns the result of all tasks.
    """
    batch_size = min(cfg.eval_batch, num_tasks)
    accs = np.zeros((scorer.fine_tune_steps + 1 if scorer.every_step else 1, num_tasks), np.float32)
    for index, batch in enumerate(fixed_task_batches(images, class_ids, cfg.n_way, cfg.k_spt, cfg.k_qry_test,
                                                     num_tasks, batch_size, rotate, cfg.eval_seed)):
        if not ranks.owns(index):
            continue
        size = batch[0].shape[0]
        padded = [np.take(part, np.arange(batch_size) % size, axis=0) for part in batch]
        _, acc = scorer(*(ms.Tensor(part) for part in padded))
        accs[:, index * batch_size:index * batch_size + size] = acc[:, :size]
    accs = ranks.gather_columns(accs)
    mean, ci95 = mean_ci95(accs[-1])
    result = {"tasks": int(accs.shape[1]), "acc": mean, "ci95": ci95}
    if scorer.every_step:
        result["acc_per_step"] = [mean_ci95(step)[0] for step in accs]  # the last one is exactly acc
    return result
