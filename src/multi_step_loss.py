"""MAML++'s multi-step loss (MSL): how much the query loss after each inner step counts in the meta-loss.

With N inner steps, the weights start at 1/N each. Over the first `msl_steps` meta-steps each
non-final weight falls linearly to 0.03/N at most and the final one rises; from then on only the
final step's loss counts. Antoniou et al. anneal once per epoch of 500 meta-steps; here the
annealing length is counted in meta-steps and the weights move at every step.
"""
import numpy as np

FLOOR = 0.03  # the non-final weights never fall below FLOOR / N while the annealing lasts


def step_loss_weights(update_step, msl_steps, step):
    """float32 weights (update_step,) of the query losses after inner steps 1..N at meta-step `step`
    (0 for the first), or None where the last step's loss alone counts (annealing over, or MSL off)."""
    if step >= msl_steps:
        return None
    n = update_step
    progress = step / msl_steps
    weights = np.full(n, max(1.0 / n - progress / n, FLOOR / n))
    weights[-1] = min(1.0 / n + progress * (n - 1) / n, 1.0 - (n - 1) * FLOOR / n)
    return weights.astype(np.float32)
