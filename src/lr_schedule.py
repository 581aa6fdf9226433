"""Per-step meta learning rates, handed to the optimizer as a list indexed by its global step."""


def meta_lr_schedule(cfg):
    """Step decay: meta_lr * lr_scheduler_gamma ** (step // lr_decay_steps); gamma 1.0 keeps it constant."""
    return [cfg.meta_lr * cfg.lr_scheduler_gamma ** (step // cfg.lr_decay_steps) for step in range(cfg.epoch)]
