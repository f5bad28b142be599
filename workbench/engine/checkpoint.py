"""Checkpoints: one directory each, complete or absent, holding everything a resume or an export needs.

Layout of ``<run_dir>/checkpoints/``::

    step-00000048/      one checkpoint version (below); never changed once written
    step-00000040/
    latest -> step-00000048     symbolic links, re-pointed atomically
    previous -> step-00000040   what ``latest`` was before (the fallback of a resume)
    best -> step-00000040

    <version>/model.pdparams    model weights (official state-dict keys)
              ema.pdparams      EMA weights (when EMA is on)
              optimizer.pdopt   optimizer state (moments, LR scheduler)
              state.json        global step, epoch, position in the epoch, best metric, RNG states, trained flag
              meta.json         task, model name, dictionary sha256, how the starting weights loaded
              config.yaml       the composed config of the run
              dict.txt          rec only: the exact training dictionary (export writes it into inference.yml)
              eval_result.pkl   the evaluation this checkpoint was saved after (metrics + per-sample records)
              manifest.json     size and sha256 of every file above; written last

Why it survives a SIGKILL, a power cut or a full disk at any instant: a version is written under a temporary
name, every file and the folder are fsync'ed, and only then is it renamed into place; ``latest`` / ``best`` /
``previous`` are symbolic links replaced by ``rename(2)``, which is atomic, so a reader sees the old complete
checkpoint or the new complete one, never a half-written one (replacing a *directory* cannot be atomic: the old
layout renamed ``latest`` away first and a kill in between left no ``latest`` at all). A write that fails (disk
full) removes its temporary folder and leaves the links where they were. Versions no link points to are deleted
after each update. On resume, :func:`load_resumable` checks the manifest; a truncated or damaged ``latest``
gives a clear error and the newest intact version (normally ``previous``) is used instead, with a warning.
This also fixes upstream's resume, which loses the best metric and the global step (#18108).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from workbench.errors import WorkbenchError

log = logging.getLogger("workbench.checkpoint")

MODEL_FILE = "model.pdparams"
EMA_FILE = "ema.pdparams"
EMA_COUNTER_KEY = "updates"  # ema.pdparams also stores how many updates its average holds
OPTIMIZER_FILE = "optimizer.pdopt"
STATE_FILE = "state.json"
META_FILE = "meta.json"
CONFIG_FILE = "config.yaml"
DICT_FILE = "dict.txt"
EVAL_FILE = "eval_result.pkl"
MANIFEST_FILE = "manifest.json"
LINKS = ("latest", "previous", "best")
_VERSION = re.compile(r"^step-(\d{8})(?:\.(\d+))?$")
_TMP_PREFIX = ".tmp-"


class CheckpointError(WorkbenchError):
    """A checkpoint that cannot be used (damaged, truncated, missing files) or cannot be written."""


class DiskFullError(CheckpointError):
    """A checkpoint write ran out of space (or hit the file-size limit); nothing was left half-written."""


@dataclass
class TrainState:
    """Where training is. Saved with every checkpoint; restoring it continues the run exactly."""

    global_step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    samples_seen: int = 0
    best_metric: Optional[float] = None
    best_step: Optional[int] = None
    evals_without_improvement: int = 0
    last_metrics: dict = field(default_factory=dict)
    # Fine-tuning: the starting weights' evaluation on the same val set, before the first step (empty: none).
    start_metrics: dict = field(default_factory=dict)
    rng: dict = field(default_factory=dict)
    finished: bool = False
    # The batch geometry the position above was counted in (resume on another device count converts it).
    world_size: int = 1
    batch_size: int = 0
    grad_accum_steps: int = 1


def capture_rng() -> dict:
    """Python, numpy and Paddle RNG states, JSON-serialisable (Paddle's GeneratorState pickles; kept as hex)."""
    import pickle

    import paddle

    py_state = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "paddle": [pickle.dumps(s).hex() for s in paddle.get_rng_state()],
    }


# A GeneratorState pickles as the class plus (seed, offset, ...) numbers; nothing else may be named.
_RNG_GLOBALS = frozenset({("paddle.base.libpaddle", "GeneratorState"), ("paddle.fluid.libpaddle", "GeneratorState")})


def restore_rng(state: dict) -> None:
    import paddle

    from workbench.files.safe_load import loads

    if not state:
        return
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    paddle.set_rng_state([loads(bytes.fromhex(h), source="state.json rng.paddle", allowed=_RNG_GLOBALS)
                          for h in state["paddle"]])


