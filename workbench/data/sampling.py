"""What the rec and det datasets share: mixing label files by ratio, epochs, the data position, failure handling,
and the collate function.

Ratio sampling (upstream ``ratio_list``): each label file (source) contributes ``round(len(file) * ratio)`` samples
per epoch. Upstream draws that subset once per run; here it is drawn again every epoch from ``(seed, epoch,
source)``, so over a run every sample is seen, and any epoch's order can be rebuilt exactly from the seed. A ratio
above 1 repeats the whole file ``int(ratio)`` times plus a random subset for the rest (oversampling a small
domain set). With ``shuffle`` the epoch's samples are then permuted with ``(seed, epoch)``.

Resuming: ``data_position(consumed)`` describes where a run stands (seed, epoch, index, fingerprint of the data);
``restore_position(pos)`` continues exactly there, and refuses if the data changed.

Read failures at train time (corrupt / truncated / vanished images) go through the same :class:`DataPolicy`:
``strict`` raises :class:`DataError` naming the label line; ``skip`` returns a :class:`FailedSample` that
:func:`collate` leaves out of the batch (its finding travels in ``batch["failed"]``, so the trainer can count it
even when workers run in other processes). A failed sample is never replaced by another one.
"""

from __future__ import annotations

import logging

import collections
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from workbench.errors import ConfigError, DataError
from workbench.data.findings import DataPolicy, Finding
from workbench.data.images import read_image

Transform = Callable[[dict], dict]

log = logging.getLogger("workbench.data")


@dataclass(frozen=True)
class FailedSample:
    """Stands in for a sample that could not be read (skip policy); :func:`collate` drops it."""

    finding: Finding


