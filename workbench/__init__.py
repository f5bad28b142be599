"""OCR Workbench: fine-tune PaddleOCR's general OCR pipeline on private data and ship the result.

The Python API (``workbench.api``) is reachable from here: ``workbench.compose``, ``workbench.train``,
``workbench.evaluate``, ``workbench.export_pipeline``, ``workbench.analyze_pipeline``, ``workbench.compare``,
``workbench.check_data``, ``workbench.fetch_weights``, ``workbench.import_weights``. Importing ``workbench``
imports none of them (Paddle, MLflow and Hydra take seconds): each is looked up when first used.
"""

__version__ = "0.1.0"

_API = ("analyze_pipeline", "check_data", "compare", "compose", "evaluate", "export_pipeline", "fetch_weights",
        "import_weights", "train")


def __getattr__(name: str):
    if name in _API:
        from workbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
