"""Data-parallel plumbing on ``paddle.distributed`` (collective mode): who am I, and how ranks agree.

A single process is world_size 1 and every helper here is a no-op, so the trainer has one code path.
Launching several processes is Paddle's job (``python -m paddle.distributed.launch``); see ``workbench.engine.launch``.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def detect_env() -> DistEnv:
    """Read the environment set by ``paddle.distributed.launch`` (PADDLE_TRAINER_ID / PADDLE_TRAINERS_NUM)."""
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
    local = int(os.environ.get("PADDLE_LOCAL_RANK", os.environ.get("FLAGS_selected_gpus", "0").split(",")[0] or 0))
    return DistEnv(rank=rank, world_size=world, local_rank=local if world > 1 else 0)


_INITIALISED = False


def init(env: DistEnv) -> None:
    """Initialise the collective group once (gloo on CPU, NCCL on GPU: Paddle picks from the device)."""
    global _INITIALISED
    if env.enabled and not _INITIALISED:
        import paddle.distributed as dist

        dist.init_parallel_env()
        _INITIALISED = True


def barrier(env: DistEnv) -> None:
    if env.enabled:
        import paddle.distributed as dist

        dist.barrier()


def all_reduce_mean(env: DistEnv, values: dict[str, float]) -> dict[str, float]:
    """Average scalar floats over ranks (for logging losses)."""
    if not env.enabled or not values:
        return values
    import paddle
    import paddle.distributed as dist

    keys = sorted(values)
    t = paddle.to_tensor(np.array([values[k] for k in keys], dtype=np.float64))
    dist.all_reduce(t)
    arr = t.numpy() / env.world_size
    return {k: float(v) for k, v in zip(keys, arr)}


def all_gather_objects(env: DistEnv, obj) -> list:
    """Gather any picklable object from every rank (evaluation records), in rank order."""
    if not env.enabled:
        return [obj]
    import paddle
    import paddle.distributed as dist

    payload = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    size = paddle.to_tensor(np.array([payload.size], dtype=np.int64))
    sizes: list = []
    dist.all_gather(sizes, size)
    max_size = int(max(int(s.numpy()[0]) for s in sizes))
    buf = np.zeros(max_size, dtype=np.uint8)
    buf[: payload.size] = payload
    gathered: list = []
    dist.all_gather(gathered, paddle.to_tensor(buf))
    out = []
    for t, s in zip(gathered, sizes):
        n = int(s.numpy()[0])
        out.append(pickle.loads(t.numpy()[:n].tobytes()))
    return out
