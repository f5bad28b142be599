"""End-to-end error attribution: one outcome per ground-truth text, and which module to fine-tune first.

Pure functions: no model, no file. The pipeline runner (:mod:`workbench.analysis.pipeline`) supplies, per image and
in original image pixels:

* ground truth: polygons, transcriptions, don't-care flags (``###`` / ``*``; an empty transcription is treated as
  don't care too: there is nothing to compare a reading with);
* predictions: the pipeline's detected boxes (after its sorting), each with the recognised text and score, and the
  pipeline's ``text_rec_score_thresh`` (a reading below it is dropped from the output);
* the *perfect-crop* reading of each GT: the GT box cropped exactly as the pipeline crops a detected box, read by
  the same recogniser — what the pipeline would output if detection were perfect;
* for GT whose perfect crop is misread, the reading of that crop turned by 180°, and whether the pipeline's crop
  rule turns the GT crop by 90° (taller than wide: ``h / w >= 1.5``);
* for matched boxes that are misread, the reading of the box's crop turned by 180° (a first attribution says which
  boxes: :func:`boxes_to_turn`).

Geometry (shapely areas; thresholds in :class:`MatchRules`), decided in this order for every care GT:

1. **merged** — one predicted box covers ``>= merge_cover`` (0.5) of this GT's area *and* of another care GT's:
   detection put two texts into one box.
2. **matched** — the predictions left are matched one-to-one to the GT left, greedily by decreasing IoU, pairs with
   ``IoU > iou`` (0.5, strictly, as the detection metric) only.
3. **split** — not matched, and at least two predicted boxes lie ``>= part_inside`` (0.5) of their own area inside
   this GT, together covering ``>= split_cover`` (0.5) of it: detection cut one text into pieces.
4. **loose match** — a box left over that covers ``>= loose_cover`` (0.5) of the GT, the largest share first, is
   matched to it although their IoU is at most 0.5. Small texts need this: DB's unclip margin makes the box of a
   single digit several times its GT's area. The detail says "loose box (IoU ...)"; the reading decides as for
   any match (a box that reaches into other text is misread from the box and read right from the GT box:
   ``misread_crop``, a detection error).
5. **missed** — everything else: not detected at all, or only partly (the detail says how much was covered).

A matched GT then gets its text outcome (``TextCompare`` decides equality; by default exact, optionally
case-insensitive and/or ignoring spaces):

* **correct** — read right, and the score passes the threshold;
* **below_threshold** — read right, but dropped by ``text_rec_score_thresh``;
* **orientation** — misread, and the detected box's crop turned by 180° is read right (the pipeline's crop of a
  vertical or upside-down line came out upside down); or the perfect crop is misread too, and either the
  180°-turned perfect crop is read right or the pipeline turns the crop by 90° (a vertical / steeply rotated line);
* **misread_crop** — misread, but the perfect crop is read right: the detected box's geometry (too tight, too
  loose, tilted) ruined the crop — a detection (box quality) error;
* **misread_rec** — misread, and the perfect crop is misread too: a recognition error.

A prediction that is neither matched, merging, nor part of a split GT is ignored when ``>= dont_care_inside`` of it
lies inside a don't-care GT; else it is a **false positive** (a detection error) when its reading passed the
threshold and is not empty — a dropped or empty reading puts no text into the output.

Modules: missed / merged / split / misread_crop / false positives → text detection; misread_rec → text recognition;
orientation → text-line orientation; below_threshold → the score threshold (a pipeline setting, no training).
:func:`verdict` ranks the modules by the errors that would be gone if the module were perfect (for detection: the
lost texts whose GT box is read right, and the false positives), then by the errors attributed to them.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from workbench.geometry import intersection_areas, repaired_polygons

# --- outcomes and modules ---------------------------------------------------------------------------------------
CORRECT = "correct"
MISSED = "missed"
MERGED = "merged"
SPLIT = "split"
MISREAD_CROP = "misread_crop"
MISREAD_REC = "misread_rec"
BELOW_THRESHOLD = "below_threshold"
ORIENTATION = "orientation"

#: every outcome, in the order reports list them
OUTCOMES = (CORRECT, MISSED, MERGED, SPLIT, MISREAD_CROP, MISREAD_REC, ORIENTATION, BELOW_THRESHOLD)

DETECTION = "text detection"
RECOGNITION = "text recognition"
ORIENTATION_MODULE = "text-line orientation"
THRESHOLD = "score threshold"

MODULE_OF = {
    MISSED: DETECTION,
    MERGED: DETECTION,
    SPLIT: DETECTION,
    MISREAD_CROP: DETECTION,
    MISREAD_REC: RECOGNITION,
    ORIENTATION: ORIENTATION_MODULE,
    BELOW_THRESHOLD: THRESHOLD,
}

#: one line per outcome, for tables and the report
DESCRIPTIONS = {
    CORRECT: "read right, score above the threshold",
    MISSED: "not detected, or less than half of it",
    MERGED: "detected together with another text in one box",
    SPLIT: "detected as several pieces",
    MISREAD_CROP: "misread from the detected box, read right from the GT box: box geometry",
    MISREAD_REC: "misread even from the GT box: recognition",
    ORIENTATION: "misread, rotated text (read right when turned 180°, or a vertical crop)",
    BELOW_THRESHOLD: "read right but dropped by the score threshold",
}

FALSE_POSITIVE = "false_positive"


# --- options ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextCompare:
    """When a reading counts as equal to the GT transcription. Both strings are NFC-normalised first."""

    case_insensitive: bool = False
    ignore_space: bool = False

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFC", text)
        if self.ignore_space:
            text = "".join(text.split())
        if self.case_insensitive:
            text = text.casefold()
        return text

    def equal(self, reading: Optional[str], truth: str) -> bool:
        return reading is not None and self.normalize(reading) == self.normalize(truth)

    def contains(self, reading: Optional[str], truth: str) -> bool:
        return reading is not None and self.normalize(truth) in self.normalize(reading)


@dataclass(frozen=True)
class MatchRules:
    """Geometry thresholds of the attribution (see the module docstring for how they are used)."""

    iou: float = 0.5  # matched: IoU strictly above this
    merge_cover: float = 0.5  # one box covering at least this share of two GT merges them
    part_inside: float = 0.5  # a box with at least this share of its area inside a GT is a piece of it
    split_cover: float = 0.5  # the pieces together cover at least this share of the GT
    loose_cover: float = 0.5  # a box covering at least this share of a GT (and no other) is matched to it
    dont_care_inside: float = 0.5  # an unmatched box this much inside a don't-care GT is ignored


# --- inputs and outputs -----------------------------------------------------------------------------------------
Reading = tuple  # (text, score)


@dataclass
class ImageInput:
    """Everything attribution needs about one image (polygons ``[k, 2]`` in original pixels)."""

    gt_polys: Sequence
    gt_texts: Sequence[str]
    gt_ignore: Sequence[bool]
    pred_polys: Sequence
    pred_texts: Sequence[str]
    pred_scores: Sequence[float]
    score_thresh: float = 0.0
    #: per GT: the perfect-crop reading (text, score); None for don't care or a GT that cannot be cropped
    perfect: Optional[Sequence[Optional[Reading]]] = None
    #: per GT: the 180°-turned perfect crop's reading, None where it was not computed
    rotated: Optional[Sequence[Optional[Reading]]] = None
    #: per GT: the pipeline's crop rule turns this GT's crop by 90° (taller than wide)
    vertical: Optional[Sequence[bool]] = None
    #: per prediction: the text-line orientation model's decision (1 = turned by 180°), -1 / None when unused
    pred_angles: Optional[Sequence[int]] = None
    #: per prediction: the reading of what the recogniser got, turned by 180° (the crop as cut when the orientation
    #: model had turned it), None where it was not computed
    pred_rotated: Optional[Sequence[Optional[Reading]]] = None


@dataclass
class GTOutcome:
    """The outcome of one GT text (``index`` into the image's GT list)."""

    index: int
    text: str
    outcome: str
    module: Optional[str]
    detail: str = ""
    pred: Optional[int] = None  # the matched box, or the box that merged it
    iou: float = 0.0  # the largest IoU any box reaches with this GT
    coverage: float = 0.0  # share of the GT covered by all boxes together
    pred_text: Optional[str] = None
    pred_score: Optional[float] = None
    kept: Optional[bool] = None  # the reading passed the score threshold
    perfect_text: Optional[str] = None
    perfect_score: Optional[float] = None
    perfect_correct: Optional[bool] = None
    rotated_text: Optional[str] = None  # the perfect crop turned by 180°
    rotated_correct: Optional[bool] = None
    pred_rotated_text: Optional[str] = None  # what the recogniser got from the matched box, turned by 180°
    pred_rotated_correct: Optional[bool] = None
    pred_angle: Optional[int] = None  # the text-line orientation model's class for the matched box (-1: unused)
    vertical: bool = False
    merged_with: list = field(default_factory=list)  # other GT inside the merging box
    split_parts: list = field(default_factory=list)  # the boxes a split GT was cut into, left to right
    text_in_pred: Optional[bool] = None  # merged / split: the GT text appears in the box's / pieces' reading

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageAttribution:
    gts: list[GTOutcome]  # care GT only, in GT order
    pred_status: list[str]  # per prediction: matched | merged | split_part | dont_care | false_positive | dropped
    #                         (below the threshold) | empty (empty reading)
    pred_gt: list[Optional[int]]  # per prediction: the GT it was attributed to
    dont_care: list[int]  # indices of don't-care GT

    @property
    def false_positives(self) -> list[int]:
        return [j for j, s in enumerate(self.pred_status) if s == FALSE_POSITIVE]

    def counts(self) -> Counter:
        return Counter(g.outcome for g in self.gts)


# --- geometry ---------------------------------------------------------------------------------------------------
def _union_cover(gt, parts) -> float:
    """Share of ``gt`` covered by the union of ``parts``."""
    import shapely

    area = shapely.area(gt)
    if area <= 0 or not len(parts):
        return 0.0
    return float(shapely.area(shapely.intersection(gt, shapely.union_all(parts))) / area)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


# --- attribution of one image -----------------------------------------------------------------------------------
def attribute_image(
    inp: ImageInput, compare: TextCompare = TextCompare(), rules: MatchRules = MatchRules()
) -> ImageAttribution:
    """One :class:`GTOutcome` per care GT of the image, and the status of every prediction (module docstring)."""
    n_gt, n_pred = len(inp.gt_polys), len(inp.pred_polys)
    if not (len(inp.gt_texts) == len(inp.gt_ignore) == n_gt):
        raise ValueError(f"{n_gt} GT polygons but {len(inp.gt_texts)} texts / {len(inp.gt_ignore)} ignore flags")
    if not (len(inp.pred_texts) == len(inp.pred_scores) == n_pred):
        raise ValueError(f"{n_pred} predicted boxes but {len(inp.pred_texts)} texts / {len(inp.pred_scores)} scores")
    ignore = [bool(ig) or not str(t).strip() for t, ig in zip(inp.gt_texts, inp.gt_ignore)]
    care = [g for g in range(n_gt) if not ignore[g]]
    dont_care = [g for g in range(n_gt) if ignore[g]]
    gt_geoms, gt_area = repaired_polygons(inp.gt_polys)
    pred_geoms, pred_area = repaired_polygons(inp.pred_polys)
    inter = intersection_areas(gt_geoms, pred_geoms)  # [n_gt, n_pred]
    union = gt_area[:, None] + pred_area[None, :] - inter
    iou = _safe_div(inter, union)
    cover = _safe_div(inter, np.broadcast_to(gt_area[:, None], inter.shape).copy())  # share of the GT covered
    inside = _safe_div(inter, np.broadcast_to(pred_area[None, :], inter.shape).copy())  # share of the box inside
    kept = [float(s) >= inp.score_thresh for s in inp.pred_scores]

    status: list[Optional[str]] = [None] * n_pred
    pred_gt: list[Optional[int]] = [None] * n_pred
    decided: dict[int, GTOutcome] = {}

    def base(g: int, outcome: str, **kw) -> GTOutcome:
        o = GTOutcome(index=g, text=inp.gt_texts[g], outcome=outcome, module=MODULE_OF.get(outcome),
                      iou=float(iou[g].max()) if n_pred else 0.0,
                      coverage=_union_cover(gt_geoms[g], pred_geoms[cover[g] > 0]) if n_pred else 0.0,
                      vertical=bool(inp.vertical[g]) if inp.vertical is not None else False, **kw)
        _fill_perfect(o, inp, g, compare)
        return o

    # 1. merged: one box covering two (or more) care GT
    merging: dict[int, list[int]] = {}
    for j in range(n_pred):
        covered = [g for g in care if cover[g, j] >= rules.merge_cover]
        if len(covered) >= 2:
            merging[j] = covered
    for j, covered in merging.items():
        status[j] = "merged"
        for g in covered:
            prev = decided.get(g)
            if prev is not None and cover[g, prev.pred] >= cover[g, j]:
                continue  # covered by two merging boxes: keep the one covering it most
            decided[g] = base(g, MERGED, pred=j, pred_text=inp.pred_texts[j], pred_score=float(inp.pred_scores[j]),
                              kept=kept[j], merged_with=[h for h in covered if h != g],
                              text_in_pred=compare.contains(inp.pred_texts[j], inp.gt_texts[g]),
                              detail=f"one box over {len(covered)} texts")
        pred_gt[j] = covered[0]

    # 2. one-to-one matches by decreasing IoU
    pairs = [(iou[g, j], g, j) for g in care if g not in decided for j in range(n_pred)
             if status[j] is None and iou[g, j] > rules.iou]
    for _, g, j in sorted(pairs, key=lambda t: (-t[0], t[1], t[2])):
        if g in decided or status[j] is not None:
            continue
        status[j], pred_gt[j] = "matched", g
        decided[g] = _text_outcome(base, inp, g, j, kept[j], compare)

    # 3. split
    for g in care:
        if g in decided:
            continue
        parts = [j for j in range(n_pred) if status[j] is None and inside[g, j] >= rules.part_inside]
        covered_by_parts = _union_cover(gt_geoms[g], pred_geoms[parts]) if parts else 0.0
        if len(parts) >= 2 and covered_by_parts >= rules.split_cover:
            parts = sorted(parts, key=lambda j: _reading_position(inp.pred_polys[j], inp.gt_polys[g]))
            for j in parts:
                status[j], pred_gt[j] = "split_part", g
            joined = " ".join(inp.pred_texts[j] for j in parts)
            decided[g] = base(g, SPLIT, split_parts=parts, pred_text=joined,
                              kept=all(kept[j] for j in parts),
                              text_in_pred=TextCompare(compare.case_insensitive, ignore_space=True)
                              .equal(joined, inp.gt_texts[g]),
                              detail=f"{len(parts)} pieces covering {covered_by_parts:.0%}")

    # 4. loose boxes: covering most of one GT (and no other), IoU too low (small texts: DB's unclip margin)
    pairs = [(cover[g, j], iou[g, j], g, j) for g in care if g not in decided for j in range(n_pred)
             if status[j] is None and cover[g, j] >= rules.loose_cover]
    for _, _, g, j in sorted(pairs, key=lambda t: (-t[0], -t[1], t[2], t[3])):
        if g in decided or status[j] is not None:
            continue
        status[j], pred_gt[j] = "matched", g
        decided[g] = _text_outcome(base, inp, g, j, kept[j], compare)
        decided[g].detail = "; ".join(x for x in (f"loose box (IoU {iou[g, j]:.2f})", decided[g].detail) if x)

    # 5. missed
    for g in care:
        if g not in decided:
            decided[g] = base(g, MISSED)
            decided[g].detail = _missed_detail(decided[g], cover[g], iou[g], pred_gt, rules)

    # predictions left: inside a don't-care region, or false positives
    for j in range(n_pred):
        if status[j] is not None:
            continue
        if dont_care and max(inside[g, j] for g in dont_care) >= rules.dont_care_inside:
            status[j] = "dont_care"
            pred_gt[j] = max(dont_care, key=lambda g: inside[g, j])
        elif not kept[j]:
            status[j] = "dropped"
        elif not str(inp.pred_texts[j]).strip():
            status[j] = "empty"  # an empty reading puts no text into the output
        else:
            status[j] = FALSE_POSITIVE
    return ImageAttribution(gts=[decided[g] for g in care], pred_status=[str(s) for s in status], pred_gt=pred_gt,
                            dont_care=dont_care)


def _fill_perfect(o: GTOutcome, inp: ImageInput, g: int, compare: TextCompare) -> None:
    if inp.perfect is not None and inp.perfect[g] is not None:
        o.perfect_text, o.perfect_score = inp.perfect[g][0], float(inp.perfect[g][1])
        o.perfect_correct = compare.equal(o.perfect_text, o.text)
    if inp.rotated is not None and inp.rotated[g] is not None:
        o.rotated_text = inp.rotated[g][0]
        o.rotated_correct = compare.equal(o.rotated_text, o.text)


def _text_outcome(base, inp: ImageInput, g: int, j: int, kept: bool, compare: TextCompare) -> GTOutcome:
    text, score = inp.pred_texts[j], float(inp.pred_scores[j])
    o = base(g, CORRECT, pred=j, pred_text=text, pred_score=score, kept=kept)
    angle = inp.pred_angles[j] if inp.pred_angles is not None else None
    o.pred_angle = None if angle is None else int(angle)
    turned = " (the orientation model turned this crop by 180°)" if angle == 1 else ""
    if inp.pred_rotated is not None and inp.pred_rotated[j] is not None:
        o.pred_rotated_text = inp.pred_rotated[j][0]
        o.pred_rotated_correct = compare.equal(o.pred_rotated_text, o.text)
    if compare.equal(text, o.text):
        if not kept:
            o.outcome, o.detail = BELOW_THRESHOLD, f"score {score:.3f} < threshold {inp.score_thresh:g}"
    elif o.pred_rotated_correct:
        o.outcome = ORIENTATION
        if angle == 1:
            o.detail = "the orientation model turned an upright crop upside down: the crop as cut reads right"
        elif angle == 0:
            o.detail = "the crop is upside down and the orientation model kept it: read right when turned 180°"
        else:
            o.detail = "the detected box's crop is upside down: read right when turned 180° (no orientation model)"
    elif not o.perfect_correct and (o.rotated_correct or o.vertical):
        o.outcome = ORIENTATION
        o.detail = ("read right when turned 180°" if o.rotated_correct
                    else "the crop is taller than wide, so the pipeline turns it by 90°") + turned
    elif o.perfect_correct:
        o.outcome, o.detail = MISREAD_CROP, "the GT box's crop is read right" + turned
    else:
        o.outcome = MISREAD_REC
        o.detail = "misread from the GT box too" if o.perfect_text is not None else "no GT-crop reading available"
    o.module = MODULE_OF.get(o.outcome)
    return o


def boxes_to_turn(attribution: ImageAttribution) -> list[int]:
    """The matched boxes whose reading is wrong: their crops turned by 180° tell an upside-down crop (orientation)
    from a misread. Read them and attribute again with ``ImageInput.pred_rotated``."""
    return sorted({g.pred for g in attribution.gts
                   if g.outcome in (MISREAD_CROP, MISREAD_REC, ORIENTATION) and g.pred is not None})


def _missed_detail(o: GTOutcome, cover_row: np.ndarray, iou_row: np.ndarray, pred_gt: list,
                   rules: MatchRules) -> str:
    if o.coverage <= 0.0:
        return "no box overlaps it"
    best = int(np.argmax(cover_row))
    if cover_row[best] >= rules.loose_cover and pred_gt[best] is not None:
        return f"the box covering {cover_row[best]:.0%} of it (IoU {iou_row[best]:.2f}) went to GT {pred_gt[best]}"
    return f"partly detected ({o.coverage:.0%} covered, best IoU {o.iou:.2f})"


def _reading_position(pred_poly, gt_poly) -> float:
    """Position of a piece along the GT's first edge (its reading direction), for joining split readings."""
    gt = np.asarray(gt_poly, dtype=np.float64).reshape(-1, 2)
    direction = gt[1] - gt[0]
    norm = np.linalg.norm(direction)
    direction = direction / norm if norm > 0 else np.array([1.0, 0.0])
    centre = np.asarray(pred_poly, dtype=np.float64).reshape(-1, 2).mean(axis=0)
    return float(np.dot(centre - gt[0], direction))


# --- the verdict ------------------------------------------------------------------------------------------------
@dataclass
class ModuleErrors:
    module: str
    errors: int
    outcomes: dict  # outcome -> count (plus "false_positive" for detection)
    #: GT texts this module alone would recover: those whose perfect crop is read right (detection), all (others)
    recoverable: int
    examples: list  # GT ids, most telling first
    #: errors gone if this module were perfect: the recoverable texts, plus the false positives for detection
    fixable: int = 0


@dataclass
class Verdict:
    total: int  # care GT texts
    correct: int
    by_outcome: dict
    false_positives: int  # kept readings of boxes that match no GT
    modules: list  # ModuleErrors, most fixable errors first
    first: Optional[str]  # the module to work on first (None: nothing failed)
    headline: str
    advice: list  # one sentence per module with errors
    notes: list = field(default_factory=list)  # e.g. misreads that differ from the GT only in case / spaces

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


ADVICE = {
    DETECTION: "fine-tune the text detector on these images (det label file in next_training_set/det); "
               "or first try the detection settings (thresh, box_thresh, unclip_ratio)",
    RECOGNITION: "fine-tune the text recogniser on these crops (rec label file in next_training_set/rec)",
    ORIENTATION_MODULE: "enable the text-line orientation model (use_textline_orientation: it turns upside-down "
                        "crops) or fine-tune it; vertical text needs a recogniser trained on it",
    THRESHOLD: "lower text_rec_score_thresh (no training needed)",
}


#: the advice when the pipeline already runs a text-line orientation model (its decisions are what failed)
ORIENTATION_MODEL_ADVICE = ("fine-tune the text-line orientation model on the crops it turns wrong (class list in "
                            "next_training_set/textline_ori, with your rec data: wb train recipe=textline_ori_finetune)"
                            "; vertical text needs a recogniser trained on it")


def verdict(rows: Iterable[dict], false_positives: Sequence[str] = (), score_thresh: float = 0.0,
            max_examples: int = 8, compare: TextCompare = TextCompare(), orientation_model: bool = False) -> Verdict:
    """Rank the modules by the errors a perfect module would remove, then by attributed errors.
    ``orientation_model``: the pipeline ran a text-line orientation model (the advice is then to fine-tune it).

    ``rows``: per-GT dicts with at least ``id``, ``outcome`` and ``perfect_correct`` (:meth:`GTOutcome.to_dict`
    plus an ``id``); ``false_positives``: ids of the boxes that matched nothing and passed the threshold (they count
    as detection errors). Examples are listed worst first: misreads with the largest edit distance, the other
    outcomes in input order.
    """
    from rapidfuzz.distance import Levenshtein

    rows = list(rows)
    by_outcome = Counter(r["outcome"] for r in rows)
    per_module: dict[str, list[dict]] = {}
    for r in rows:
        module = MODULE_OF.get(r["outcome"])
        if module is not None:
            per_module.setdefault(module, []).append(r)
    if false_positives:
        per_module.setdefault(DETECTION, [])

    def badness(r: dict) -> float:
        if r["outcome"] in (MISREAD_REC, MISREAD_CROP, ORIENTATION):
            return -Levenshtein.normalized_distance(r.get("pred_text") or "", r["text"])
        return 0.0

    modules = []
    for module, items in per_module.items():
        counts = dict(Counter(r["outcome"] for r in items))
        errors = len(items)
        if module == DETECTION and false_positives:
            counts[FALSE_POSITIVE] = len(false_positives)
            errors += len(false_positives)
        if module == DETECTION:
            recoverable = sum(bool(r.get("perfect_correct")) for r in items)
        else:
            recoverable = len(items)
        examples = [r["id"] for r in sorted(items, key=badness)[:max_examples]]
        if module == DETECTION and len(examples) < max_examples:
            examples += list(false_positives[: max_examples - len(examples)])
        fixable = recoverable + (len(false_positives) if module == DETECTION else 0)
        modules.append(ModuleErrors(module, errors, counts, recoverable, examples, fixable))
    # first: the module whose perfection removes the most errors (a lost text whose GT box is misread too would
    # only turn into a recognition error), then the one causing the most
    modules.sort(key=lambda m: (-m.fixable, -m.errors, m.module))
    total, correct = len(rows), by_outcome.get(CORRECT, 0)
    first = modules[0].module if modules else None
    advice_of = {**ADVICE, **({ORIENTATION_MODULE: ORIENTATION_MODEL_ADVICE} if orientation_model else {})}
    advice = [f"{m.module}: {m.errors} error{'s' if m.errors != 1 else ''} — {advice_of[m.module]}" for m in modules]
    if first is None:
        headline = (f"All {total} texts read correctly: nothing to fine-tune." if total
                    else "No text to attribute (no care GT).")
    else:
        m = modules[0]
        what = "adjust" if first == THRESHOLD else "fine-tune"
        all_errors = total - correct + len(false_positives)
        headline = (f"{what.capitalize()} the {first} first: it causes {m.errors} of the {all_errors} errors "
                    f"({_outcome_list(m.outcomes)}), and {m.fixable} would be gone if it were perfect")
        if len(modules) > 1:
            headline += f" ({modules[1].module}: {modules[1].fixable})"
        headline += f". {correct}/{total} texts read correctly."
        if first == THRESHOLD:
            headline += f" (text_rec_score_thresh={score_thresh:g})"
    return Verdict(total=total, correct=correct, by_outcome={k: by_outcome.get(k, 0) for k in OUTCOMES},
                   false_positives=len(false_positives), modules=modules, first=first, headline=headline,
                   advice=advice, notes=near_miss_notes(rows, compare) + granularity_notes(rows))


def granularity_notes(rows: Sequence[dict]) -> list[str]:
    """Merged texts found inside the merging box's reading: the detector outputs lines where the labels mark words
    (or fields), a difference of granularity rather than of reading."""
    merged = [r for r in rows if r["outcome"] == MERGED]
    inside = sum(bool(r.get("text_in_pred")) for r in merged)
    if not merged or inside * 2 < len(merged):
        return []
    return [f"{inside} of the {len(merged)} merged texts are read right inside the box that joins them: the detector "
            "finds whole lines where the labels mark words. Fine-tune the detector on your granularity, or if lines "
            "are what you need, label lines"]


def near_miss_notes(rows: Sequence[dict], compare: TextCompare) -> list[str]:
    """Misreads that the comparison options would forgive: differing only in letter case and / or spaces."""
    misread = [r for r in rows if r["outcome"] in (MISREAD_REC, MISREAD_CROP, ORIENTATION)
               and r.get("pred_text") is not None]
    relaxed = {
        "letter case": (TextCompare(True, compare.ignore_space), "case_insensitive=true"),
        "spaces": (TextCompare(compare.case_insensitive, True), "ignore_space=true"),
        "letter case and spaces": (TextCompare(True, True), "case_insensitive=true ignore_space=true"),
    }
    if compare.case_insensitive:
        relaxed.pop("letter case"), relaxed.pop("letter case and spaces")
    if compare.ignore_space:
        relaxed.pop("spaces"), relaxed.pop("letter case and spaces", None)
    notes, counted = [], set()
    for what, (cmp, option) in relaxed.items():
        hits = [i for i, r in enumerate(misread) if i not in counted and cmp.equal(r["pred_text"], r["text"])]
        counted.update(hits)
        if hits:
            notes.append(f"{len(hits)} of the {len(misread)} misreads differ from the GT only in {what}: if that does "
                         f"not matter for you, analyse with {option}")
    return notes


def _outcome_list(counts: dict) -> str:
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
