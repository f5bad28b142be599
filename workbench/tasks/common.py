"""What the rec and det tasks share: which label files to use (the user's, or the built-in demo set), the data
policy, cached datasets, the data check run before training, and strict loading of the starting weights."""

from __future__ import annotations

import functools
import json
import logging
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Optional

from workbench.config.schema import DataConfig, TrainConfig
from workbench.errors import ConfigError
from workbench.tasks.base import Task, WeightsReport

log = logging.getLogger("workbench.data")


@dataclass
class DataFiles:
    train: list[tuple[Path, float]] = field(default_factory=list)
    val: list[tuple[Path, float]] = field(default_factory=list)
    demo: bool = False  # the built-in demo set is used
    demo_dict: Optional[Path] = None  # rec: the demo set's dictionary


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


def resolve_data_files(data: DataConfig, kind: str) -> DataFiles:
    """``data.train`` / ``data.val`` as (file, ratio) lists; with no ``data.train`` the demo set is generated."""
    train, val = _as_list(data.train), _as_list(data.val)
    if not train:
        from workbench.data import synth

        d = data.demo
        if kind == "rec":
            demo = synth.generate_rec_demo(d.dir, d.n_train, d.n_val, d.seed, style=d.style)
        else:
            demo = synth.generate_det_demo(d.dir, d.n_train, d.n_val, d.seed)
        log.info("no data.train given: using the built-in %s demo set in %s", kind, demo.root)
        return DataFiles(
            train=[(Path(demo.train), 1.0)],
            val=[(Path(p), 1.0) for p in val] or [(Path(demo.val), 1.0)],
            demo=True,
            demo_dict=Path(demo.dict_path) if getattr(demo, "dict_path", None) else None,
        )
    ratios = data.train_ratios or [1.0] * len(train)
    if len(ratios) != len(train):
        raise ConfigError(f"data.train_ratios has {len(ratios)} values for {len(train)} train files")
    for p in train + val:
        if not Path(p).is_file():
            raise ConfigError(f"label file not found: {p}")
    if not val:
        log.warning("no data.val given: no evaluation, no best checkpoint (only 'latest')")
    return DataFiles(train=[(Path(p), float(r)) for p, r in zip(train, ratios)], val=[(Path(p), 1.0) for p in val])


# Recipe sections the demo may set values in (not the model: data.demo.model / arch say which one; not tracking).
DEMO_OVERRIDE_SECTIONS = ("data", "optim", "trainer", "eval")


def demo_trains_from_scratch(cfg: TrainConfig, files: DataFiles) -> bool:
    """The demo settings apply: the built-in demo set is used and no starting weights were given."""
    return files.demo and not cfg.model.pretrained


def apply_demo_settings(cfg: TrainConfig, files: DataFiles) -> None:
    """On the demo set, trained from scratch: ``data.demo.model`` / ``arch`` replace the recipe's model and
    ``data.demo.overrides`` replace recipe values, so the demo learns visibly in minutes on a CPU.

    Nothing changes with your own data (``data.train`` given) or with ``model.pretrained``. The effective values
    are what the run logs, tracks and checkpoints (``config.yaml``).
    """
    if not demo_trains_from_scratch(cfg, files):
        return
    demo = cfg.data.demo
    if demo.model and cfg.model.name != demo.model:
        log.warning(
            "demo: training %s from scratch on the synthetic set instead of %s (data.demo.model). Give data.train "
            "(and model.pretrained) to fine-tune %s on your data.", demo.model, cfg.model.name, cfg.model.name,
        )
        cfg.model.name = demo.model
        cfg.model.arch = dict(demo.arch)
    if demo.overrides:
        _merge_overrides(cfg, demo.overrides)
        log.info("demo: recipe values replaced for the from-scratch demo (data.demo.overrides): %s",
                 ", ".join(f"{k}={v}" for k, v in _leaves(demo.overrides)))


