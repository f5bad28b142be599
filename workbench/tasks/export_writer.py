"""What ``wb export`` needs to know about one task: :class:`ExportWriter`.

The export machinery (``workbench.export``) is generic: it resolves a checkpoint, checks what every checkpoint
must satisfy (trained, starting weights complete, weights that fit), saves the inference graph, writes
``inference.yml`` and the pipeline YAML, and verifies the folder in PaddleX. What differs per task is here, one
subclass per task (``det_export.py``, ``rec_export.py``, ``orientation_export.py``), named by the task's registry
entry.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple


def recorded_eval_settings(checkpoint, task: str) -> dict:
    """The ``eval.<task>`` section of the config a checkpoint's run trained with (``config.yaml``; ``{}`` when
    absent): the evaluation settings an export should reproduce."""
    import yaml

    config = yaml.safe_load(checkpoint.config_yaml or "") or {}
    return (config.get("eval") or {}).get(task) or {}


class ModuleSettings(NamedTuple):
    """A module's settings at export: ``pipeline`` goes into its section of the pipeline YAML (what PaddleX's
    pipeline reads), ``model`` into its own ``inference.yml`` (what the model reads when used on its own)."""

    pipeline: dict
    model: dict


class FileCheck(NamedTuple):
    """One comparison of an exported file with the trained model (the export verification's ``files`` stage)."""

    what: str
    value: Any
    limit: Any
    passed: bool


class ExportWriter:
    """How one task's checkpoint becomes a PaddleX inference model folder."""

    task: ClassVar[str] = "?"
    #: the pipeline runs without this module (its switch stays off unless the export is given one): orientation
    optional: ClassVar[bool] = False
    #: the settings its section of the pipeline YAML takes (what :meth:`settings` may return for the pipeline)
    pipeline_keys: ClassVar[tuple[str, ...]] = ()
    #: comment lines written at the top of its ``inference.yml`` (what PaddleX reads from it and where to edit)
    yml_notes: ClassVar[tuple[str, ...]] = ()

    def checkpoint_facts(self, checkpoint, spec, where: str, dictionary=None) -> dict:
        """Task-specific checks of a checkpoint (beyond the common ones) and the facts the export needs from it:
        the :class:`~workbench.export.inference_model.ExportSource` fields ``charset`` and ``image_shape``.
        ``spec``: the model's zoo spec; ``dictionary``: a dictionary file the user gave (rec); ``where``: how to
        name the checkpoint in an :class:`~workbench.errors.ExportError`."""
        return {}

    def input_spec(self, source) -> list:
        """``paddle.static.InputSpec`` s of the saved graph (which dimensions stay dynamic)."""
        raise NotImplementedError

    def settings(self, cfg, source, base: dict) -> ModuleSettings:
        """The module's settings: ``base`` (its section of PaddleX's default pipeline config), then the
        training run's evaluation settings (``source``: None for a stock or copied module), then the export's
        command line (``cfg``: ``workbench.export.config.ExportConfig``)."""
        return ModuleSettings({}, {})

    def inference_config(self, source, model_settings: dict) -> dict:
        """The ``inference.yml`` content (``Global.model_name``, ``PreProcess``, ``PostProcess``)."""
        raise NotImplementedError

    def file_checks(self, inference_yml: dict, source) -> list[FileCheck]:
        """Compare the written ``inference.yml`` with what the model trained with (beyond the model name)."""
        return []
