"""Checkpoints: one directory each, written atomically, holding everything a resume or an export needs.

Layout of ``<run_dir>/checkpoints/<name>/``::

    model.pdparams      model weights (official state-dict keys)
    ema.pdparams        EMA weights (when EMA is on)
    optimizer.pdopt     optimizer state (moments, LR scheduler)
    state.json          global step, epoch, position in the epoch, best metric, RNG states, trained flag
    meta.json           task, model name, dictionary sha256, how the starting weights loaded
    config.yaml         the composed config of the run
    dict.txt            rec only: the exact training dictionary (export writes it into inference.yml)

A checkpoint is first written to a temporary sibling directory and then renamed into place, so a crash (or a
full disk) mid-save never leaves a half-written ``latest`` or ``best`` behind. This fixes upstream's resume,
which loses the best metric and the global step (#18108).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from workbench.errors import WorkbenchError

MODEL_FILE = "model.pdparams"
EMA_FILE = "ema.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
STATE_FILE = "state.json"
META_FILE = "meta.json"
CONFIG_FILE = "config.yaml"
DICT_FILE = "dict.txt"


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
    import paddle

    py_state = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "paddle": [pickle.dumps(s).hex() for s in paddle.get_rng_state()],
    }


def restore_rng(state: dict) -> None:
    import paddle

    if not state:
        return
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    paddle.set_rng_state([pickle.loads(bytes.fromhex(h)) for h in state["paddle"]])


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
) -> Path:
    """Write a checkpoint directory atomically (temp dir + rename)."""
    import paddle

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        paddle.save(model_state, str(tmp / MODEL_FILE))
        if ema_state is not None:
            paddle.save(ema_state, str(tmp / EMA_FILE))
        if optimizer_state is not None:
            paddle.save(optimizer_state, str(tmp / OPTIMIZER_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(asdict(train_state), indent=1))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=str))
        if config_yaml is not None:
            (tmp / CONFIG_FILE).write_text(config_yaml)
        if dictionary_lines is not None:
            (tmp / DICT_FILE).write_text("\n".join(dictionary_lines) + "\n", encoding="utf-8")
        _replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _replace_dir(src: Path, dst: Path) -> None:
    """Move src into dst's place. The old dst is renamed away first and deleted only after the new one is in."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint directory atomically (used to publish ``latest`` as ``best``)."""
    dst = Path(dst)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        _replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


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

    def load_model_state(self, prefer_ema: bool = False) -> dict:
        import paddle

        f = self.ema_file if (prefer_ema and self.ema_file) else self.model_file
        return paddle.load(str(f))


def is_checkpoint_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / MODEL_FILE).is_file() and (path / STATE_FILE).is_file()


def read_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not is_checkpoint_dir(path):
        raise WorkbenchError(f"{path} is not a workbench checkpoint (expected {MODEL_FILE} and {STATE_FILE})")
    state_raw: dict[str, Any] = json.loads((path / STATE_FILE).read_text())
    known = set(TrainState.__dataclass_fields__)
    state = TrainState(**{k: v for k, v in state_raw.items() if k in known})
    meta_path = path / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return Checkpoint(path=path, state=state, meta=meta)


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
    raise WorkbenchError(f"no checkpoint found at {ref} (looked for {ref}/checkpoints/{prefer})")


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
    params = [p for p in model.parameters() if not p.stop_gradient]
    # Create the accumulators now (Paddle creates them lazily at the first step) so we can fill them.
    optimizer._create_accumulators(paddle.static.default_main_program().global_block(), params)
    for acc, per_param in state["accumulators"].items():
        for structured, value in per_param.items():
            optimizer._accumulators[acc][named[structured].name].set_value(value)
    for structured, value in state.get("master_weights", {}).items():
        optimizer._master_weights[named[structured].name].set_value(value)
    if "lr_scheduler" in state and hasattr(optimizer._learning_rate, "set_state_dict"):
        optimizer._learning_rate.set_state_dict(state["lr_scheduler"])
