"""Run wb's trainer and PaddleOCR's own ``tools/train.py`` on the same data, model, batch, input size and thread
budget, one after the other, and measure both the same way.

* Each trainer runs as a child process; a sampler thread reads ``/proc`` of its whole process tree (the trainer and
  every loader worker) every 0.2 s: summed RSS (what the issue asks for), summed PSS (shared pages counted once,
  fairer to forked workers), and summed CPU time.
* Throughput: samples of the steps after the warm-up divided by their wall time (each trainer's own step log), and
  the CPU seconds the whole tree spent in that window per sample: on a shared machine the first moves with the
  load of other users, the second much less.
* Upstream's code is run from a checkout given by path (``--paddleocr-dir`` / ``$PADDLEOCR_DIR``), never copied.
  The one change, for recognition: ``paddle.nn.functional.log_softmax`` is replaced by ``x - logsumexp(x)`` at run
  time (a ``sitecustomize`` written into the run's temporary folder) -- Paddle 3.3's CPU ``log_softmax`` over
  ~18k classes is pathologically slow, and upstream's NRTR loss calls it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from _common import ROOT

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------ /proc


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    children, tree, todo = _children_map(), [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _proc_figures(pid: int) -> Optional[tuple[float, float, float]]:
    """(RSS bytes, PSS bytes, CPU seconds) of one process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text()
        fields = fields[fields.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        rss = int(fields[21]) * PAGE
        pss = rss
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
        return rss, pss, cpu
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class TreeUsage:
    peak_rss: float = 0.0  # bytes, summed over the tree at one instant
    peak_pss: float = 0.0
    peak_rss_main: float = 0.0
    peak_processes: int = 0
    timeline: list = field(default_factory=list)  # (unix time, tree CPU seconds incl. exited processes)
    rss_timeline: list = field(default_factory=list)  # (unix time, summed RSS bytes)
    killed_at: Optional[float] = None  # bytes of RSS that made the sampler stop the run

    def cpu_between(self, t0: float, t1: float) -> float:
        times = np.array([t for t, _ in self.timeline])
        cpus = np.array([c for _, c in self.timeline])
        if len(times) < 2:
            return float("nan")
        return float(np.interp(t1, times, cpus) - np.interp(t0, times, cpus))


class TreeSampler(threading.Thread):
    """Samples a process tree until it ends; stops it (SIGKILL to the group) above ``limit_bytes`` of RSS."""

    def __init__(self, proc: subprocess.Popen, limit_bytes: float, period: float = 0.2):
        super().__init__(daemon=True)
        self.proc, self.limit, self.period = proc, limit_bytes, period
        self.usage = TreeUsage()
        self._cpu_of: dict[int, float] = {}

    def run(self) -> None:
        u = self.usage
        while self.proc.poll() is None:
            rss = pss = 0.0
            pids = process_tree(self.proc.pid)
            for pid in pids:
                figures = _proc_figures(pid)
                if figures is None:
                    continue
                rss += figures[0]
                pss += figures[1]
                self._cpu_of[pid] = figures[2]
                if pid == self.proc.pid:
                    u.peak_rss_main = max(u.peak_rss_main, figures[0])
            u.peak_rss, u.peak_pss = max(u.peak_rss, rss), max(u.peak_pss, pss)
            u.peak_processes = max(u.peak_processes, len(pids))
            now = time.time()
            u.timeline.append((now, sum(self._cpu_of.values())))
            u.rss_timeline.append((now, rss))
            if rss > self.limit:
                u.killed_at = rss
                os.killpg(self.proc.pid, signal.SIGKILL)
                return
            time.sleep(self.period)


def run_tree(cmd: list[str], *, env: dict, cwd: Path, log: Path, limit_bytes: float) -> tuple[int, TreeUsage]:
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        sampler = TreeSampler(proc, limit_bytes)
        sampler.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        sampler.join()
    return code, sampler.usage


def available_memory_bytes() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return float("inf")


# ------------------------------------------------------------------------------------------------ one run


@dataclass
class Measured:
    side: str  # "wb" | "upstream"
    label: str
    samples_per_s: float
    cpu_s_per_sample: float
    steps: int
    usage: TreeUsage
    log: Path
    error: str = ""

    def row(self) -> dict:
        u = self.usage
        return {
            "samples/s": round(self.samples_per_s, 3),
            "CPU s/sample": round(self.cpu_s_per_sample, 2),
            "peak RSS sum GB": round(u.peak_rss / 1e9, 2),
            "peak PSS sum GB": round(u.peak_pss / 1e9, 2),
            "peak RSS main GB": round(u.peak_rss_main / 1e9, 2),
            "processes": u.peak_processes,
        }


def thread_env(threads: int, extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "FLAGS_"))}
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **(extra or {})})
    return env


