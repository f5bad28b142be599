"""The MLflow model registry, as the workbench uses it: a registered version is a verified export.

``wb export ... register=<name>`` logs the export folder to an export run and registers it as a new version of
``<name>`` whose tags say where it came from (:func:`version_tags`):

==========================  ==================================================================================
tag                         value
==========================  ==================================================================================
``wb.<task>_run``           the MLflow run that trained the fine-tuned module ``<task>`` (det, rec)
``wb.<task>_checkpoint``    the checkpoint version it was exported from (``.../checkpoints/step-00000040``:
                            the folder ``best`` (or ``latest``) pointed at)
``wb.<task>_model``         the module's PaddleX model name (also for stock or copied modules)
``wb.<task>_module``        ``fine-tuned`` (exported from a checkpoint), ``folder`` (a model folder copied in)
                            or ``stock`` (PaddleX downloads it)
``wb.export_run``           the run holding the export (artifacts under ``export/``)
``wb.verification``         the verification report: ``runs:/<export run>/export/verification.md``
``wb.verified``             ``true`` when every check passed (an export that fails is never registered)
``wb.export_folder``        where the folder was written
==========================  ==================================================================================

``models:/<name>/<version>`` and ``models:/<name>@<alias>`` are then accepted wherever weights are named
(``workbench.weights.refs``): the version's training run of the module asked for, or the exported pipeline
(:func:`download_version`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from workbench.tracking.hints import TrackingError, mlflow_call

PREFIX = "models:/"
ARTIFACT_PATH = "export"  # where the export folder sits in the export run
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")


@dataclass
class ModelVersion:
    name: str
    version: str
    run_id: Optional[str]  # the export run
    source: str
    tags: dict = field(default_factory=dict)
    aliases: list = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"{PREFIX}{self.name}/{self.version}"

    def training_run(self, task: str) -> Optional[str]:
        return self.tags.get(f"wb.{task}_run") or None

    def checkpoint(self, task: str) -> Optional[str]:
        return self.tags.get(f"wb.{task}_checkpoint") or None

    def module_model(self, task: str) -> Optional[str]:
        return self.tags.get(f"wb.{task}_model") or None

    def module_kind(self, task: str) -> Optional[str]:
        """``fine-tuned`` / ``folder`` / ``stock`` (None: the version does not say)."""
        return self.tags.get(f"wb.{task}_module") or None

    def fine_tuned(self) -> list[str]:
        """The tasks whose module was fine-tuned (exported from a checkpoint) in this version."""
        keys = sorted({k[3:].rsplit("_", 1)[0] for k in self.tags
                       if k.startswith("wb.") and (k.endswith("_run") or k.endswith("_checkpoint"))
                       and k not in ("wb.export_run",)})
        return keys


def parse_uri(ref: str) -> tuple[str, Optional[str], Optional[str]]:
    """``models:/name/3`` → ``("name", "3", None)``; ``models:/name@champion`` → ``("name", None, "champion")``."""
    m = _URI.match(ref)
    if not m:
        raise TrackingError(f"{ref}: a registered model is named models:/<name>/<version> or models:/<name>@<alias>")
    return m["name"], m["version"], m["alias"]


def get_version(ref: str, tracking_uri: Optional[str] = None) -> ModelVersion:
    """The registered version ``ref`` names; a missing model, version or alias is a one-line error listing what
    there is."""
    from mlflow.exceptions import MlflowException

    from workbench.tracking.mlflow import _client, resolve_tracking_uri

    name, version, alias = parse_uri(ref)
    uri = resolve_tracking_uri(tracking_uri)
    with mlflow_call(uri, ref):
        client = _client(uri)
        try:
            mv = client.get_model_version(name, version) if version else client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code) and "INVALID_PARAMETER_VALUE" not in str(
                    exc.error_code):
                raise
            raise TrackingError(f"{ref}: {_what_there_is(client, name, uri)}") from None
    return ModelVersion(name=mv.name, version=str(mv.version), run_id=mv.run_id, source=mv.source,
                        tags=dict(mv.tags or {}), aliases=list(getattr(mv, "aliases", []) or []))


def _what_there_is(client, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return f"no registered model {name!r} at {uri}"
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    aliases = ", ".join(f"@{a}" for a in (model.aliases or {}))
    return (f"registered model {name!r} has versions {', '.join(map(str, versions)) or 'none'}"
            + (f" and aliases {aliases}" if aliases else " and no aliases"))


def version_tags(*, export_run: str, folder: str | Path, verified: bool, modules: dict, exported: dict) -> dict:
    """The tags of a registered version (see the module's table). ``modules``: ``{task: {"name": ...}}``;
    ``exported``: ``{task: ExportSource.describe()}`` of the fine-tuned ones."""
    tags = {"wb.export_run": export_run, "wb.verification": f"runs:/{export_run}/{ARTIFACT_PATH}/verification.md",
            "wb.verified": str(bool(verified)).lower(), "wb.export_folder": str(Path(folder).resolve())}
    for task, m in modules.items():
        tags[f"wb.{task}_model"] = m["name"]
        tags[f"wb.{task}_module"] = "fine-tuned" if task in exported else ("folder" if m.get("dir") else "stock")
    for task, info in exported.items():
        if info.get("mlflow_run_id"):
            tags[f"wb.{task}_run"] = info["mlflow_run_id"]
        tags[f"wb.{task}_checkpoint"] = info["checkpoint"]
    return tags


def register_version(name: str, run_id: str, *, description: str, tags: dict, alias: Optional[str] = None,
                     tracking_uri: Optional[str] = None) -> str:
    """``runs:/<run_id>/export`` as a new version of ``name`` (created when missing), with ``tags`` and, when
    given, ``alias`` moved to it; returns the version number."""
    from workbench.tracking.mlflow import register_model_version, resolve_tracking_uri, _client

    uri = resolve_tracking_uri(tracking_uri)
    with mlflow_call(uri, f"registering {name!r}"):
        version = register_model_version(name, run_id, ARTIFACT_PATH, description=description, tags=tags,
                                         tracking_uri=uri)
        if alias:
            _client(uri).set_registered_model_alias(name, alias, version)
    return version


def download_version(version: ModelVersion, dst: str | Path, tracking_uri: Optional[str] = None) -> Path:
    """The version's export folder, downloaded into ``dst`` (which it returns)."""
    from mlflow.artifacts import download_artifacts

    from workbench.tracking.mlflow import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    with mlflow_call(uri, f"downloading {version.uri}"):
        if version.run_id:
            path = download_artifacts(run_id=version.run_id, artifact_path=ARTIFACT_PATH, dst_path=str(dst),
                                      tracking_uri=uri)
        else:
            path = download_artifacts(artifact_uri=version.source, dst_path=str(dst), tracking_uri=uri)
    return Path(path)
