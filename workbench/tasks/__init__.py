"""The fine-tunable modules of the OCR pipeline: one registry (``registry.py``) and each task's own files."""

from __future__ import annotations


def build_task(cfg):
    """The Task of ``cfg.task`` (see ``workbench.tasks.registry``)."""
    from workbench.tasks.registry import build_task as build

    return build(cfg)
