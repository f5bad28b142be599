"""A task's registry entry: what the rest of the workbench asks a task instead of branching on its name."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.tasks.export_writer import ExportWriter


@dataclass(frozen=True)
class TaskEntry:
    """One fine-tunable module of the OCR pipeline.

    A task is its own files plus this entry, listed once in ``workbench.tasks.registry``:

    * ``task``: the trainer's :class:`~workbench.engine.task.Task` subclass -- dataset reader, model family (zoo
      names of its ``task``), loss, metric and report (``Task.write_report``);
    * ``export_writer``: how ``wb export`` turns its checkpoint into a PaddleX inference model
      (:class:`~workbench.tasks.export_writer.ExportWriter`);
    * ``label_check``: its ``wb data check`` (a :class:`~workbench.data.check.common.LabelCheck` subclass; the
      trainer's pre-flight check is the instance ``Task.label_check()`` returns);
    * ``pipeline_module``: its section under ``SubModules`` of PaddleX's OCR pipeline config;
    * ``stock_model``: the official model ``stock`` means (``wb analyze``, ``wb export``);
    * ``select_metric``: the metric that says "better" (the recipes' ``eval.select_metric``, ``wb compare``'s
      default, the baseline comparison of tracking);
    * ``recipe``: the recipe that fine-tunes it (commands ``wb`` prints name it).
    """

    name: str  # recipes' `task:`, checkpoint meta.json "task", MLflow tag wb.task, `wb data check <name>`
    title: str  # "text recognition": reports, READMEs, messages
    task: type
    export_writer: ExportWriter
    label_check: type
    pipeline_module: str
    stock_model: str
    select_metric: str
    recipe: str
