"""Errors the workbench raises on purpose. Each one says what is wrong and where (file, line, key)."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: an error the user can act on (the CLI prints it without a traceback)."""


class ConfigError(WorkbenchError):
    """A recipe / command-line value that cannot work."""


class DataError(WorkbenchError):
    """Bad input data. ``findings`` holds the line-numbered problems (``workbench.data.labels.Finding``)."""

    def __init__(self, message: str, findings: list | None = None):
        self.findings = list(findings or [])
        if self.findings:
            shown = "\n".join(f"  {f}" for f in self.findings[:20])
            more = f"\n  ... and {len(self.findings) - 20} more" if len(self.findings) > 20 else ""
            message = f"{message}\n{shown}{more}"
        super().__init__(message)


class WeightsError(WorkbenchError):
    """Weights that do not fit the model (missing / unexpected / shape-mismatched keys) or cannot be fetched."""


class ExportError(WorkbenchError):
    """An export that would not run, or runs differently, in the PaddleX pipeline."""
