"""Multi-process launch: ``wb train ... trainer.devices=N`` re-runs itself under ``paddle.distributed.launch``.

Paddle's collective launcher starts one worker per device (GPU: NCCL; CPU: gloo, which is how CI tests the
multi-process path) and sets ``PADDLE_TRAINER_ID`` / ``PADDLE_TRAINERS_NUM`` that ``engine.distributed`` reads.
We only build its command line:

* one run directory for all ranks is fixed *before* launching (``trainer.output_dir``), because each rank would
  otherwise compose its own time-stamped Hydra directory;
* the built-in demo data is generated once here, not by every rank at the same time;
* several nodes: ``trainer.nodes=2 trainer.master=10.0.0.1:8090 trainer.node_rank=0`` on the first node,
  ``node_rank=1`` on the second (the same command otherwise), as ``paddle.distributed.launch`` expects.
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from workbench.errors import ConfigError


def inside_launched_worker() -> bool:
    return "PADDLE_TRAINER_ID" in os.environ and int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) > 1


def launch_command(argv: list[str], *, devices: int, nodes: int, master: Optional[str], node_rank: int,
                   device: str, run_dir: Path) -> list[str]:
    """The ``paddle.distributed.launch`` command line that runs ``wb train <argv>`` on every device."""
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(devices),
           "--log_dir", str(run_dir / "launch_logs")]
    if device == "gpu":
        cmd += ["--devices", ",".join(str(i) for i in range(devices))]
    if nodes > 1:
        if not master:
            raise ConfigError("trainer.nodes>1 needs trainer.master=<ip:port> of node 0 (the same on every node)")
        cmd += ["--nnodes", str(nodes), "--master", master, "--rank", str(node_rank)]
    passthrough = [a for a in argv if not a.startswith(("trainer.output_dir=", "hydra.run.dir="))]
    return cmd + [str(cli), "train", *passthrough, f"trainer.output_dir={run_dir}", f"hydra.run.dir={run_dir}"]


def maybe_launch(argv: list[str], prepare: Optional[Callable] = None) -> Optional[int]:
    """If the composed config asks for several devices and we are not a launched worker yet, launch the workers
    and return their exit code; otherwise return None (train in this process). ``prepare(cfg)`` runs once before
    the workers start (e.g. generating the demo set once for all ranks)."""
    if inside_launched_worker() or any(a in ("-m", "--multirun") for a in argv):
        return None  # a sweep's trials are checked in run_training (check_not_unlaunched)
    cfg = _compose(argv)
    t = cfg.trainer
    if t.devices <= 1 and t.nodes <= 1:
        return None
    from workbench.engine.device import device_kind

    device = device_kind(t.device, key="trainer.device")
    run_dir = Path(t.output_dir or Path("runs") / cfg.task / _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    run_dir.mkdir(parents=True, exist_ok=True)
    if prepare is not None:
        prepare(cfg)
    cmd = launch_command(argv, devices=t.devices, nodes=t.nodes, master=t.master, node_rank=t.node_rank,
                         device=device, run_dir=run_dir.resolve())
    print("launching:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def check_launched(devices: int, nodes: int) -> None:
    """Several devices need the launcher's workers; a process that was not launched must not pretend."""
    if (devices > 1 or nodes > 1) and not inside_launched_worker():
        raise ConfigError(
            "trainer.devices>1 needs one process per device: run `wb train ... trainer.devices=N` (it launches "
            "them), not a sweep (-m) trial or a direct call; sweeps run their trials one at a time per device"
        )


def _compose(argv: list[str]):
    from workbench.config.compose import compose_train_config

    return compose_train_config([a for a in argv if not a.startswith("-") and not a.startswith("hydra.")])
