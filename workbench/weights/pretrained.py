"""Starting weights: fetch the official ones, load any strictly (what the user named is resolved by
``workbench.weights.refs``).

Upstream skips a tensor whose shape does not fit with only a warning (PaddleOCR #10666, PaddleX #2579: accuracy
stuck at 0 after a dictionary change) and "exports" random weights when a path is wrong (#5225). Here every
missing, unexpected or shape-mismatched key is an error that lists them. The one exception is explicit: when the
recipe sets ``model.reinit_head_on_dict_change=true``, the dictionary-sized head tensors that do not fit are
re-initialised, and that is logged and recorded in the checkpoint and MLflow.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np

from workbench.errors import WeightsError
from workbench.engine.task import WeightsReport

log = logging.getLogger("workbench.weights")


def nrtr_branch_untrained(weights: Path) -> bool:
    """True when ``weights`` carry no trained NRTR branch: an import whose record (``<stem>.import.json``, written
    by ``wb weights import``) lists the branch as initialised, or a checkpoint trained from such weights with the
    backbone protected (its ``meta.json`` says so; NRTR then never shaped the backbone)."""
    record = weights.with_name(weights.stem + ".import.json")
    if record.is_file():
        try:
            parts = json.loads(record.read_text(encoding="utf-8")).get("initialised") or []
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{record}: unreadable import record ({exc})") from None
        return any(str(p.get("group", "")).startswith(("head.gtc_head", "head.sar_head")) for p in parts
                   if isinstance(p, dict))
    meta = weights.parent / "meta.json"
    if meta.is_file():
        try:
            return bool(json.loads(meta.read_text(encoding="utf-8")).get("nrtr_backbone_protected"))
        except (OSError, ValueError):
            return False
    return False


def official_pretrained_url(name: str, mirror: Optional[str] = None) -> str:
    """Where ``name``'s official ``*_pretrained.pdparams`` is downloaded from: the official URL, or the same file
    name under ``mirror`` (a URL prefix; default ``$WB_WEIGHTS_MIRROR``) for machines that reach a mirror only."""
    import os

    from workbench.models import zoo

    spec = zoo.get_spec(name)
    if not spec.pretrained_url:
        with_weights = [n for n in zoo.list_models() if zoo.get_spec(n).pretrained_url]
        raise WeightsError(f"{name} has no official pretrained weights (models that have: {', '.join(with_weights)})")
    mirror = mirror or os.environ.get("WB_WEIGHTS_MIRROR")
    if mirror:
        return mirror.rstrip("/") + "/" + spec.pretrained_url.rsplit("/", 1)[1]
    return spec.pretrained_url


def fetch_official_pretrained(
    name: str,
    *,
    cache: Optional[Path] = None,
    mirror: Optional[str] = None,
    offline: Optional[bool] = None,
    progress: bool = True,
) -> Path:
    """``name``'s official training weights in the cache (``<cache>/pretrained/<file>``), downloaded if needed.

    No sha256 is published for these files, so the first verified download records its digest next to it
    (``<file>.sha256``) and later uses check the cached copy against it (a file damaged on disk is fetched again).
    """
    from workbench.models import zoo
    from workbench.weights.fetch import cache_dir, fetch, sha256_of

    url = official_pretrained_url(name, mirror)
    dest = Path(cache or cache_dir()) / "pretrained" / url.rsplit("/", 1)[1]
    spec = zoo.get_spec(name)
    known, size = spec.pretrained_sha256, spec.pretrained_bytes
    recorded = dest.with_name(dest.name + ".sha256")
    cached = dest.is_file()
    if known is None and cached and recorded.is_file():
        known = recorded.read_text().split()[0]
    elif known is None and not cached:
        log.warning("%s: no pinned sha256 in the model table; the first download is checked against the model's "
                    "training graph and its digest recorded for later uses", name)
    path = fetch(url, dest, sha256=known, size=size, progress=progress, offline_mode=offline)
    if not (cached and recorded.is_file()):  # a fresh download (or no record yet): record what we verified
        recorded.write_text(f"{sha256_of(path)}  {path.name}\n")
    return path


def fetch_checked(name: str, **fetch_options) -> tuple[Path, int]:
    """``wb weights fetch``: ``name``'s official weights in the cache (:func:`fetch_official_pretrained`), checked
    against the training graph; a file that does not fit is moved aside (``<file>.corrupt``) so the next fetch
    downloads it anew. Returns the path and the number of tensors."""
    import os

    path = fetch_official_pretrained(name, **fetch_options)
    try:
        tensors = check_state_dict_fits(name, path)
    except WeightsError as exc:
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        raise WeightsError(f"{exc}\n  The file was moved to {bad}; run the command again to download it anew.") \
            from None
    return path, tensors


def check_state_dict_fits(name: str, path: Path) -> int:
    """Raise WeightsError unless ``path`` is a state dict with exactly the keys and shapes of ``name``'s training
    graph (what a truncated / corrupted / wrong file fails). Returns the number of tensors."""
    from workbench.models import zoo
    from workbench.models.rec import NRTR_PE_KEY

    state = read_state_dict(path)
    spec = zoo.get_spec(name)
    kwargs = {}
    if spec.task == "rec" and spec.dictionary is not None and spec.dictionary.num_ctc_classes is None:
        # a dictionary whose size the zoo does not pin: the file's CTC layer says it (the rest must still fit)
        ctc = next((state[k] for k in ("head.ctc_head.fc.weight", "head.ctc_head.fc2.weight") if k in state), None)
        if ctc is None:
            raise WeightsError(f"{path} has no CTC head: not {name}'s training state dict")
        kwargs["num_classes"] = int(ctc.shape[-1])
    own = zoo.build_model(name, **kwargs).state_dict()
    missing = [k for k in own if k not in state and k != NRTR_PE_KEY]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        raise WeightsError(
            f"{path} is not {name}'s training state dict: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} mis-shaped tensors (first: {(missing + unexpected + mismatched)[:3]})"
        )
    return len(state)


def read_state_dict(path: str | Path) -> dict:
    """A state dict from a .pdparams file, as numpy float32 arrays (fp16 files are cast: see the parity fixtures)."""
    from workbench.engine.checkpoint import read_weights

    raw = read_weights(path)  # refuses pickles that would run code (see workbench.files.safe_load)
    out = {}
    for k, v in raw.items():
        arr = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
        if arr.dtype in (np.float16, np.float64) or str(arr.dtype) == "bfloat16":
            arr = arr.astype(np.float32)
        out[k] = arr
    return out


def load_strict(
    model,
    state: dict,
    *,
    source: str,
    resizable_keys: tuple[str, ...] = (),
    allow_reinit: bool = False,
    optional_missing: tuple[str, ...] = (),
) -> WeightsReport:
    """Load ``state`` into ``model``; every key must be present with the right shape.

    ``resizable_keys``: the dictionary-sized tensors. If only those mismatch and ``allow_reinit`` is true, they keep
    the model's fresh initialisation (logged). ``optional_missing``: buffers a file may legitimately omit because
    the model builds them deterministically (e.g. the NRTR sinusoidal table).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and k not in optional_missing]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        (k, tuple(state[k].shape), tuple(own[k].shape)) for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    resizable = [m for m in mismatched if m[0] in resizable_keys]
    fatal_mismatch = [m for m in mismatched if m[0] not in resizable_keys]
    if resizable and not allow_reinit:
        fatal_mismatch += resizable
    if missing or unexpected or fatal_mismatch:
        lines = [f"{source} does not fit the model {type(model).__name__}:"]
        if fatal_mismatch:
            lines.append(f"  {len(fatal_mismatch)} shape mismatches (key: file shape vs model shape):")
            lines += [f"    {k}: {a} vs {b}" for k, a, b in fatal_mismatch[:30]]
        if missing:
            lines.append(f"  {len(missing)} keys missing from the file: " + ", ".join(missing[:30]))
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected keys in the file: " + ", ".join(unexpected[:30]))
        if resizable and not allow_reinit:
            lines.append(
                "  The dictionary-sized head does not fit: the dictionary differs from the one these weights were "
                "trained with. If that is intended, set model.reinit_head_on_dict_change=true to re-initialise "
                "those tensors (the rest of the model is still fine-tuned from the weights)."
            )
        raise WeightsError("\n".join(lines))
    import paddle

    to_load = {k: v for k, v in state.items() if k not in {m[0] for m in resizable}}
    for k, v in to_load.items():
        if str(own[k].dtype) != "paddle.float32" and own[k].dtype != paddle.float32:
            to_load[k] = v.astype(str(own[k].dtype).replace("paddle.", ""))
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in to_load.items()})
    reinit = [m[0] for m in resizable]
    report = WeightsReport(source=source, loaded_keys=len(to_load), total_keys=len(own) - len(
        [k for k in optional_missing if k in own and k not in state]), reinitialised=reinit)
    if reinit:
        msg = f"re-initialised {len(reinit)} dictionary-sized tensors (dictionary changed): {', '.join(reinit)}"
        log.warning(msg)
        report.notes.append(msg)
    omitted = [k for k in optional_missing if k in own and k not in state]
    if omitted:
        report.notes.append(f"built by the model, not in the file: {', '.join(omitted)}")
    log.info("loaded %d/%d tensors from %s", report.loaded_keys, len(own), source)
    return report


def fetch_dictionary(spec) -> Path:
    """An official dictionary (``zoo.DictionarySpec``) from the cache, downloaded and sha256-checked if needed.
    Without a pinned sha256 but with a pinned line count, the line count is checked instead (a file that differs
    is moved aside as ``<name>.corrupt``, as a failed sha256 check does)."""
    from workbench.data.charset import Charset
    from workbench.weights.fetch import cache_dir, fetch

    path = fetch(spec.url, cache_dir() / "dictionaries" / spec.file_name, sha256=spec.sha256)
    if spec.sha256 is None and spec.num_lines is not None:
        lines = len(Charset.from_file(path, use_space_char=spec.use_space_char))
        if lines != spec.num_lines:
            bad = path.with_name(path.name + ".corrupt")
            os.replace(path, bad)
            raise WeightsError(f"{spec.url} has {lines} lines, not the {spec.num_lines} the model table pins (the "
                               f"official weights' head size); moved to {bad}. Pass your own dictionary "
                               "(model.character_dict) if it is meant to differ.")
    return path