# --- writing ----------------------------------------------------------------------------------------------------
def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename / new entry in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _nbytes(obj: Any) -> int:
    """Bytes the tensors / arrays in ``obj`` take (what their files will need, give or take the pickle framing)."""
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    shape, size = getattr(obj, "shape", None), getattr(obj, "element_size", None)
    if shape is not None and callable(size):
        return int(np.prod(shape, dtype=np.int64)) * int(size())
    return 0


_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _disk_full(exc: BaseException) -> Optional[OSError]:
    """The OSError behind ``exc`` when it is a full disk / quota / file-size limit (Paddle may wrap it)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _plain(obj: Any) -> Any:
    """Numbers, strings, arrays and containers as they are; anything else as its string (what the safe loader
    reads back)."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, np.ndarray, np.generic)):
        return obj
    if isinstance(obj, dict):
        return {(k if isinstance(k, (str, int, float, bool)) else str(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return str(obj)


def _next_version(parent: Path, step: int) -> Path:
    base = f"step-{step:08d}"
    if not (parent / base).exists():
        return parent / base
    n = 1
    while (parent / f"{base}.{n}").exists():
        n += 1
    return parent / f"{base}.{n}"


def save_checkpoint(
    directory: str | Path,
    *,
    model_state: dict,
    train_state: TrainState,
    meta: dict,
    optimizer_state: Optional[dict] = None,
    ema_state: Optional[dict] = None,
    config_yaml: Optional[str] = None,
    dictionary_lines: Optional[list[str]] = None,
    eval_result: Any = None,
) -> Path:
    """Write a new checkpoint version next to ``directory`` and point the link ``directory`` (e.g.
    ``<run>/checkpoints/latest``) at it, atomically (see the module doc). Saving ``latest`` first points
    ``previous`` at the version ``latest`` leaves. A full disk raises :class:`DiskFullError` naming the file and the
    bytes needed, with nothing left behind. Returns ``directory``."""
    import paddle

    from workbench.faults import fault_point

    directory = Path(directory)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{directory.name}-", dir=parent))
    current = tmp
    try:
        files: list[tuple[str, Any]] = [(MODEL_FILE, model_state)]
        if ema_state is not None:
            files.append((EMA_FILE, ema_state))
        if optimizer_state is not None:
            files.append((OPTIMIZER_FILE, optimizer_state))
        for i, (name, obj) in enumerate(files):
            current = tmp / name
            paddle.save(obj, str(current))
            if i == 0:
                fault_point("checkpoint_write")  # the drill kills here: one file written, the rest not
        texts = {STATE_FILE: json.dumps(asdict(train_state), indent=1),
                 META_FILE: json.dumps(meta, indent=1, default=str)}
        if config_yaml is not None:
            texts[CONFIG_FILE] = config_yaml
        if dictionary_lines is not None:
            texts[DICT_FILE] = "\n".join(dictionary_lines) + "\n"
        for name, text in texts.items():
            current = tmp / name
            current.write_text(text, encoding="utf-8")
        if eval_result is not None:
            import pickle

            current = tmp / EVAL_FILE
            plain = {"metrics": _plain(eval_result.metrics), "records": _plain(eval_result.records),
                     "extra": _plain(eval_result.extra)}
            current.write_bytes(pickle.dumps(plain, protocol=4))
        manifest = {}
        for p in sorted(tmp.iterdir()):
            _fsync_file(p)
            manifest[p.name] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        current = tmp / MANIFEST_FILE
        current.write_text(json.dumps({"format": 1, "files": manifest}, indent=1))
        _fsync_file(current)
        fsync_dir(tmp)
        version = _next_version(parent, train_state.global_step)
        current = version
        os.rename(tmp, version)
        fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = _disk_full(exc) if isinstance(exc, Exception) else None
        if full is not None:
            needed = _nbytes(model_state) + _nbytes(ema_state) + _nbytes(optimizer_state) + 64 * 1024
            try:
                free = f"{shutil.disk_usage(parent).free:,} bytes free there"
            except OSError:
                free = "free space unknown"
            raise DiskFullError(
                f"cannot write checkpoint {directory}: {full.strerror or full} while writing {current.name} "
                f"(the checkpoint needs about {needed:,} bytes; {free}). The previous checkpoint is intact and "
                "nothing half-written was left; free some space and resume with trainer.resume=<run dir>"
            ) from None
        raise
    if directory.name == "latest":
        old = link_target(directory)
        if old is not None:
            point_link(parent / "previous", old)
    point_link(directory, version)
    collect_garbage(parent)
    return directory


def link_target(link: Path) -> Optional[Path]:
    """The version a checkpoint link points to (None: no link, or an old-layout real directory)."""
    if link.is_symlink():
        return link.parent / os.readlink(link)
    return None


def point_link(link: Path, version: Path) -> None:
    """Atomically make ``link`` (a symlink beside ``version``) point to ``version``. An old-layout real directory
    at ``link`` is first kept as a version of its own."""
    link, version = Path(link), Path(version)
    if link.exists() and not link.is_symlink():  # old layout: `latest` was a directory
        legacy = _next_version(link.parent, _step_of_dir(link))
        os.rename(link, legacy)
        if version == link:
            version = legacy
    tmp = link.with_name(f"{_TMP_PREFIX}{link.name}-link-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version.name, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Publish the checkpoint ``src`` (e.g. ``latest``) also as ``dst`` (``best``): the link ``dst`` points to the
    same version (no copy, atomic). ``src`` outside a checkpoints folder is copied into a version first."""
    src, dst = Path(src), Path(dst)
    version = link_target(src)
    if version is None or version.parent.resolve() != dst.parent.resolve():
        version = _next_version(dst.parent, _step_of_dir(src))
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{dst.name}-", dir=dst.parent))
        try:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
            fsync_dir(tmp)
            os.rename(tmp, version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    point_link(dst, version)
    collect_garbage(dst.parent)
    return dst


def _step_of_dir(path: Path) -> int:
    try:
        return int(json.loads((Path(path) / STATE_FILE).read_text()).get("global_step", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def versions(folder: Path) -> list[Path]:
    """Checkpoint versions in ``folder``, newest (highest step, then latest written) first."""
    found = []
    for p in Path(folder).iterdir() if Path(folder).is_dir() else []:
        m = _VERSION.match(p.name)
        if m and p.is_dir() and not p.is_symlink():
            found.append((int(m.group(1)), int(m.group(2) or 0), p))
    return [p for *_, p in sorted(found, reverse=True)]


def collect_garbage(folder: Path) -> None:
    """Delete versions no link points to, and temporary folders of writes that were killed."""
    folder = Path(folder)
    keep = {t.name for t in (link_target(folder / n) for n in LINKS) if t is not None}
    for v in versions(folder):
        if v.name not in keep:
            shutil.rmtree(v, ignore_errors=True)
    for p in folder.iterdir():
        if p.name.startswith(_TMP_PREFIX):
            if p.is_symlink() or p.is_file():
                p.unlink(missing_ok=True)
            else:
                shutil.rmtree(p, ignore_errors=True)


# --- reading ----------------------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A checkpoint directory read back from disk."""

    path: Path
    state: TrainState
    meta: dict

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def ema_file(self) -> Optional[Path]:
        p = self.path / EMA_FILE
        return p if p.is_file() else None

    @property
    def optimizer_file(self) -> Optional[Path]:
        p = self.path / OPTIMIZER_FILE
        return p if p.is_file() else None

    @property
    def dict_file(self) -> Optional[Path]:
        p = self.path / DICT_FILE
        return p if p.is_file() else None

    @property
    def config_yaml(self) -> Optional[str]:
        p = self.path / CONFIG_FILE
        return p.read_text() if p.is_file() else None

    @property
    def weights_file(self) -> Path:
        """The weights this run evaluated and picked its best checkpoint on, and that `wb export` ships: the EMA
        average when the run kept one (``trainer.ema``), else the raw weights. `wb eval checkpoint=<run>` and
        ``model.pretrained=<run>`` load these too: the raw ones scored 0.8871 where the run had measured 0.8847 for
        the same checkpoint (receipts rec fine-tune), a difference nobody could explain from the logs."""
        return self.ema_file or self.model_file

    def load_weights(self, which: str = "auto") -> tuple[dict, Path]:
        """(state dict, file it came from) for ``which``: ``auto`` (:attr:`weights_file`), ``model`` or ``ema``.

        ``ema.pdparams`` holds the float entries and the average's update counter; anything else comes from the raw
        weights, so the result always has the model's full key set."""
        from workbench.files.safe_load import load, load_state_dict

        if which not in ("auto", "model", "ema"):
            raise CheckpointError(f"weights={which!r}: choose auto, model or ema")
        f = {"auto": self.weights_file, "model": self.model_file, "ema": self.ema_file}[which]
        if f is None:
            raise CheckpointError(f"{self.path}: weights=ema but the checkpoint has no {EMA_FILE}")
        raw = load_state_dict(self.model_file)
        if f == self.model_file:
            return raw, f
        ema = dict(load(f))
        ema.pop(EMA_COUNTER_KEY, None)
        return {k: ema.get(k, v) for k, v in raw.items()}, f

    def load_eval_result(self):
        """The evaluation this checkpoint was saved after (an ``EvalResult``), or None."""
        p = self.path / EVAL_FILE
        if not p.is_file():
            return None
        from workbench.engine.task import EvalResult
        from workbench.files.safe_load import load

        raw = load(p)
        return EvalResult(**raw) if isinstance(raw, dict) and "metrics" in raw else None


def is_checkpoint_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / MODEL_FILE).is_file() and (path / STATE_FILE).is_file()


def verify_checkpoint(path: str | Path) -> None:
    """Raise :class:`CheckpointError` saying what is wrong unless every file of the checkpoint is complete: sizes
    and sha256 against ``manifest.json`` (checkpoints written before manifests: each weights file must unpickle)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    manifest_file = path / MANIFEST_FILE
    if manifest_file.is_file():
        try:
            files = json.loads(manifest_file.read_text())["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: damaged {MANIFEST_FILE} ({exc})") from None
        for name, want in files.items():
            f = path / name
            if not f.is_file():
                raise CheckpointError(f"{path}: {name} is missing")
            size = f.stat().st_size
            if size != want["bytes"]:
                raise CheckpointError(f"{path}: {name} has {size:,} of its {want['bytes']:,} bytes (truncated)"
                                      if size < want["bytes"] else
                                      f"{path}: {name} has {size:,} bytes, {want['bytes']:,} expected")
            if _sha256(f) != want["sha256"]:
                raise CheckpointError(f"{path}: {name} is damaged (sha256 differs from {MANIFEST_FILE})")
        return
    if not is_checkpoint_dir(path):
        raise CheckpointError(f"{path}: {MODEL_FILE} or {STATE_FILE} is missing")
    from workbench.errors import WeightsError
    from workbench.files.safe_load import load

    for name in (MODEL_FILE, OPTIMIZER_FILE, EMA_FILE):
        if (path / name).is_file():
            try:
                load(path / name)
            except WeightsError as exc:
                raise CheckpointError(str(exc)) from None


def read_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not is_checkpoint_dir(path):
        raise CheckpointError(f"{path} is not a workbench checkpoint (expected {MODEL_FILE} and {STATE_FILE})")
    try:
        state_raw: dict[str, Any] = json.loads((path / STATE_FILE).read_text())
        meta_path = path / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable {STATE_FILE} / {META_FILE} ({exc}); the checkpoint is damaged") \
            from None
    known = set(TrainState.__dataclass_fields__)
    state = TrainState(**{k: v for k, v in state_raw.items() if k in known})
    return Checkpoint(path=path, state=state, meta=meta)


def weights_file_of_checkpoint(path: str | Path) -> Optional[str]:
    """``"model"`` or ``"ema"`` when ``path`` is a checkpoint's own weights file (``model.pdparams`` /
    ``ema.pdparams`` inside a checkpoint directory), else None: the one rule for "is this file a checkpoint's"."""
    path = Path(path)
    which = {MODEL_FILE: "model", EMA_FILE: "ema"}.get(path.name)
    return which if which and path.is_file() and is_checkpoint_dir(path.parent) else None


def read_weights(path: str | Path) -> dict:
    """The state dict in a weights file; a checkpoint's ``ema.pdparams`` comes completed as
    :meth:`Checkpoint.load_weights` completes it (so it loads strictly like any other weights file)."""
    from workbench.files.safe_load import load_state_dict

    path = Path(path)
    if weights_file_of_checkpoint(path) == "ema":
        return read_checkpoint(path.parent).load_weights("ema")[0]
    return load_state_dict(path)


def load_resumable(path: str | Path) -> Checkpoint:
    """The checkpoint at ``path``, verified; when it is damaged, the newest intact version beside it (normally
    ``previous``), with a warning naming both. ``latest`` and ``previous`` are then re-pointed at the good one and
    the damaged version is kept aside as ``damaged-<name>`` (never silently deleted)."""
    path = Path(path)
    try:
        verify_checkpoint(path)
        return read_checkpoint(path)
    except CheckpointError as exc:
        problem = exc
    folder = path.parent
    bad = link_target(path) or path
    for candidate in versions(folder):
        if candidate.resolve() == bad.resolve():
            continue
        try:
            verify_checkpoint(candidate)
            c = read_checkpoint(candidate)
        except CheckpointError:
            continue
        log.warning("%s; resuming from the previous good checkpoint %s (step %d) instead", problem, candidate,
                    c.state.global_step)
        if bad.is_dir() and _VERSION.match(bad.name):
            os.rename(bad, folder / f"damaged-{bad.name}")
        for name in ("latest", "previous"):
            if (folder / name).is_symlink() or not (folder / name).exists():
                point_link(folder / name, candidate)
        return c
    raise CheckpointError(f"{problem}; and no intact earlier checkpoint in {folder} to fall back to")


def find_checkpoint(ref: str | Path, prefer: str = "latest") -> Path:
    """Resolve a run directory or checkpoint directory to a checkpoint directory.

    ``ref`` may be the checkpoint dir itself, or a run dir holding ``checkpoints/<prefer>``.
    (MLflow run ids are resolved by ``workbench.engine.runs``.)
    """
    p = Path(ref)
    if is_checkpoint_dir(p):
        return p
    for candidate in (p / "checkpoints" / prefer, p / prefer):
        if is_checkpoint_dir(candidate):
            return candidate
    if prefer == "latest":  # killed after a version was renamed into place, before `latest` pointed at it
        for candidate in versions(p / "checkpoints"):
            if is_checkpoint_dir(candidate):
                return candidate
    raise CheckpointError(f"no checkpoint found at {ref} (looked for {ref}/checkpoints/{prefer})")


# --- optimizer state keyed by structured parameter names ------------------------------------------------------
# Paddle keys optimizer state by auto-generated tensor names ("linear_8.w_0_moment1_0") that depend on how many
# layers the process built before; a resumed run (or a second run in one process) gets other names and Paddle's
# own set_state_dict fails. We store the state by the model's structured names instead.
PORTABLE_FORMAT = "workbench-optimizer-v1"


def optimizer_state(optimizer, model) -> dict:
    by_tensor_name = {p.name: n for n, p in model.named_parameters()}
    accumulators = {
        acc: {by_tensor_name[pn]: var for pn, var in per_param.items() if pn in by_tensor_name}
        for acc, per_param in optimizer._accumulators.items()
    }
    masters = {
        by_tensor_name[pn]: var for pn, var in getattr(optimizer, "_master_weights", {}).items() if pn in by_tensor_name
    }
    state = {"format": PORTABLE_FORMAT, "accumulators": accumulators, "master_weights": masters}
    lr = optimizer._learning_rate
    if hasattr(lr, "state_dict"):
        state["lr_scheduler"] = lr.state_dict()
    return state


def load_optimizer_state(optimizer, model, state: dict) -> None:
    import paddle

    if state.get("format") != PORTABLE_FORMAT:
        raise WorkbenchError("optimizer state was not written by this version of the workbench; resume without it")
    named = dict(model.named_parameters())
    # Create the accumulators now (Paddle creates them lazily at the first step) so we can fill them -- for the
    # parameters that had them, only: a parameter that never got a gradient (unused by the loss) has none, and
    # creating zeros for it would make the resumed optimizer state differ from the uninterrupted one.
    saved = {name for per_param in state["accumulators"].values() for name in per_param}
    params = [p for n, p in model.named_parameters() if n in saved and not p.stop_gradient]
    if params:
        optimizer._create_accumulators(paddle.static.default_main_program().global_block(), params)
    for acc, per_param in state["accumulators"].items():
        for structured, value in per_param.items():
            optimizer._accumulators[acc][named[structured].name].set_value(value)
    for structured, value in state.get("master_weights", {}).items():
        optimizer._master_weights[named[structured].name].set_value(value)
    if "lr_scheduler" in state and hasattr(optimizer._learning_rate, "set_state_dict"):
        optimizer._learning_rate.set_state_dict(state["lr_scheduler"])
