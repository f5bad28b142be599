"""The task registry: one place that maps a task name to everything task-specific.

The trainer, ``wb eval``, ``wb export``, ``wb analyze``, ``wb data check`` and tracking ask the entry
(:class:`~workbench.tasks.entry.TaskEntry`) instead of branching on the name. A new task (say ``textline_ori``) is
its own files -- ``tasks/textline_ori.py`` (Task + ``ENTRY``), its export writer, its label check, its report,
its models in the zoo -- plus its ``ENTRY`` in :data:`TASKS` below.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from workbench.errors import ConfigError
from workbench.tasks import det, doc_ori, rec, textline_ori
from workbench.tasks.entry import TaskEntry


def _index(*entries: TaskEntry) -> Mapping[str, TaskEntry]:
    table: dict[str, TaskEntry] = {}
    for entry in entries:
        if entry.name in table:
            raise ConfigError(f"task registry: {entry.name!r} is registered twice")
        table[entry.name] = entry
    return MappingProxyType(table)


#: every task, in the order of the OCR pipeline (a page is turned upright, then text is detected, each crop turned
#: upright and read)
TASKS: Mapping[str, TaskEntry] = _index(doc_ori.ENTRY, det.ENTRY, textline_ori.ENTRY, rec.ENTRY)


def names() -> list[str]:
    return list(TASKS)


def get(name: str) -> TaskEntry:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"task={name!r}: choose {' or '.join(names())} (pick a recipe: recipe="
                          f"{' | '.join(e.recipe for e in TASKS.values())})") from None


def build_task(cfg):
    """The Task of ``cfg.task`` for the typed config ``cfg`` (``workbench.config.schema.TrainConfig``)."""
    return get(cfg.task).task(cfg)
