"""Data-parallel MAML over the processes msrun starts: this rank, its share of the tasks, and the
collectives that make N ranks compute what one process computes.

- Training: every rank draws the same global meta-batch from the same seeded sampler and adapts
  its contiguous slice of `task_num / size` tasks. `MeanOverRanks` turns each rank's mean loss,
  accuracy and meta-gradient into the mean over all tasks (AllReduce sums, the only reduction of
  CPU's mccl backend, then a division), so every rank applies the same update.
- Evaluation: the fixed task batches are dealt round-robin, each padded exactly as in one process,
  and `gather_columns` collects the per-task accuracies with one AllReduce sum over arrays that are
  zero outside each rank's own tasks (exact: x + 0 = x).

Outside msrun everything reduces to one rank of size one and no collective is run.
"""
import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np
import mindspore as ms
from mindspore import communication, nn, ops

from src.model_utils.errors import UserError


def launched_by_msrun():
    """msrun marks each process it starts (scheduler and workers) with MS_ROLE."""
    return "MS_ROLE" in os.environ


def launched_size():
    """Number of ranks of this launch, known from msrun's environment before the cluster is joined."""
    return int(os.environ.get("MS_WORKER_NUM", "1")) if launched_by_msrun() else 1


def check_meta_batch(task_num, size):
    """task_num is the global meta-batch: each of `size` ranks adapts an equal share of it."""
    if task_num % size:
        raise UserError(f"task_num {task_num} cannot be split evenly over {size} ranks: pass a --task_num that "
                        f"is a multiple of {size} (e.g. {size * max(1, round(task_num / size))}), or another "
                        "number of ranks")


@dataclass(frozen=True)
class Ranks:
    """This process's rank among `size`; rank 0 alone writes logs, metrics and checkpoints."""

    rank: int = 0
    size: int = 1

    @property
    def main(self):
        return self.rank == 0

    def share(self, task_num):
        """This rank's slice of a meta-batch of `task_num` tasks."""
        check_meta_batch(task_num, self.size)
        per_rank = task_num // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def owns(self, batch_index):
        """Evaluation batches are dealt round-robin."""
        return batch_index % self.size == self.rank

    def mean_cell(self):
        """The cell that averages over ranks inside the compiled step; None for a single process."""
        return MeanOverRanks(self.size) if self.size > 1 else None

    def total(self, value):
        """The sum over ranks of a number (every rank calls it)."""
        return float(self.gather_columns(np.array([value]))[0])

    def gather_columns(self, array):
        """Element-wise sum over ranks of float32 arrays that each rank filled in its own columns only."""
        if self.size == 1:
            return array
        return ops.AllReduce()(ms.Tensor(array.astype(np.float32))).asnumpy()


class MeanOverRanks(nn.Cell):
    """Mean over ranks of each tensor of a tuple: the tensors are packed into one vector for a single
    AllReduce sum (each collective call has a fixed cost), then divided by the number of ranks and
    unpacked."""

    def __init__(self, size):
        super().__init__()
        self.size = size
        self.all_reduce = ops.AllReduce()

    def construct(self, tensors):
        total = self.all_reduce(ops.concat([t.reshape(-1) for t in tensors])) / self.size
        means, start = [], 0
        for t in tensors:
            means.append(total[start:start + t.size].reshape(t.shape))
            start += t.size
        return tuple(means)


def current():
    """The Ranks of this process (a single rank unless started by msrun)."""
    if not launched_by_msrun():
        return Ranks()
    return Ranks(communication.get_rank(), communication.get_group_size())


def join(target, cpu_threads):
    """Join the msrun cluster (backend chosen by MindSpore: mccl on CPU, nccl on GPU, hccl on Ascend).

    msrun's scheduler process runs the same script: it stays inside init() until the workers are
    done, then exits. On CPU each worker is pinned to its own share of the cores this launch may use
    (with one operator thread per core unless cpu_threads is set), where there are enough.
    The ranks other than 0 drop their standard output: rank 0 alone logs (errors still reach
    standard error, in each rank's msrun log). Returns the operator threads to set (0: MindSpore's).
    """
    communication.init()
    ranks = current()
    if target == "CPU":
        cores = pin_to_own_cores(int(os.environ.get("DEVICE_ID", ranks.rank)), ranks.size)
        cpu_threads = cpu_threads or len(cores)
    if not ranks.main:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    return cpu_threads


def pin_to_own_cores(local_rank, local_size):
    """Restrict every thread of this process to its contiguous share of the allowed cores; () when
    there are fewer cores than ranks (then the ranks share them, unpinned)."""
    allowed = sorted(os.sched_getaffinity(0))
    per_rank = len(allowed) // local_size
    if per_rank == 0:
        return ()
    cores = allowed[local_rank * per_rank:(local_rank + 1) * per_rank]
    pinned = set()
    while threads := set(os.listdir("/proc/self/task")) - pinned:  # again for threads started meanwhile
        for thread in threads:
            with contextlib.suppress(ProcessLookupError):  # the thread ended after the listing
                os.sched_setaffinity(int(thread), cores)
        pinned |= threads
    return tuple(cores)