def _leaves(tree: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _merge_overrides(cfg: TrainConfig, overrides: Mapping) -> None:
    """Merge ``overrides`` into ``cfg`` in place, validated against the schema like any recipe value."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    unknown = [k for k in overrides if k not in DEMO_OVERRIDE_SECTIONS]
    if unknown:
        raise ConfigError(f"data.demo.overrides: {', '.join(map(str, unknown))} cannot be set for the demo "
                          f"(allowed sections: {', '.join(DEMO_OVERRIDE_SECTIONS)})")
    for key, value in overrides.items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"data.demo.overrides.{key} must be a mapping of {key} keys, got {value!r}")
    try:
        merged = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cfg), dict(overrides)))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"data.demo.overrides: {exc}".strip()) from None
    for section in overrides:
        setattr(cfg, section, getattr(merged, section))


def drop_demo_overrides(cfg: TrainConfig, keys) -> list[str]:
    """Remove from ``data.demo.overrides`` every value that ``keys`` (dotted keys set explicitly, e.g. on the
    command line: ``trainer.epochs``, or a whole group: ``optim``) also set, so the explicit value wins.
    Returns the dropped override keys."""
    keys = [k for k in keys if k]

    def covered(path: str) -> bool:
        return any(path == k or path.startswith(k + ".") or k.startswith(path + ".") for k in keys)

    def prune(tree: Mapping, prefix: str) -> tuple[dict, list[str]]:
        kept, dropped = {}, []
        for key, value in tree.items():
            path = f"{prefix}{key}"
            if covered(path) and not (isinstance(value, Mapping) and any(k.startswith(path + ".") for k in keys)):
                dropped += [leaf for leaf, _ in _leaves(value, path + ".")] if isinstance(value, Mapping) else [path]
            elif isinstance(value, Mapping):
                sub, sub_dropped = prune(value, path + ".")
                dropped += sub_dropped
                if sub:
                    kept[key] = sub
            else:
                kept[key] = value
        return kept, dropped

    kept, dropped = prune(cfg.data.demo.overrides, "")
    cfg.data.demo.overrides = kept
    return dropped


def command_line_keys(overrides: list[str]) -> list[str]:
    """Dotted keys of Hydra command-line overrides: ``trainer.epochs=3`` -> ``trainer.epochs``,
    ``+x.y=1`` -> ``x.y``, ``optim=det_adam_cosine`` -> ``optim``."""
    keys = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~").strip()
        if "@" in key:  # group@package: the package is where the values land
            key = key.split("@", 1)[1]
        keys.append(key)
    return keys


class LabelFileTask(Task):
    """A Task trained on PaddleOCR label files. Subclasses build their datasets (``build_dataset``) and say how
    the data check sees their data (``check_options``)."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        from workbench.data.findings import DataPolicy
        from workbench.models import zoo

        self.files: DataFiles = resolve_data_files(cfg.data, self.name)
        apply_demo_settings(cfg, self.files)
        self.spec = zoo.get_spec(cfg.model.name)
        if self.spec.task != self.name:
            raise ConfigError(f"model {cfg.model.name} is a {self.spec.task} model; the {self.name} recipe needs a "
                              f"{self.name} model (e.g. model={zoo.list_models(self.name)[0]})")
        self.policy = DataPolicy(cfg.data.policy)
        self._datasets: dict[str, object] = {}

    # --- data ----------------------------------------------------------------------------------------------
    @abstractmethod
    def build_dataset(self, files: list[tuple[Path, float]], *, train: bool): ...

    def _cached(self, split: str, files, train: bool):
        if split not in self._datasets:
            ds = self.build_dataset(files, train=train)
            limit = self.cfg.data.max_train_samples if train else self.cfg.data.max_val_samples
            if limit:
                ds.limit(limit)
            if ds.skipped:  # data.policy=skip: counted, and said
                log.warning("data.policy=skip: %d %s sample(s) excluded (%s), %d kept",
                            sum(ds.skipped.values()), split,
                            ", ".join(f"{code}: {n}" for code, n in ds.skipped.most_common()), len(ds.samples))
            self._datasets[split] = ds
        return self._datasets[split]

    def train_dataset(self):
        return self._cached("train", self.files.train, True)

    def val_dataset(self):
        return self._cached("val", self.files.val, False) if self.files.val else None

    @abstractmethod
    def check_options(self) -> dict:
        """Keyword arguments of ``workbench.data.check.check_sources`` for this task's data."""

    def check_data(self, run_dir: Path) -> None:
        from workbench.data.check import check_sources

        report = check_sources(self.name, [p for p, _ in self.files.train], [p for p, _ in self.files.val],
                               progress=False, **self.check_options())
        (run_dir / "data_check.json").write_text(json.dumps(report.to_dict(), indent=1, default=str))
        log.info("data check:\n%s", report.summary())
        report.raise_if_failed()

    # --- weights -------------------------------------------------------------------------------------------
    def load_pretrained(self, model, **strict_options) -> WeightsReport:
        """``model.pretrained`` (file, checkpoint, run, official name) loaded strictly into ``model``."""
        path = self.pretrained_file
        if path is None:
            return WeightsReport()
        from workbench.weights.pretrained import load_strict, read_state_dict

        return load_strict(model, read_state_dict(path), source=str(path), **strict_options)

    @functools.cached_property
    def pretrained_file(self) -> Optional[Path]:
        """``model.pretrained`` resolved once to a ``.pdparams`` file (an official name is fetched and checked)."""
        if not self.cfg.model.pretrained:
            return None
        from workbench.weights.pretrained import resolve_weights_file

        return resolve_weights_file(self.cfg.model.pretrained, self.cfg.tracking.tracking_uri)

