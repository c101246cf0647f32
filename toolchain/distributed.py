"""Distributed setup and teardown for training under torchrun: this process's place in
the job (`Dist`), the few collectives training uses, and a clean exit of gloo's threads.

Under `torchrun --nproc-per-node N` each rank owns B/N of the training streams and
DistributedDataParallel averages the gradients, so N ranks compute what one process with
the same global batch computes. Rank 0 alone writes files (`on_rank0`)."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from lstm_edge.toolchain.run_config import TrainingError

# How long to let gloo's worker threads release the last collectives' tensors when torch
# offers no way to check (see Dist.stop); they do so within microseconds of completing.
FALLBACK_RELEASE_WAIT_S = 0.2


@dataclass(frozen=True)
class Dist:
    """This process's place in the torchrun job, and the few collectives training uses.

    Teardown: `all_reduce`/`wait` return once gloo has marked the work complete, but its
    worker thread drops its own reference to the work (and so to our tensor) a moment
    later. If Python dropped the tensor first, that late release has to take the GIL to
    free the Python object; when the main thread has meanwhile begun interpreter shutdown,
    the worker thread is made to exit inside a C++ destructor and the process aborts with
    "terminate called without an active exception" (seen on a loaded 2-core machine).
    `destroy_process_group` does not stop the worker threads, and DDP keeps the group
    alive, so `stop` instead keeps the tensors of the last collectives referenced until
    the workers have let go of them."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    # Tensors of the latest collectives: freed by Python, never by a gloo worker thread.
    sent: deque[torch.Tensor] = field(
        default_factory=lambda: deque(maxlen=8), compare=False, repr=False
    )

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls) -> Dist:
        """Join the process group torchrun describes in the environment (if world > 1)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
        )

    def finish(self) -> None:
        """After the last collective of a successful run: every rank waits here, so none
        tears down while another still has collectives in flight."""
        if self.world > 1:
            dist.barrier()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Leave the process group; return once the gloo worker threads hold none of our
        tensors, so nothing of theirs needs Python during interpreter shutdown."""
        if self.world == 1 or not dist.is_initialized():
            return
        dist.destroy_process_group()
        deadline = time.monotonic() + timeout_s
        # use_count 1: only our reference is left (the worker has released the work).
        # `_use_count` is private torch API; without it, a fixed grace period instead.
        use_count = getattr(torch.Tensor, "_use_count", None)
        if use_count is None:
            time.sleep(FALLBACK_RELEASE_WAIT_S)
        while (
            use_count is not None
            and any(use_count(t) > 1 for t in self.sent)
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)
        self.sent.clear()

    def all_reduce(self, t: torch.Tensor, op: Any = dist.ReduceOp.SUM) -> None:
        """In-place sum (or `op`) over all ranks (a no-op in a single process)."""
        if self.world > 1:
            self.sent.append(t)
            dist.all_reduce(t, op=op)

    def all_ok(self, ok: bool) -> bool:
        """True on every rank iff `ok` is True on every rank (a failing rank 0 stops all)."""
        flag = torch.tensor([1 if ok else 0], dtype=torch.int64)
        self.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_streams(self, t: torch.Tensor) -> torch.Tensor:
        """[layers, local streams, hidden] on each rank -> [layers, all streams, hidden]."""
        if self.world == 1:
            return t
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(self.world)]
        self.sent.extend([t, *parts])
        dist.all_gather(parts, t)
        return torch.cat(parts, dim=1)


def default_threads(processes: int = 1) -> int:
    """This process's share of the cores it may run on, at least 1. Not fewer when the
    machine looks busy: a load-dependent default would make the same command run at a
    different speed from one call to the next. What keeps a busy machine from collapsing
    the step is how the threads wait, not how many there are: the CLI sets OpenMP's
    passive wait policy (see toolchain/cli.py), without which threads spinning in the
    LSTM's many small parallel regions starved their descheduled peer (2.6-8x slower beside
    one busy process, 1.14x with it; scripts/training_under_load.py measures it)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def on_rank0(d: Dist, fn: Callable[[], Any]) -> Any:
    """Run fn on rank 0; if it raises, every rank stops (rank 0 with the real message)."""
    result, error = None, None
    if d.main:
        try:
            result = fn()
        except BaseException as e:  # also KeyboardInterrupt: the others must not hang
            error = e
    if not d.all_ok(error is None):
        if error is not None:
            raise error
        raise TrainingError("rank 0 failed; see its message")
    return result
