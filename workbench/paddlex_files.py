"""The files PaddleX reads, named and recognised in one place: an *inference model folder*
(``inference.json`` or ``inference.pdmodel``, ``inference.pdiparams``, ``inference.yml``) and an *OCR pipeline
config* (``PaddleOCR.yaml`` in an export folder).

``wb weights import`` reads inference folders, ``wb export`` writes them, ``wb analyze`` runs them and the weights
resolver (``workbench.weights.refs``) recognises them; all of them ask here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

MODEL_FILE_PREFIX = "inference"  # PaddleX looks for inference.json / inference.pdiparams / inference.yml
INFERENCE_YML = "inference.yml"
PIPELINE_YAML = "PaddleOCR.yaml"  # the pipeline config an export folder holds (``wb export`` writes it)

#: The batch size of a classifier module (TextLineOrientation) in PaddleX's OCR pipeline. PaddleX 3.7.2's
#: ``BasePredictor.apply`` hands every result of a classifier batch the whole batch's ``class_ids`` array ([N, 1]: a
#: numpy array is not split per instance, only lists are), and the OCR pipeline reads ``class_ids.ravel()[0]``: with
#: batch_size 6 every crop of a batch is turned by the *first* crop's class (measured: an upside-down probe whose
#: third crop the module calls upright, 0.56, had all three crops turned). One crop per batch gives each crop its own
#: decision; the module is tiny, so the cost is small.
CLASSIFIER_BATCH_SIZE = 1


def classifier_class_id(result: Any, position: int) -> int:
    """The class PaddleX's classifier decided for the ``position``-th image of a batch, from its result (which holds
    either that image's ``class_ids`` or, PaddleX 3.7.2, the whole batch's: see :data:`CLASSIFIER_BATCH_SIZE`)."""
    import numpy as np

    ids = np.asarray(result["class_ids"])
    rows = ids.reshape(ids.shape[0], -1) if ids.ndim > 1 else ids.reshape(1, -1)
    return int(rows[position if rows.shape[0] > 1 else 0][0])


def is_inference_model_dir(path: str | Path) -> bool:
    """A PaddleX inference model folder: ``inference.yml`` + ``inference.json`` / ``.pdmodel`` + ``.pdiparams``."""
    p = Path(path)
    return (p.is_dir() and (p / INFERENCE_YML).is_file() and (p / "inference.pdiparams").is_file()
            and ((p / "inference.json").is_file() or (p / "inference.pdmodel").is_file()))


def is_pipeline_export(path: str | Path) -> bool:
    """An export folder (holding ``PaddleOCR.yaml``) or a pipeline YAML file itself."""
    p = Path(path)
    return (p.is_dir() and (p / PIPELINE_YAML).is_file()) or (p.is_file() and p.suffix in (".yaml", ".yml")
                                                               and p.name != INFERENCE_YML)


def read_inference_yml(path: str | Path, error: type[WorkbenchError] = WorkbenchError) -> dict[str, Any]:
    """Read an ``inference.yml`` (or a model folder holding one) the way PaddleX does (``yaml.SafeLoader``);
    a missing, unparsable or non-mapping file raises ``error`` naming it."""
    import yaml

    path = Path(path)
    if path.is_dir():
        path = path / INFERENCE_YML
    if not path.is_file():
        raise error(f"{path} not found: not a PaddleX inference model folder")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: not a YAML mapping")
    return data


def model_name_of(model_dir: str | Path, error: type[WorkbenchError] = WorkbenchError) -> str:
    """``Global.model_name`` of an inference model folder (``error`` naming the file when absent)."""
    data = read_inference_yml(model_dir, error=error)
    name = (data.get("Global") or {}).get("model_name")
    if not name:
        raise error(f"{Path(model_dir) / INFERENCE_YML}: no Global.model_name; PaddleX will refuse this folder")
    return str(name)


def require_registered_model(name: str, where: str, error: type[WorkbenchError] = WorkbenchError) -> None:
    """PaddleX creates a model only under a name it has registered (``Global.model_name`` of ``inference.yml``,
    ``model_name`` of a pipeline YAML); a name the installed PaddleX does not know (a newer model, a typo) is a
    one-line ``error`` saying so, with the closest names it does know, instead of PaddleX's exception deep in a
    verification run."""
    try:
        from paddlex.inference.models.bindings.registry import UnknownModelError, get_supported_engines
    except ImportError:  # a PaddleX without this registry: it will say so itself
        return
    try:
        get_supported_engines(name)
    except UnknownModelError as exc:
        import difflib
        from importlib.metadata import version

        close = difflib.get_close_matches(str(name), [str(n) for n in exc.known_models], n=3, cutoff=0.6)
        hint = f" (closest it knows: {', '.join(close)})" if close else ""
        raise error(f"{where}: the installed PaddleX {version('paddlex')} has no model named {name!r}{hint}; "
                    "use a name it knows, or a PaddleX version that has it") from None
