"""Memory a batch needs, estimated before any work and held against the machine's: a typo such as
`--eval_batch 32000` is one error line, not minutes of swapping before the system kills the run.

The estimate is a lower bound, so that no run that fits is refused: per image, the float32 output of
every conv block and its gradient, which one inner step of fine-tuning keeps at once.
"""
import os

from src.model_utils.errors import UserError


def machine_bytes():
    """The machine's physical memory in bytes, None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def image_bytes(cfg):
    """Lower bound of the bytes one image takes in a fine-tuning step of the network of settings cfg."""
    side, values = cfg.imgsz, cfg.imgsz ** 2  # one grey channel
    for _ in range(cfg.num_blocks):
        side = -(-side // 2)  # stride-2 'same' convolutions
        values += cfg.num_filters * side * side
    return 2 * 4 * values


def gigabytes(count):
    return f"{count / 2**30:.1f} GiB"


def check_memory(cfg, what, images, fix):
    """Refuse `images` images at once (`what` names the setting and its value) when even the lower bound of
    their memory exceeds the machine's; `fix` says what to change."""
    need, have = images * image_bytes(cfg), machine_bytes()
    if have and need > have:
        raise UserError(f"{what} needs at least {gigabytes(need)} of memory ({images} images of {cfg.imgsz}x"
                        f"{cfg.imgsz} through {cfg.num_blocks} blocks of {cfg.num_filters} filters at once) but "
                        f"this machine has {gigabytes(have)}: {fix}")


def check_batch_memory(cfg, trains):
    """The batches of settings cfg: the meta-batch (task_num tasks) of a program that trains, and the tasks
    fine-tuned at once in validation and test (eval_batch, at most the number of tasks)."""
    if trains:
        check_memory(cfg, f"task_num {cfg.task_num}", cfg.task_num * cfg.n_way * (cfg.k_spt + cfg.k_qry),
                     "lower --task_num (tasks per meta-batch)")
    tasks = max(cfg.val_tasks if trains else 0, cfg.eval_tasks)
    batch = min(cfg.eval_batch, tasks)
    check_memory(cfg, f"eval_batch {cfg.eval_batch}", batch * cfg.n_way * (cfg.k_spt + cfg.k_qry_test),
                 "lower --eval_batch (tasks fine-tuned at once; 32 suits most machines)")
