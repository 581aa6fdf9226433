"""Few-shot accuracy on a fixed set of tasks: validation during training and eval.py share it."""
import numpy as np
import mindspore as ms

from src.episode_sampler import fixed_task_batches
from src.metrics import mean_ci95


def evaluate(scorer, images, class_ids, cfg, num_tasks, rotate):
    """Fine-tune on each of `num_tasks` seeded tasks (the same for every call and checkpoint).

    Returns the final accuracy with its 95% confidence interval and, when the scorer scores every
    step, the accuracy after each inner step (0..update_step_test) averaged over tasks. Batches are padded to
    one size so that the graph is compiled once.
    """
    batch_size = min(cfg.eval_batch, num_tasks)
    per_task = []
    for batch in fixed_task_batches(images, class_ids, cfg.n_way, cfg.k_spt, cfg.k_qry_test, num_tasks,
                                    batch_size, rotate, cfg.eval_seed):
        size = batch[0].shape[0]
        padded = [np.take(part, np.arange(batch_size) % size, axis=0) for part in batch]
        _, acc = scorer(*(ms.Tensor(part) for part in padded))
        per_task.append(acc[:, :size])
    accs = np.concatenate(per_task, axis=1)
    mean, ci95 = mean_ci95(accs[-1])
    result = {"tasks": int(accs.shape[1]), "acc": mean, "ci95": ci95}
    if scorer.every_step:
        result["acc_per_step"] = [mean_ci95(step)[0] for step in accs]  # the last one is exactly acc
    return result