def normalize_sources(sources) -> list[tuple[Path, float]]:
    """``[path, (path, ratio), ...]`` → ``[(Path, float ratio), ...]`` with ratios checked."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    out = []
    for src in sources:
        if isinstance(src, (str, Path)):
            path, ratio = src, 1.0
        else:
            path, ratio = src
        ratio = float(ratio)
        if not ratio > 0:
            raise ConfigError(f"sampling ratio of {path} must be > 0, got {ratio}")
        out.append((Path(path), ratio))
    if not out:
        raise ConfigError("no label files given")
    return out


class SourceMixDataset:
    """Base class: samples from several label files, mixed by ratio, ordered per epoch.

    Subclasses parse their label files in ``_load_source`` (returning samples and findings) and turn a sample
    into a dict in ``_make_item``. Parse-time findings are handled by the policy in the constructor, before any
    training step: ``strict`` fails fast with every file:line, ``skip`` excludes and counts (``self.skipped``).
    """

    kind = "data"

    def __init__(self, sources, transform: Transform | None = None, policy: DataPolicy | None = None, *,
                 root=None, seed: int = 0, shuffle: bool = True, check_images_exist: bool = True):
        self.sources = normalize_sources(sources)
        self.transform = transform
        self.policy = policy or DataPolicy()
        self.root = root
        self.seed = int(seed)
        self.shuffle = bool(shuffle)

        per_source, findings = [], []
        for path, _ in self.sources:
            samples, found = self._load_source(path)
            if check_images_exist:
                found += self._missing_image_findings(samples)
            if not samples and not any(f.severity == "error" for f in found):
                found.append(Finding.make("no_samples", path, None, "the label file has no samples"))
            per_source.append(samples)
            findings += found
        self.findings: list[Finding] = findings
        all_samples = [s for samples in per_source for s in samples]
        kept, skipped = self.policy.apply(all_samples, findings, what=f"{self.kind} label files "
                                          + ", ".join(str(p) for p, _ in self.sources))
        self.skipped: collections.Counter = skipped
        kept_keys = {(s.file, s.line) for s in kept}
        self._per_source = [[s for s in samples if (s.file, s.line) in kept_keys] for samples in per_source]
        for (path, _), samples in zip(self.sources, self._per_source):
            if not samples:
                raise DataError(f"no usable sample left in {path} after excluding the ones with errors",
                                [f for f in self.policy.blocking(findings) if f.file == str(path)])
        self.samples = [s for samples in self._per_source for s in samples]
        self._offsets = np.cumsum([0] + [len(s) for s in self._per_source])
        for (path, ratio), samples in zip(self.sources, self._per_source):
            if round(len(samples) * ratio) == 0:
                raise ConfigError(f"ratio {ratio} of {path} selects no sample of its {len(samples)}")
        self.failed: list[Finding] = []  # read failures seen in this process (skip policy)
        self.epoch = 0
        self.start = 0
        self._order = self.epoch_order(0)

    # ---- subclass hooks ----------------------------------------------------------------------------------------
    def _load_source(self, path: Path) -> tuple[list, list[Finding]]:
        raise NotImplementedError

    def _make_item(self, sample, image: np.ndarray) -> dict:
        raise NotImplementedError

    def _finish_item(self, data: dict, sample) -> dict:
        return data

    # ---- findings summary --------------------------------------------------------------------------------------
    @property
    def warnings(self) -> list[Finding]:
        """Parse-time findings that did not exclude anything (warnings, info, accepted codes)."""
        return [f for f in self.findings if self.policy.severity(f) != "error"]

    def skip_counts(self) -> dict[str, int]:
        """Excluded samples per code: at parse time plus read failures seen in this process."""
        counts = collections.Counter(self.skipped)
        counts.update(f.code for f in self.failed)
        return dict(counts)

    def _missing_image_findings(self, samples) -> list[Finding]:
        return [Finding.make("missing_image", s.file, s.line, f"{s.image_path}: no such file")
                for s in samples if not Path(s.image_path).is_file()]

    # ---- epochs and order ----------------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> np.ndarray:
        """Indices into ``self.samples`` for one epoch: the ratio subsets of each source, shuffled if asked."""
        parts = []
        for si, ((_, ratio), samples) in enumerate(zip(self.sources, self._per_source)):
            n = len(samples)
            k = round(n * ratio)
            rng = np.random.default_rng([self.seed, epoch, si])
            full, rest = divmod(k, n)
            picks = [np.tile(np.arange(n), full)]
            if rest:
                picks.append(np.sort(rng.choice(n, size=rest, replace=False)))
            parts.append(np.concatenate(picks).astype(np.int64) + self._offsets[si])
        order = np.concatenate(parts)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        return order

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select epoch ``epoch``'s samples and order; skip its first ``start`` entries (resume mid-epoch).
        A transform with a ``set_epoch`` method is told the epoch too."""
        order = self.epoch_order(epoch)
        if not 0 <= start <= len(order):
            raise ConfigError(f"cannot start epoch {epoch} at index {start}: it has {len(order)} samples")
        self.epoch, self.start = int(epoch), int(start)
        self._order = order[start:]
        if hasattr(self.transform, "set_epoch"):
            self.transform.set_epoch(epoch)

    @property
    def epoch_size(self) -> int:
        """Samples in a full epoch (before ``start`` is applied)."""
        return len(self._order) + self.start

    def fingerprint(self) -> str:
        """Hash of what the order depends on: the sources, ratios and kept samples (file, line, path, label)."""
        h = hashlib.sha256()
        for (path, ratio), samples in zip(self.sources, self._per_source):
            h.update(f"{path}|{ratio!r}|{len(samples)}\n".encode())
            for s in samples:
                h.update(self._sample_signature(s).encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:16]

    def _sample_signature(self, sample) -> str:
        return f"{sample.line}|{sample.rel_path}\n"

    def data_position(self, consumed: int = 0) -> dict:
        """Where a run stands after ``consumed`` items of the current epoch (for the checkpoint's state.json)."""
        return {"seed": self.seed, "epoch": self.epoch, "index": self.start + int(consumed),
                "epoch_size": self.epoch_size, "fingerprint": self.fingerprint()}

    def restore_position(self, position: dict) -> None:
        """Continue exactly at ``position`` (from :meth:`data_position`); refuse if the data or seed differ."""
        if position.get("seed") != self.seed:
            raise ConfigError(f"data position was saved with seed {position.get('seed')}, this dataset uses "
                              f"{self.seed}")
        if position.get("fingerprint") != self.fingerprint():
            raise ConfigError("the training data changed since the checkpoint (label files, ratios or kept "
                              "samples differ), so the saved data position does not apply")
        index = int(position["index"])
        if index >= self.epoch_size_of(position["epoch"]):
            self.set_epoch(int(position["epoch"]) + 1)
        else:
            self.set_epoch(int(position["epoch"]), start=index)

    def epoch_size_of(self, epoch: int) -> int:
        return len(self.epoch_order(epoch))

    # ---- items ---------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._order)

    def sample_at(self, index: int):
        """The label-file sample behind item ``index`` of the current epoch."""
        return self.samples[int(self._order[index])]

    def load_sample(self, sample) -> dict | FailedSample:
        """Read one sample's image and build its dict (no transform). For transforms that mix in other samples."""
        try:
            image = read_image(sample.image_path, sample=sample,
                               allow_truncated="truncated_image" in self.policy.accept)
        except DataError as e:
            finding = e.findings[0] if e.findings else Finding.make("corrupt_image", sample.file, sample.line, str(e))
            self.policy.on_failure(finding)  # strict: raises with the label line
            if finding.key not in {f.key for f in self.failed}:  # counted once per sample, however often read
                self.failed.append(finding)
                log.warning("data.policy=skip: skipped %s (%d sample(s) unreadable so far)", finding,
                            len(self.failed))
            return FailedSample(finding)
        return self._make_item(sample, image)

    def limit(self, n: int) -> None:
        """Keep only the first ``n`` samples (in label-file order): quick experiments and tests."""
        kept, left = [], int(n)
        for samples in self._per_source:
            kept.append(samples[: max(left, 0)])
            left -= len(kept[-1])
        keep_sources = [i for i, k in enumerate(kept) if k]
        self.sources = [self.sources[i] for i in keep_sources]
        self._per_source = [kept[i] for i in keep_sources]
        self.samples = [s for samples in self._per_source for s in samples]
        self._offsets = np.cumsum([0] + [len(s) for s in self._per_source])
        self._order = self.epoch_order(self.epoch)

    # ---- the trainer's loader (workbench.engine.loader) --------------------------------------------------------
    def epoch_indices(self, epoch: int, seed: int | None = None) -> np.ndarray:
        """Indices into ``self.samples`` that make up ``epoch`` (ratio subsets; the loader shuffles and shards)."""
        return self.epoch_order(epoch)

    def load(self, index: int, rng: np.random.Generator, epoch: int = 0, meta: dict | None = None
             ) -> dict | FailedSample:
        """The item for ``self.samples[index]``, its augmentation randomness drawn from ``rng`` only, so the same
        (seed, epoch, index) gives the same item in any worker, in any run. Transforms that mix in other samples
        (``ext_data_num``: rec concatenation, det copy-paste) get them chosen by the same ``rng``."""
        sample = self.samples[int(index)]
        data = self.load_sample(sample)
        if isinstance(data, FailedSample):
            return data
        data["index"] = int(index)
        if meta:  # batch-level settings (e.g. the multi-scale input size), for the transform
            data.update(meta)
        if self.transform is None:
            return self._finish_item(data, sample)
        n_extra = getattr(self.transform, "ext_data_num", 0)
        if n_extra:
            extras = [self.load_sample(self.samples[int(j)]) for j in rng.integers(0, len(self.samples), n_extra)]
            data["ext_data"] = [e for e in extras if not isinstance(e, FailedSample)]
        try:
            data = self.transform(data, rng=rng)
        except Exception as e:  # a transform bug: keep it loud, but say which sample it was
            if hasattr(e, "add_note"):
                e.add_note(f"while transforming {sample.file}:{sample.line} ({sample.image_path})")
            raise
        return self._finish_item(data, sample)

    def __getitem__(self, index: int) -> dict | FailedSample:
        sample = self.sample_at(index)
        data = self.load_sample(sample)
        if isinstance(data, FailedSample):
            return data
        if self.transform is not None:
            try:
                data = self.transform(data)
            except Exception as e:  # a transform bug: keep it loud, but say which sample it was
                if hasattr(e, "add_note"):
                    e.add_note(f"while transforming {sample.file}:{sample.line} ({sample.image_path})")
                raise
        return self._finish_item(data, sample)


