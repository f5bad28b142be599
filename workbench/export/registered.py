"""A registered version's exported pipeline folder on this machine: ``models:/<name>/<version>`` (or
``@<alias>``) → the folder ``wb export register=`` logged, downloaded once into the cache and re-pointed there
(its ``PaddleOCR.yaml`` names the folder it was exported to, on the machine it was exported on).

``wb analyze pipeline pipeline=models:/...`` runs it in PaddleX; ``wb export check=models:/...`` re-verifies it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Optional

from workbench.errors import ExportError


def registered_export(ref: str, tracking_uri: Optional[str] = None) -> Path:
    """The export folder of the registered version ``ref`` (``<cache>/registry/<server>/<name>/<version>``)."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, repoint
    from workbench.tracking.mlflow import resolve_tracking_uri
    from workbench.tracking.registry import download_version, get_version
    from workbench.weights.fetch import cache_dir

    uri = resolve_tracking_uri(tracking_uri)
    version = get_version(ref, uri)
    server = hashlib.sha256(uri.encode()).hexdigest()[:10]
    folder = cache_dir() / "registry" / server / version.name / version.version
    if not (folder / PIPELINE_YAML).is_file():
        part = folder.with_name(f".{folder.name}.part-{os.getpid()}")
        shutil.rmtree(part, ignore_errors=True)
        downloaded = download_version(version, part, uri)
        if not (downloaded / PIPELINE_YAML).is_file():
            shutil.rmtree(part, ignore_errors=True)
            raise ExportError(f"{ref} (version {version.version} of {version.name!r}): its artifacts hold no "
                              f"{PIPELINE_YAML}; it was not registered by `wb export register=`")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(downloaded, folder)
        shutil.rmtree(part, ignore_errors=True)
    repoint(folder)
    return folder
