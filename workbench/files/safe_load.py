"""Read Paddle weight files (``.pdparams``, ``.pdopt``) without letting them run code.

A ``.pdparams`` file is a Python pickle, and unpickling calls whatever functions the file names: a file found
online can run any code the moment ``paddle.load`` opens it. Every weights read of the workbench (starting weights
``model.pretrained``, ``checkpoint=``, resume, ``wb weights``, export, analysis) goes through :func:`load`, which
unpickles with an allow-list: numpy arrays and dtypes, numpy scalars, and plain containers (dict, list, tuple,
set) of numbers and strings. Any other name in the file (``os.system``, ``builtins.eval``, a class) refuses the
whole file, with the name and the reason, before anything is called.

``paddle.save`` writes exactly that vocabulary (a state dict is a dict of arrays; nested structures store each
tensor as a ``(name, array)`` tuple), so every file it wrote, official ``*_pretrained.pdparams`` included, loads.
Tensors come back as numpy arrays, which ``set_state_dict`` / ``set_value`` accept as they are.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import WeightsError

# (module, name) pairs a weights pickle may reference. numpy moved its core to numpy._core in 2.0; files written
# by either numpy name either path.
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [(m, "_reconstruct") for m in _NUMPY_CORE]
    + [(m, "scalar") for m in _NUMPY_CORE]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [("builtins", n) for n in ("tuple", "list", "dict", "set", "frozenset", "bytearray", "complex")]
    + [("collections", "OrderedDict")]
    # Protocol-2 pickles (Python 2 era files) spell bytes as _codecs.encode(str, "latin1"): pure data.
    + [("_codecs", "encode")]
)
# Paddle's saved-state bookkeeping (structured name -> tensor name); not a weight.
PADDLE_NAME_TABLE = "StructuredToParameterName@@"


class UnsafeWeightsFile(WeightsError):
    """The file references something that is not a tensor, array or plain container: it could run code."""


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str, allowed: frozenset):
        super().__init__(fh)
        self._source = source
        self._allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) not in self._allowed:
            raise UnsafeWeightsFile(
                f"{self._source}: refused to load: the file references {module}.{name}, which is not a tensor, "
                "array or plain container. Weight files are pickles, and this one would call that when opened; "
                "only weights are accepted (get the file from a source you trust, or re-save its tensors)"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid):  # torch-style external storage: not a Paddle weights file
        raise UnsafeWeightsFile(f"{self._source}: refused to load: it uses pickle persistent ids ({pid!r:.60}), "
                                "which Paddle weight files never do")


def loads(data: bytes, *, source: str = "<bytes>", allowed: frozenset = ALLOWED_GLOBALS) -> Any:
    """Unpickle ``data`` with the allow-list (``allowed``: (module, name) pairs). Raises :class:`WeightsError`."""
    try:
        return _AllowListUnpickler(io.BytesIO(data), source, allowed).load()
    except WeightsError:
        raise
    except Exception as exc:  # truncated / not a pickle / damaged
        raise WeightsError(f"{source}: not a readable Paddle weights file ({exc.__class__.__name__}: {exc}); "
                           "it may be truncated or damaged") from None


def _tensors_to_arrays(obj: Any) -> Any:
    """``paddle.save`` stores a tensor nested in a structure as ``(name, ndarray)``: give the array back."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], np.ndarray):
        return obj[1]
    if isinstance(obj, dict):
        return type(obj)((k, _tensors_to_arrays(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_tensors_to_arrays(v) for v in obj]
    return obj


def load(path: str | Path) -> Any:
    """The contents of a ``paddle.save`` file, tensors as numpy arrays; only data, never code (see module doc).

    A state dict comes back as ``{key: ndarray}`` (Paddle's ``StructuredToParameterName@@`` table dropped).
    Raises :class:`WeightsError` naming the file when it is missing, damaged, or references anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the weights file ({exc.strerror or exc})") from None
    if not data:
        raise WeightsError(f"{path}: the weights file is empty (0 bytes); it may have been cut off while written")
    if not data.startswith(b"\x80"):  # every pickle protocol >= 2 starts with PROTO
        raise WeightsError(f"{path}: not a readable Paddle weights file (it does not start like a pickle: "
                           f"first bytes {data[:8].hex()})")
    obj = _tensors_to_arrays(loads(data, source=str(path)))
    if isinstance(obj, dict):
        obj.pop(PADDLE_NAME_TABLE, None)
    return obj


def load_state_dict(path: str | Path) -> dict:
    """:func:`load` for files that must hold a state dict: a non-empty dict of arrays."""
    obj = load(path)
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{path}: expected a dict of tensors (a .pdparams state dict), got "
                           f"{'an empty dict' if isinstance(obj, dict) else type(obj).__name__}")
    return obj
