"""The Python API: what each ``wb`` command does, as a function (notebooks, scripts, tests).

::

    import workbench

    cfg = workbench.compose(["recipe=rec_finetune", "data.train=/my/train.txt", "data.val=/my/val.txt"])
    run = workbench.train(cfg)                                # TrainResult: run_dir, best_metric, state
    ev = workbench.evaluate(workbench.compose(["recipe=rec_finetune", f"checkpoint={run.run_dir}",
                                               "data.val=/my/val.txt"]))    # {"metrics", "run_id", ...}
    out = workbench.export_pipeline(det="runs/det/...", rec=str(run.run_dir), out="export/mine")   # verified folder
    ana = workbench.analyze_pipeline(data="/my/det_labels.txt", det="stock", rec=str(run.run_dir))
    cmp = workbench.compare("<baseline run id>", str(run.run_dir))           # Comparison (+ files written)
    rep = workbench.check_data(["recipe=rec_finetune", "data.train=/my/train.txt"])   # data check Report
    imp = workbench.import_weights("models/PP-OCRv5_mobile_rec.onnx", "weights/v5_rec.pdparams",
                                   model="PP-OCRv5_mobile_rec", dictionary="ppocrv5_dict.txt")
    path = workbench.fetch_weights("PP-OCRv5_mobile_det")      # official *_pretrained.pdparams, checked

Every function takes the same settings as its command (typed: a misspelt key is an error naming it) and returns
what the command prints from. Importing ``workbench`` stays cheap: each function imports its work when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = ["analyze_pipeline", "check_data", "compare", "compose", "evaluate", "export_pipeline", "fetch_weights",
           "import_weights", "train"]


def compose(overrides: list[str]):
    """The typed config (``workbench.config.schema.TrainConfig``) of ``wb train`` / ``wb eval`` for Hydra
    ``overrides``, e.g. ``["recipe=rec_finetune", "data.train=/my/train.txt"]``."""
    from workbench.config.compose import compose_train_config

    return compose_train_config(overrides)


def train(cfg, run_dir: Optional[str | Path] = None):
    """``wb train``: train ``cfg`` (``TrainConfig``, e.g. from :func:`compose`); returns a ``TrainResult``
    (``run_dir``, ``best_metric``, ``best_step``, ``state``). ``run_dir`` defaults to ``trainer.output_dir``, else
    ``runs/<task>/<time>``."""
    from workbench.api.training import run_training

    return run_training(cfg, Path(run_dir) if run_dir else None)


def evaluate(cfg, run_dir: Optional[str | Path] = None) -> dict:
    """``wb eval``: evaluate ``cfg.checkpoint`` on ``cfg.data.val``; returns ``{"metrics", "run_id", "run_dir",
    "files", "model", "data"}``."""
    from workbench.api.evaluation import run_eval

    return run_eval(cfg, Path(run_dir) if run_dir else None)


def export_pipeline(cfg=None, **keys):
    """``wb export`` (``export`` is the name of the package ``workbench.export``): an ``ExportConfig``
    (``workbench.export.config``), or its keys (``det=``, ``rec=``, ``out=``, ...); returns an ``ExportResult``
    (``folder``, verification ``report``, ``command``, ``tracking``)."""
    from workbench.export.config import ExportConfig
    from workbench.export.run import run_export

    return run_export(cfg if cfg is not None else _typed(ExportConfig, keys, "workbench.export_pipeline"))


def analyze_pipeline(cfg=None, **keys) -> dict:
    """``wb analyze pipeline``: an ``AnalyzeConfig`` (``workbench.analysis.run``), or its keys (``data=``,
    ``det=``, ``rec=``, ``out=``, ...); returns ``{"verdict", "summary", "files", "out_dir", ...}``."""
    from workbench.analysis.run import AnalyzeConfig, run_analysis

    return run_analysis(cfg if cfg is not None else _typed(AnalyzeConfig, keys, "workbench.analyze_pipeline"))


def compare(a: str, b: str, *, metric: Optional[str] = None, out: Optional[str | Path] = None,
            tracking_uri: Optional[str] = None, max_cases: int = 100, task: Optional[str] = None):
    """``wb compare A B``: two evaluations of one module (run ids, run dirs, report dirs or registered versions
    ``models:/<name>/<version>``: the training runs of their ``task`` module); writes
    ``compare.json`` / ``compare.html`` into ``out`` (default ``reports/compare_<A>_<B>``) and returns the
    ``Comparison`` (``regressed_on_metric``, ``metrics``, ``fixed``, ``regressed``, ``files`` written)."""
    from workbench.analysis.compare import run_compare

    return run_compare(a, b, metric=metric, out_dir=Path(out) if out else None, tracking_uri=tracking_uri,
                       max_cases=max_cases, task=task)


def check_data(recipe, *, out: Optional[str | Path] = None):
    """``wb data check recipe=...``: the check ``wb train`` runs first, on the data and dictionary of a recipe
    (Hydra overrides, or a ``TrainConfig``); writes the report into ``out`` (default
    ``outputs/data_check/<task>-<time>``) and returns it (``ok``, ``summary()``, ``findings``, ...)."""
    from workbench.config.schema import TrainConfig
    from workbench.data.check import run_check
    from workbench.tasks.registry import build_task

    cfg = recipe if isinstance(recipe, TrainConfig) else compose(list(recipe))
    task = build_task(cfg)
    return run_check(task.label_check(), [p for p, _ in task.files.train], [p for p, _ in task.files.val],
                     out_dir=out, policy=task.policy, root=cfg.data.root)


def fetch_weights(name: str, **options) -> Path:
    """``wb weights fetch``: ``name``'s official training weights in the cache, checked against the training graph
    (``options``: ``cache``, ``mirror``, ``offline``, ``progress``)."""
    from workbench.weights.pretrained import fetch_checked

    return fetch_checked(name, **options)[0]


def import_weights(source: str | Path, out: str | Path, **options):
    """``wb weights import``: an ONNX export or a Paddle inference folder → ``out`` (``.pdparams``), checked
    against the source runtime, with ``<out>.import.json`` (and ``<out>.dict.txt``) beside it. ``options``: the
    fields of ``workbench.weights.importing.ImportOptions`` (``model``, ``dictionary``, ``calib``, ``probe``, ...).
    Returns an ``ImportOutcome`` (``record``, ``parity``, ``usage``)."""
    from workbench.weights.importing import ImportOptions, import_weights as run

    return run(ImportOptions(source=Path(source), out=Path(out), **options))


def _typed(schema, keys: dict, what: str):
    """A dataclass config from keyword arguments, validated like the command line (unknown keys are errors)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from workbench.errors import ConfigError

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), keys))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{what}: {str(exc).splitlines()[0]}") from None