def _is_scalar(v) -> bool:
    return isinstance(v, (bool, int, float, np.number, np.bool_))


def collate(items: Sequence[Any], *, pad_image_width: bool = False, list_keys: Iterable[str] = ()) -> dict:
    """Stack a list of item dicts into a batch dict of numpy arrays.

    * arrays of one shape are stacked (``[N, ...]``); numbers become a 1-d array; anything else (strings, polygon
      lists, arrays of different shapes) stays a list;
    * ``pad_image_width``: ``image`` arrays that differ only in their last axis (CHW width) are padded on the right
      with zeros to the widest one (rec; width-bucketing samplers keep this padding small);
    * :class:`FailedSample` entries are left out; their findings are in ``batch["failed"]`` (always present).
      When every item failed, the batch holds only ``failed``: the trainer skips the step.
    """
    failed = [it.finding for it in items if isinstance(it, FailedSample)]
    items = [it for it in items if not isinstance(it, FailedSample)]
    batch: dict[str, Any] = {"failed": failed}
    if not items:
        return batch
    list_keys = set(list_keys)
    keys = list(items[0])
    for it in items[1:]:
        if list(it) != keys:
            raise ValueError(f"items of one batch have different keys: {keys} vs {list(it)}")
    for key in keys:
        values = [it[key] for it in items]
        if key in list_keys:
            batch[key] = values
        elif all(isinstance(v, np.ndarray) for v in values):
            shapes = {v.shape for v in values}
            if len(shapes) == 1:
                batch[key] = np.stack(values)
            elif key == "image" and pad_image_width and len({s[:-1] for s in shapes}) == 1:
                width = max(s[-1] for s in shapes)
                out = np.zeros((len(values), *values[0].shape[:-1], width), dtype=values[0].dtype)
                for i, v in enumerate(values):
                    out[i, ..., : v.shape[-1]] = v
                batch[key] = out
            elif key == "image":
                raise ValueError(f"images of one batch differ in shape {sorted(shapes)}: the transform must resize "
                                 f"them to one size (or to one height, CHW, for width padding)")
            else:
                batch[key] = values
        elif all(_is_scalar(v) for v in values):
            batch[key] = np.asarray(values)
        else:
            batch[key] = values
    return batch
