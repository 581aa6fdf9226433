"""Select the backend (CPU, GPU or Ascend) and execution mode from the config."""
import os

import mindspore as ms

from src.errors import UserError


def setup_device(cfg):
    """Apply device_target, device_id and mode; a backend this MindSpore build lacks is a clear error.

    The launch scripts export DEVICE_ID and pass --device_id; the config value is what counts, and
    DEVICE_ID is set to it so that libraries reading the variable agree with it.
    """
    target = cfg.device_target
    if not ms.hal.is_available(target):
        raise UserError(
            f"device_target {target} is not available in this MindSpore installation: install the "
            f"MindSpore build for {target} (https://www.mindspore.cn/install) or pass --device_target CPU")
    mode = ms.GRAPH_MODE if cfg.mode == "GRAPH" else ms.PYNATIVE_MODE
    ms.set_context(mode=mode)
    ms.set_device(target, None if target == "CPU" else cfg.device_id)
    if target == "CPU" and cfg.cpu_threads:
        # MindSpore's default pool spins more threads than a core pinned to one run can serve.
        ms.device_context.cpu.op_tuning.threads_num(cfg.cpu_threads)
    os.environ["DEVICE_ID"] = str(cfg.device_id)
    ms.set_seed(cfg.seed)
