"""Select the backend (CPU, GPU or Ascend) and execution mode from the config, and join the other
ranks when msrun started this process."""
import os
import sys

import mindspore as ms

from src import distributed
from src.errors import UserError


def check_available(target):
    """A backend this MindSpore build lacks is one error line. MindSpore's probe logs several lines of its
    own (the plugins it failed to load, Ascend's even when GPU is asked for): they are dropped."""
    sys.stderr.flush()
    kept = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            available = ms.hal.is_available(target)
            sys.stderr.flush()
    finally:
        os.dup2(kept, 2)
        os.close(kept)
    if not available:
        raise UserError(
            f"device_target {target} is not available in this MindSpore installation: install the "
            f"MindSpore build for {target} (https://www.mindspore.cn/install) or pass --device_target CPU")


def setup_device(cfg):
    """Apply device_target, device_id and mode; a backend this MindSpore build lacks is a clear error.

    The launch scripts export DEVICE_ID and pass --device_id; the config value is what counts, and
    DEVICE_ID is set to it so that libraries reading the variable agree with it. Under msrun each
    rank takes the card msrun gave it (DEVICE_ID, its local rank) and joins the others
    (src.distributed.join).
    """
    target = cfg.device_target
    check_available(target)
    mode = ms.GRAPH_MODE if cfg.mode == "GRAPH" else ms.PYNATIVE_MODE
    ms.set_context(mode=mode)
    msrun = distributed.launched_by_msrun()
    device_id = int(os.environ.get("DEVICE_ID", 0)) if msrun else cfg.device_id
    ms.set_device(target, None if target == "CPU" else device_id)
    cpu_threads = distributed.join(target, cfg.cpu_threads) if msrun else cfg.cpu_threads
    if target == "CPU" and cpu_threads:
        # MindSpore's default pool spins more threads than a core pinned to one run can serve.
        ms.device_context.cpu.op_tuning.threads_num(cpu_threads)
    os.environ["DEVICE_ID"] = str(device_id)
    ms.set_seed(cfg.seed)