def subset_labels(label_file: Path, n: int, out: Path, seed: int = 0, rewrite_root: Optional[Path] = None) -> Path:
    """The first ``n`` lines of a seeded shuffle of ``label_file`` (both trainers read the same samples)."""
    lines = [ln for ln in label_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    order = np.random.default_rng(seed).permutation(len(lines))[:n]
    picked = [lines[i] for i in sorted(order)]
    if rewrite_root is not None:
        picked = [f"{rewrite_root / ln.split(chr(9), 1)[0]}\t{ln.split(chr(9), 1)[1]}" for ln in picked]
    out.write_text("\n".join(picked) + "\n", encoding="utf-8")
    return out


def steady_window(times: list[float], warmup: int) -> tuple[float, float, int]:
    """(start, end, steps) of the steps after ``warmup`` given each step's end time."""
    if len(times) < warmup + 2:
        raise RuntimeError(f"only {len(times)} steps logged, need {warmup + 2}")
    return times[warmup], times[-1], len(times) - 1 - warmup


# --- wb ------------------------------------------------------------------------------------------------


def run_wb(label: str, overrides: list[str], *, batch: int, steps: int, warmup: int, threads: int, work: Path,
           limit_bytes: float, env_extra: Optional[dict] = None) -> Measured:
    run_dir = work / f"wb-{label}-{time.time_ns()}"
    cmd = [sys.executable, "-m", "workbench.cli", "train", *overrides, f"data.batch_size={batch}",
           f"trainer.max_steps={steps + warmup + 1}", "trainer.log_every_steps=1", "trainer.progress_bar=false",
           "trainer.eval_every_epochs=null", "tracking=off", "data.check=false", f"trainer.output_dir={run_dir}"]
    env = thread_env(threads, {"PYTHONPATH": str(ROOT), **(env_extra or {})})
    log = work / f"wb-{label}.log"
    code, usage = run_tree(cmd, env=env, cwd=work, log=log, limit_bytes=limit_bytes)
    rows_file = run_dir / "train_log.jsonl"
    if code != 0 or not rows_file.exists():
        return Measured("wb", label, float("nan"), float("nan"), 0, usage, log, _failure(code, usage, log))
    times = [json.loads(ln)["time"] for ln in rows_file.read_text().splitlines()]
    t0, t1, n = steady_window(times, warmup)
    return Measured("wb", label, n * batch / (t1 - t0), usage.cpu_between(t0, t1) / (n * batch), n, usage, log)


def _failure(code: int, usage: TreeUsage, log: Path) -> str:
    if usage.killed_at is not None:
        return f"stopped at {usage.killed_at / 1e9:.1f} GB RSS (memory guard)"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    return f"exit {code}: " + " | ".join(tail)


# --- upstream --------------------------------------------------------------------------------------------

LOG_SOFTMAX_SWAP = '''\
# Written by OCR Workbench's benchmark: the one change made to upstream PaddleOCR for the side-by-side run.
# Paddle 3.3's CPU log_softmax over ~18k classes is pathologically slow; x - logsumexp(x) is the same function.
import paddle
import paddle.nn.functional as F


def _log_softmax(x, axis=-1, dtype=None, name=None):
    if dtype is not None:
        x = x.astype(dtype)
    return x - paddle.logsumexp(x, axis=axis, keepdim=True)


F.log_softmax = _log_softmax
paddle.nn.functional.activation.log_softmax = _log_softmax
'''

_STEP_LINE = re.compile(r"^\[(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)\].*global_step: (\d+),.*avg_batch_cost: ([\d.]+) s")


def parse_upstream_log(text: str) -> list[tuple[float, int, float]]:
    """(unix time of the log line, global step, that step's seconds) for every step line (print_batch_step 1)."""
    rows = []
    for line in text.splitlines():
        m = _STEP_LINE.search(line)
        if m:
            stamp = time.mktime(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S"))
            rows.append((stamp, int(m.group(2)), float(m.group(3))))
    return rows


def upstream_config(paddleocr: Path, kind: str, *, label_file: Path, data_dir: Path, batch: int, workers: int,
                    out: Path, dictionary: Optional[Path] = None) -> dict:
    """Upstream's own PP-OCRv5 mobile config with the settings of this benchmark (CPU, one process, our data)."""
    import yaml

    name = {"rec": "rec/PP-OCRv5/PP-OCRv5_mobile_rec.yml", "det": "det/PP-OCRv5/PP-OCRv5_mobile_det.yml"}[kind]
    cfg = yaml.safe_load((paddleocr / "configs" / name).read_text())
    g = cfg["Global"]
    g.update({"use_gpu": False, "distributed": False, "epoch_num": 1, "print_batch_step": 1, "save_model_dir": str(out),
              "save_epoch_step": 1000, "eval_batch_step": [0, 10**9], "pretrained_model": None, "checkpoints": None,
              "use_visualdl": False})
    train, ev = cfg["Train"], cfg["Eval"]
    for section in (train, ev):
        section["dataset"]["data_dir"] = str(data_dir)
        section["dataset"]["label_file_list"] = [str(label_file)]
    train["loader"].update({"batch_size_per_card": batch, "num_workers": workers, "shuffle": True, "drop_last": True})
    ev["loader"].update({"num_workers": 0})
    if kind == "rec":
        g["character_dict_path"] = str(dictionary)
        # Fixed 48x320 batches, as upstream's eval shape (and wb's data.width_mode=fixed): SimpleDataSet with the
        # same augmentation and a RecResizeImg, instead of the multi-scale sampler.
        train["dataset"]["name"] = "SimpleDataSet"
        train.pop("sampler", None)
        ops = train["dataset"]["transforms"]
        keep = next(i for i, op in enumerate(ops) if "KeepKeys" in op)
        ops.insert(keep, {"RecResizeImg": {"image_shape": [3, 48, 320]}})
    return cfg


def run_upstream(kind: str, label: str, *, paddleocr: Path, python: str, label_file: Path, data_dir: Path,
                 batch: int, steps: int, warmup: int, threads: int, workers: int, work: Path, limit_bytes: float,
                 dictionary: Optional[Path] = None) -> Measured:
    import yaml

    run = work / f"upstream-{label}-{time.time_ns()}"
    patch = run / "patch"
    patch.mkdir(parents=True)
    extra = {}
    if kind == "rec":
        (patch / "sitecustomize.py").write_text(LOG_SOFTMAX_SWAP)
        extra["PYTHONPATH"] = str(patch)
    cfg = upstream_config(paddleocr, kind, label_file=label_file, data_dir=data_dir, batch=batch, workers=workers,
                          out=run / "output", dictionary=dictionary)
    (run / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [python, str(paddleocr / "tools" / "train.py"), "-c", str(run / "config.yml")]
    log = work / f"upstream-{label}.log"
    code, usage = run_tree(cmd, env=thread_env(threads, extra), cwd=paddleocr, log=log, limit_bytes=limit_bytes)
    rows = parse_upstream_log(log.read_text(errors="replace"))
    if len(rows) < warmup + 2:
        return Measured("upstream", label, float("nan"), float("nan"), 0, usage, log,
                        _failure(code, usage, log) + f" ({len(rows)} steps logged)")
    rows = rows[warmup : warmup + steps + 1]  # the same steps as wb's window (its epoch has a spare batch)
    seconds = sum(r[2] for r in rows[1:])
    n = len(rows) - 1
    cpu = usage.cpu_between(rows[0][0], rows[-1][0])  # log stamps have 1 s resolution: steps take far longer
    return Measured("upstream", label, n * batch / seconds, cpu / (n * batch), n, usage, log,
                    "" if code == 0 else _failure(code, usage, log))


def upstream_revision(paddleocr: Path) -> str:
    """The checkout's commit (``git rev-parse HEAD``), or ``$PADDLEOCR_REVISION`` for an exported tree."""
    try:  # only the tree's own repository: an exported tree inside another one must not report that one's HEAD
        out = subprocess.run(["git", "-C", str(paddleocr), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        top, _, head = out.stdout.strip().partition("\n")
        if out.returncode == 0 and Path(top).resolve() == paddleocr.resolve():
            return head
    except OSError:
        pass
    return os.environ.get("PADDLEOCR_REVISION", "unknown (not a git checkout; set $PADDLEOCR_REVISION)")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ------------------------------------------------------------------------------------------------ the comparison


@dataclass
class Targets:
    speed: float  # wb samples/s >= speed x upstream's
    memory: float = 1 / 3  # wb peak summed RSS <= memory x upstream's


def add_common_arguments(parser, *, steps: int, warmup: int, batch: int) -> None:
    parser.add_argument("--paddleocr-dir", type=Path, default=os.environ.get("PADDLEOCR_DIR"),
                        help="a PaddleOCR source checkout (tools/train.py, configs/); default $PADDLEOCR_DIR")
    parser.add_argument("--upstream-python", default=os.environ.get("PADDLEOCR_PYTHON", sys.executable),
                        help="python with paddle + PaddleOCR's requirements; default $PADDLEOCR_PYTHON or this one")
    parser.add_argument("--steps", type=int, default=steps, help="measured steps per side (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=warmup, help="steps not measured")
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="OMP/MKL threads of both trainers")
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes of both trainers")
    parser.add_argument("--wb-workers", type=int, default=None,
                        help="wb's loader workers instead of --workers (0: samples loaded in the trainer, between "
                             "steps); upstream keeps --workers")
    parser.add_argument("--rounds", type=int, default=1, help="wb/upstream alternations (order flips each round)")
    parser.add_argument("--only", choices=["wb", "upstream"], default=None, help="run one side only")
    parser.add_argument("--memory-limit-gb", type=float, default=None,
                        help="stop a side whose summed RSS passes this (default: available memory - 2 GB)")
    parser.add_argument("--work", type=Path, default=None, help="logs and run dirs (default runs/bench_<kind>)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default sqlite:///<work>/mlflow.db)")
    parser.add_argument("--experiment", default="bench-training-speed")
    parser.add_argument("--no-limit", action="store_true", help="skip the FLOP count and the peak microbenchmark")
    parser.add_argument("--wb-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more `wb train` override for wb's side, to measure a lever (repeatable; printed "
                             "and logged with the figures)")


def wb_workers(args) -> int:
    return args.workers if args.wb_workers is None else args.wb_workers


def compare(kind: str, args, *, wb_overrides: list[str], upstream_kwargs: dict, targets: Targets,
            flops_per_step: Optional[float], peak: Optional[dict], describe: dict) -> dict:
    """Run both sides ``args.rounds`` times alternately, print the figures, ratios and targets, log an MLflow run."""
    from _common import report

    work = (args.work or ROOT / "runs" / f"bench_{kind}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    limit = (args.memory_limit_gb * 1e9) if args.memory_limit_gb else available_memory_bytes() - 2e9
    sides = ["wb", "upstream"] if args.only is None else [args.only]
    if args.wb_override:
        wb_overrides = [*wb_overrides, *args.wb_override]
        describe = {**describe, "wb overrides (lever)": " ".join(args.wb_override)}
    if args.only is None and args.paddleocr_dir is None:
        raise SystemExit("upstream side: give --paddleocr-dir or $PADDLEOCR_DIR (or --only wb)")
    runs: list[Measured] = []
    for r in range(args.rounds):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            label = f"{kind}-r{r}"
            print(f"[{time.strftime('%H:%M:%S')}] {side} {label} (load {load_average()}) ...", flush=True)
            if side == "wb":
                m = run_wb(label, wb_overrides, batch=args.batch, steps=args.steps, warmup=args.warmup,
                           threads=args.threads, work=work, limit_bytes=limit)
            else:
                m = run_upstream(kind, label, paddleocr=args.paddleocr_dir.resolve(), python=args.upstream_python,
                                 batch=args.batch, steps=args.steps, warmup=args.warmup, threads=args.threads,
                                 workers=args.workers, work=work, limit_bytes=limit, **upstream_kwargs)
            print(f"    {m.row()} {m.error}".rstrip(), flush=True)
            runs.append(m)

    best = {}
    for side in sides:
        mine = [m for m in runs if m.side == side and m.steps > 0]
        if mine:  # the median round by throughput; memory as the worst round
            mine.sort(key=lambda m: m.samples_per_s)
            pick = mine[len(mine) // 2]
            best[side] = (pick, max(m.usage.peak_rss for m in mine), max(m.usage.peak_pss for m in mine))
        else:
            failed = [m for m in runs if m.side == side]
            print(f"  {side}: no measurement ({failed[-1].error if failed else 'not run'})")

    figures: dict = {}
    lines: dict = dict(describe)
    if "upstream" in sides:
        lines["upstream checkout"] = f"{args.paddleocr_dir} @ {upstream_revision(args.paddleocr_dir)}"
    lines["threads / loader workers"] = f"{args.threads} / {args.workers}" + (
        f" (wb {args.wb_workers})" if args.wb_workers is not None else "")
    lines["load average at the end"] = load_average()
    for side, (m, rss, pss) in best.items():
        guard = " (memory guard stopped it: at least this)" if m.usage.killed_at is not None else ""
        lines[f"{side} samples/s"] = f"{m.samples_per_s:.3f}  ({m.steps} steps)"
        lines[f"{side} CPU s/sample"] = f"{m.cpu_s_per_sample:.2f}"
        lines[f"{side} peak RSS, summed"] = f"{rss / 1e9:.2f} GB{guard}"
        lines[f"{side} peak PSS, summed"] = f"{pss / 1e9:.2f} GB  (main process RSS {m.usage.peak_rss_main / 1e9:.2f} GB, " \
                                            f"{m.usage.peak_processes} processes)"
        figures.update({f"{side}_samples_per_s": m.samples_per_s, f"{side}_cpu_s_per_sample": m.cpu_s_per_sample,
                        f"{side}_peak_rss_gb": rss / 1e9, f"{side}_peak_pss_gb": pss / 1e9})
        if flops_per_step:
            achieved = flops_per_step / args.batch * m.samples_per_s / 1e9
            per_cpu_s = flops_per_step / args.batch / m.cpu_s_per_sample / 1e9
            lines[f"{side} model GFLOP/s"] = f"{achieved:.2f} wall, {per_cpu_s:.2f} per CPU-second"
            figures[f"{side}_gflops"] = achieved
            figures[f"{side}_gflops_per_cpu_s"] = per_cpu_s
            if peak:  # model-FLOP utilisation against the measured GEMM peak of these cores
                mfu_wall, mfu_cpu = achieved / peak["gflops_wall"], per_cpu_s / peak["gflops_cpu"]
                lines[f"{side} MFU"] = f"{100 * mfu_wall:.1f}% of the wall peak, {100 * mfu_cpu:.1f}% per CPU-second"
                figures.update({f"{side}_mfu": mfu_wall, f"{side}_mfu_cpu": mfu_cpu})
    if "wb" in best and "upstream" in best:
        (w, w_rss, _), (u, u_rss, _) = best["wb"], best["upstream"]
        speed, cpu, memory = w.samples_per_s / u.samples_per_s, u.cpu_s_per_sample / w.cpu_s_per_sample, w_rss / u_rss
        upstream_stopped = u.usage.killed_at is not None
        figures.update({"speedup": speed, "cpu_speedup": cpu, "rss_ratio": memory})
        lines["wb / upstream samples/s"] = f"{speed:.2f}x  (target >= {targets.speed:g}x: " \
                                           f"{'met' if speed >= targets.speed else 'NOT met'})"
        lines["upstream / wb CPU s/sample"] = f"{cpu:.2f}x"
        verdict = "met" if memory <= targets.memory else ("NOT met" if not upstream_stopped else "unknown")
        lines["wb / upstream peak RSS"] = f"{memory:.2f}{' (at most: upstream was stopped)' if upstream_stopped else ''}" \
                                          f"  (target <= {targets.memory:.2f}: {verdict})"
    report(f"{kind}: wb vs PaddleOCR tools/train.py, side by side", lines)
    log_run(kind, args, figures, describe, work, [m.log for m in runs])
    return figures


def log_run(kind: str, args, figures: dict, describe: dict, work: Path, logs: list[Path]) -> None:
    """One MLflow run per benchmark invocation: the settings as params, the figures as metrics, logs as artifacts."""
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}")
    if mlflow.get_experiment_by_name(args.experiment) is None:  # artifacts beside the store, not in the cwd
        mlflow.create_experiment(args.experiment, artifact_location=(work / "mlartifacts").as_uri())
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name=f"{kind}-sidebyside-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        mlflow.set_tags({"wb.bench": f"{kind}_training_sidebyside", "paddleocr_dir": str(args.paddleocr_dir),
                         "paddleocr_revision": upstream_revision(args.paddleocr_dir) if args.paddleocr_dir else ""})
        mlflow.log_params({"batch": args.batch, "steps": args.steps, "warmup": args.warmup, "threads": args.threads,
                           "workers": args.workers, "wb_workers": wb_workers(args), "rounds": args.rounds,
                           **{re.sub(r"[^\w]+", "_", k).strip("_")[:250]: str(v)[:500] for k, v in describe.items()}})
        mlflow.log_metrics({k: float(v) for k, v in figures.items() if v == v})
        for log in logs:
            if log.exists():
                mlflow.log_artifact(str(log))
        print(f"MLflow run: {run.info.run_id} ({mlflow.get_tracking_uri()})")
