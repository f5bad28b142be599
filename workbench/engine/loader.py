"""Batches from a dataset, deterministic and resumable.

The order of an epoch is a pure function of (seed, epoch), and each sample's augmentation randomness is a pure
function of (seed, epoch, index): a run resumed at batch k of epoch e sees exactly the batches the uninterrupted
run would have seen, whatever the number of workers. Worker processes only compute samples; they hold no state
that matters for reproducibility.

In data-parallel training every rank takes its own slice of the same epoch order (DistributedSampler-style).
"""

from __future__ import annotations

import math
import multiprocessing as mp
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import numpy as np

from workbench.errors import ConfigError


def sample_seed(seed: int, epoch: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index])


@dataclass
class EpochPlan:
    """Which dataset indices form each batch of one epoch, for one rank."""

    batches: list[list[int]]

    def __len__(self) -> int:
        return len(self.batches)


class EpochSampler:
    """Shuffled (or ordered) batches of an epoch, sharded over ranks.

    The dataset may expose ``epoch_indices(epoch, seed)`` (e.g. per-file sampling ratios draw a new subset each
    epoch); otherwise all indices are used. With ``world_size > 1`` the index list is padded by wrapping so every
    rank gets the same number of batches (like ``paddle.io.DistributedBatchSampler``), which keeps ranks in step.
    For evaluation use ``shuffle=False, drop_last=False, pad=False`` and gather the shards afterwards.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        sort_keys: Optional[np.ndarray] = None,
        sort_window: int = 64,
    ):
        """``sort_keys`` (one number per dataset index, e.g. the rec input width): batches are made of samples with
        similar keys, so padding a batch to its widest sample costs little. Shuffled: the epoch order is cut into
        windows of ``sort_window`` batches, each window is sorted by key and cut into batches, and the batches are
        shuffled (all from (seed, epoch)). Not shuffled (evaluation): the whole order is sorted by key."""
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.sort_keys = None if sort_keys is None else np.asarray(sort_keys)
        self.sort_window = max(int(sort_window), 1)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        if hasattr(self.dataset, "epoch_indices"):
            idx = np.asarray(self.dataset.epoch_indices(epoch, self.seed), dtype=np.int64)
        else:
            idx = np.arange(len(self.dataset), dtype=np.int64)
        if self.shuffle:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, epoch, 0x5EED]))
            idx = idx[rng.permutation(len(idx))]
        return idx

    def plan(self, epoch: int) -> EpochPlan:
        idx = self.epoch_indices(epoch)
        if self.world_size > 1:
            if self.pad:
                per_rank = math.ceil(len(idx) / self.world_size)
                total = per_rank * self.world_size
                if total > len(idx) and len(idx) > 0:
                    idx = np.concatenate([idx, idx[: total - len(idx)]])
            idx = idx[self.rank :: self.world_size]
        if self.sort_keys is not None:
            return EpochPlan(self._sorted_batches(idx, epoch))
        batches = [idx[i : i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return EpochPlan(batches)

    def _sorted_batches(self, idx: np.ndarray, epoch: int) -> list[list[int]]:
        keys = self.sort_keys[idx]
        if not self.shuffle:
            order = idx[np.argsort(keys, kind="stable")]
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        window = self.batch_size * self.sort_window
        batches = []
        for start in range(0, len(idx), window):
            part = idx[start : start + window]
            part = part[np.argsort(keys[start : start + window], kind="stable")]
            batches += [part[i : i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, epoch, 0xB0C4]))
        return [batches[i] for i in rng.permutation(len(batches))]

    def num_batches(self, epoch: int = 0) -> int:
        return len(self.plan(epoch))


# --- worker side -------------------------------------------------------------------------------------------
_WORKER_DATASET = None


def _init_worker(dataset) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _load_in_worker(index: int, seed: int, epoch: int, meta: Optional[dict] = None):
    return _load(_WORKER_DATASET, index, seed, epoch, meta)


def _load(dataset, index: int, seed: int, epoch: int, meta: Optional[dict] = None):
    rng = np.random.default_rng(sample_seed(seed, epoch, index))
    if hasattr(dataset, "load"):
        return dataset.load(index, rng=rng, epoch=epoch, **({"meta": meta} if meta else {}))
    return dataset[index]


class BatchLoader:
    """Iterates the batches of an epoch plan, loading samples ahead of use in worker processes.

    ``dataset.load(index, rng=..., epoch=...)`` returns a sample dict, or ``None`` when the sample could not be
    read and the data policy says skip (the dataset records it); ``collate(list_of_samples)`` makes the batch.
    """

    def __init__(
        self,
        dataset: Any,
        sampler: EpochSampler,
        collate: Callable[[list], Any],
        *,
        num_workers: int = 0,
        prefetch_batches: int = 2,
        worker_type: str = "process",
        batch_meta: Optional[Callable[[int, int], Optional[dict]]] = None,
    ):
        """``batch_meta(epoch, batch_index)``: settings shared by all samples of a batch (e.g. the rec input size
        of upstream's multi-scale sampler), passed to ``dataset.load(..., meta=...)``."""
        self.batch_meta = batch_meta
        self.dataset = dataset
        self.sampler = sampler
        self.collate = collate
        self.num_workers = num_workers
        self.prefetch_batches = max(prefetch_batches, 1)
        if worker_type not in ("process", "thread"):
            raise ConfigError(f"data.worker_type={worker_type!r}: choose process or thread")
        self.worker_type = worker_type
        self._pool: Optional[Executor] = None

    def _executor(self) -> Optional[Executor]:
        if self.num_workers <= 0:
            return None
        if self._pool is None:
            if self.worker_type == "thread":
                self._pool = ThreadPoolExecutor(self.num_workers)
            else:
                # spawn, not fork: forking a process that already runs Paddle's OpenMP threads can deadlock.
                self._pool = ProcessPoolExecutor(
                    self.num_workers,
                    mp_context=mp.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self.dataset,),
                )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Any]:
        plan = self.sampler.plan(epoch)
        seed = self.sampler.seed
        metas = [self.batch_meta(epoch, k) if self.batch_meta else None for k in range(len(plan))]
        batches = list(zip(plan.batches, metas))[start_batch:]
        pool = self._executor()
        if pool is None:
            for b, meta in batches:
                yield self._collate([_load(self.dataset, i, seed, epoch, meta) for i in b])
            return
        if self.worker_type == "thread":
            def submit(i, meta):
                return pool.submit(_load, self.dataset, i, seed, epoch, meta)
        else:
            def submit(i, meta):
                return pool.submit(_load_in_worker, i, seed, epoch, meta)
        pending: deque = deque()
        it = iter(batches)
        for _ in range(self.prefetch_batches):
            nxt = next(it, None)
            if nxt is None:
                break
            pending.append([submit(i, nxt[1]) for i in nxt[0]])
        while pending:
            futures = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append([submit(i, nxt[1]) for i in nxt[0]])
            yield self._collate([f.result() for f in futures])

    def _collate(self, samples: list) -> Any:
        """The batch, or None when no sample of it could be read (the data policy skipped them all: the trainer
        skips the step, evaluation the batch)."""
        kept = [s for s in samples if s is not None]
        if not kept:
            return None
        batch = self.collate(kept)
        if isinstance(batch, dict) and set(batch) == {"failed"}:
            return None
        return batch

    def __len__(self) -> int:
        return self.sampler.num_batches()
