"""Reading and validating PaddleOCR label files: samples plus line-numbered findings.

Formats (one sample per line, UTF-8, the first TAB separates the image path from the label):

* rec: ``relative/img.png<TAB>text``
* det: ``relative/img.jpg<TAB>[{"transcription": "TEXT", "points": [[x1, y1], ..., [x4, y4]]}, ...]``;
  a transcription of ``###`` or ``*`` marks a don't-care region (``ignore_tags``).

Image paths are relative to the label file's folder (the layout of ``shared/data``: ``label.txt`` beside
``images/``), or to ``root`` when one is given (upstream's ``data_dir``). Absolute paths stay as they are.

The readers check everything that needs no image: encoding, delimiter, empty labels, JSON, polygon geometry.
Checks that need the dictionary / model (``validate_rec_text``) or the image size (``validate_det_geometry``) are
separate functions. Nothing is dropped here: each problem is a :class:`Finding`, and the caller's
:class:`~workbench.data.findings.DataPolicy` decides.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.data.charset import Charset
from workbench.data.findings import Finding

IGNORE_TRANSCRIPTIONS = ("###", "*")
UNUSUAL_SPACES = {"\u00a0": "NO-BREAK SPACE", "\u3000": "IDEOGRAPHIC SPACE", "\u2002": "EN SPACE",
                  "\u2003": "EM SPACE", "\u2009": "THIN SPACE", "\u200b": "ZERO WIDTH SPACE",
                  "\r": "CARRIAGE RETURN", "\x0b": "VERTICAL TAB", "\x0c": "FORM FEED", "\ufeff": "BOM"}


@dataclass
class RecSample:
    """One recognition sample: where it is written (``file``:``line``), its image and its text."""

    file: str
    line: int
    image_path: Path
    text: str
    rel_path: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class DetSample:
    """One detection sample. ``polys``: float32 arrays [k, 2] (x, y); ``ignore_tags``: don't-care flags."""

    file: str
    line: int
    image_path: Path
    polys: list[np.ndarray] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    ignore_tags: list[bool] = field(default_factory=list)
    rel_path: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class LabelLine:
    """A label line split at its first TAB (before any format-specific parsing)."""

    lineno: int
    path: str
    label: str


def resolve_image_path(label_file, rel: str, root=None) -> Path:
    base = Path(root) if root is not None else Path(label_file).parent
    return base / rel


def read_label_lines(path, space_label=None) -> tuple[list[LabelLine], list[Finding]]:
    """Split a label file into (line number, image path, label) triples. File-level problems (missing file, BOM,
    CRLF) and line problems (not UTF-8, blank, no TAB, empty path) become findings.

    ``space_label``: a test of a label; a line without a TAB whose text after its last space passes it is split
    there (PaddleClas / PaddleX classification lists: ``images/x.jpg 0``)."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        return [], [Finding.make("missing_label_file", file, None, f"cannot read the label file: {e.strerror or e}")]
    findings: list[Finding] = []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        findings.append(Finding.make("bom", file, 1, "the file starts with a UTF-8 BOM (removed)"))
    blobs = raw.split(b"\n")
    if blobs and blobs[-1] == b"":
        blobs.pop()
    crlf_lines = []
    out: list[LabelLine] = []
    for lineno, blob in enumerate(blobs, start=1):
        if blob.endswith(b"\r"):
            blob = blob[:-1]
            crlf_lines.append(lineno)
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError as e:
            findings.append(Finding.make("bad_line", file, lineno,
                                         f"not valid UTF-8 ({e.reason} at byte {e.start}: {blob[e.start:e.start + 4]!r})"))
            continue
        if "\x00" in text:
            findings.append(Finding.make("bad_line", file, lineno, "the line holds a NUL byte"))
            continue
        if not text.strip():
            findings.append(Finding.make("blank_line", file, lineno, "empty line"))
            continue
        rel, tab, label = text.partition("\t")
        if not tab and space_label is not None:
            head, space, tail = text.rstrip(" ").rpartition(" ")
            if space and head.strip() and space_label(tail):
                rel, tab, label = head, " ", tail
        if not tab:
            hint = None
            if " " in text.strip():
                hint = "the line looks space-separated: use a TAB between image path and label"
            findings.append(Finding.make("no_tab", file, lineno, f"no TAB in {_clip(text)!r}", hint))
            continue
        if not rel.strip():
            findings.append(Finding.make("empty_path", file, lineno, f"no image path before the TAB in {_clip(text)!r}"))
            continue
        out.append(LabelLine(lineno, rel, label))
    if crlf_lines:
        findings.append(Finding.make("crlf", file, None,
                                     f"{len(crlf_lines)} line(s) end with CRLF (first: line {crlf_lines[0]})"))
    return out, findings


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------------------------
# rec
# ---------------------------------------------------------------------------------------------------------------
def read_rec_labels(path, root=None) -> tuple[list[RecSample], list[Finding]]:
    """Parse a rec label file. Every returned sample has a non-empty text; samples with warnings are returned too
    (their findings say which). Samples with errors are *not* returned; their findings are."""
    lines, findings = read_label_lines(path)
    samples = []
    for ln in lines:
        line_findings = rec_text_findings(ln.label, str(path), ln.lineno)
        findings += line_findings
        if any(f.severity == "error" for f in line_findings):
            continue
        samples.append(RecSample(str(path), ln.lineno, resolve_image_path(path, ln.path, root), ln.label, ln.path))
    return samples, findings


def rec_text_findings(text: str, file: str, line: int) -> list[Finding]:
    """Format checks on a rec label that need no dictionary: empty, extra TAB, whitespace, NFC."""
    if text == "":
        return [Finding.make("empty_label", file, line, "the label after the TAB is empty")]
    out = []
    if "\t" in text:
        out.append(Finding.make("extra_tab", file, line, f"the label {text!r} contains a TAB"))
    odd = []
    if text != text.strip(" "):
        odd.append("leading/trailing spaces")
    if "  " in text.strip(" "):
        odd.append("repeated spaces")
    unusual = sorted({UNUSUAL_SPACES[c] for c in text if c in UNUSUAL_SPACES})
    if unusual:
        odd.append(", ".join(unusual))
    if odd:
        out.append(Finding.make("whitespace", file, line, f"{'; '.join(odd)} in {text!r}"))
    if not unicodedata.is_normalized("NFC", text):
        out.append(Finding.make("non_nfc", file, line,
                                f"{text!r} is not NFC; NFC form: {unicodedata.normalize('NFC', text)!r}"))
    return out


def validate_rec_text(sample: RecSample, charset: Charset, max_text_length: int = 25, *,
                      nrtr: bool = True) -> list[Finding]:
    """Checks that need the dictionary and the model: characters not in the dictionary, too long labels.

    ``nrtr``: the model trains an NRTR branch (PP-OCRv5 rec), whose target ``<s> text </s>`` must fit in
    ``max_text_length``, so labels may have at most ``max_text_length - 2`` characters."""
    out = []
    missing = charset.missing_chars(sample.text)
    if missing:
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:8])
        hint = None
        nfc = unicodedata.normalize("NFC", sample.text)
        if nfc != sample.text and not charset.missing_chars(nfc):
            hint = "the NFC-normalised label is fully in the dictionary"
        out.append(Finding.make("char_not_in_dict", sample.file, sample.line,
                                f"{sample.text!r}: not in the dictionary: {shown}", hint))
    limit = Charset.max_chars(max_text_length, nrtr)
    if len(sample.text) > limit:
        why = (f"max_text_length {max_text_length} minus <s> and </s> of the NRTR target" if nrtr
               else f"max_text_length {max_text_length}")
        out.append(Finding.make("label_too_long", sample.file, sample.line,
                                f"{len(sample.text)} characters > {limit} ({why}): {_clip(sample.text)!r}"))
    return out


# ---------------------------------------------------------------------------------------------------------------
# det
# ---------------------------------------------------------------------------------------------------------------
def read_det_labels(path, root=None) -> tuple[list[DetSample], list[Finding]]:
    """Parse a det label file. A sample whose annotation has an error (bad JSON, bad polygon, ...) is not returned;
    its findings are. Images with an empty list are valid samples (negatives)."""
    lines, findings = read_label_lines(path)
    samples = []
    for ln in lines:
        sample, line_findings = parse_det_annotation(ln.label, str(path), ln.lineno)
        findings += line_findings
        if sample is None:
            continue
        sample.image_path = resolve_image_path(path, ln.path, root)
        sample.rel_path = ln.path
        samples.append(sample)
    return samples, findings


def parse_det_annotation(text: str, file: str, line: int) -> tuple[DetSample | None, list[Finding]]:
    """Parse one det annotation (the JSON after the TAB) and check what needs no image."""
    try:
        anns = json.loads(text)
    except json.JSONDecodeError as e:
        return None, [Finding.make("bad_json", file, line, f"{e.msg} at column {e.colno}: {_clip(text)!r}")]
    if not isinstance(anns, list):
        return None, [Finding.make("bad_annotation", file, line,
                                   f"expected a JSON list of boxes, got {type(anns).__name__}")]
    findings: list[Finding] = []
    sample = DetSample(file, line, Path())
    for i, ann in enumerate(anns):
        box = f"box {i}"
        if not isinstance(ann, dict):
            findings.append(Finding.make("bad_annotation", file, line, f"{box} is a {type(ann).__name__}, not an "
                                         f"object"))
            continue
        missing = [k for k in ("transcription", "points") if k not in ann]
        if missing:
            findings.append(Finding.make("bad_annotation", file, line, f"{box} has no {' / '.join(missing)}"))
            continue
        trans = ann["transcription"]
        if not isinstance(trans, str):
            findings.append(Finding.make("bad_annotation", file, line,
                                         f"{box}: transcription is {type(trans).__name__}, not a string"))
            continue
        pts, problem = _polygon_array(ann["points"])
        if problem:
            findings.append(Finding.make("bad_polygon", file, line, f"{box} ({trans!r}): {problem}"))
            continue
        geom = _polygon_geometry_finding(pts, file, line, f"{box} ({trans!r})")
        if geom is not None:
            findings.append(geom)
            continue
        if trans == "":
            findings.append(Finding.make("empty_transcription", file, line, f"{box} has an empty transcription"))
        sample.polys.append(pts)
        sample.texts.append(trans)
        sample.ignore_tags.append(trans in IGNORE_TRANSCRIPTIONS)
    if any(f.severity == "error" for f in findings):
        return None, findings
    if not anns:
        findings.append(Finding.make("no_boxes", file, line, "no boxes: a negative sample"))
    findings += _duplicate_box_findings(sample)
    return sample, findings


# Pixel coordinates beyond this are not coordinates (and overflow float32 to inf in the geometry code).
MAX_COORDINATE = 1e6


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_COORDINATE


def _polygon_array(points) -> tuple[np.ndarray | None, str | None]:
    if not isinstance(points, list) or not points:
        return None, f"'points' must be a non-empty list of [x, y], got {_clip(json.dumps(points))}"
    for j, p in enumerate(points):
        if not (isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p)):
            return None, (f"point {j} is {_clip(json.dumps(p))}, not [x, y] with finite numbers (at most "
                          f"{MAX_COORDINATE:.0e} in size)")
    return np.asarray(points, dtype=np.float32), None


def _polygon_geometry_finding(pts: np.ndarray, file, line, what: str) -> Finding | None:
    from shapely.geometry import MultiPoint, Polygon
    from shapely.validation import explain_validity

    if len(pts) < 4:
        return Finding.make("too_few_points", file, line, f"{what} has {len(pts)} point(s); at least 4 are needed")
    if MultiPoint(pts.astype(np.float64)).convex_hull.area <= 1e-9:
        return Finding.make("zero_area", file, line, f"{what}: all points lie on one line {pts.tolist()}")
    poly = Polygon(pts.astype(np.float64))
    if not poly.is_valid:
        reason = explain_validity(poly)
        return Finding.make("self_intersecting", file, line, f"{what}: {reason}; points {pts.tolist()}")
    return None


def _duplicate_box_findings(sample: DetSample, iou_threshold: float = 0.9) -> list[Finding]:
    from shapely.geometry import Polygon

    n = len(sample.polys)
    if n < 2:
        return []
    boxes = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in sample.polys])
    polys = None
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            if boxes[j, 0] > boxes[i, 2] or boxes[i, 0] > boxes[j, 2] or boxes[j, 1] > boxes[i, 3] \
                    or boxes[i, 1] > boxes[j, 3]:
                continue
            if polys is None:
                polys = [Polygon(p.astype(np.float64)) for p in sample.polys]
            inter = polys[i].intersection(polys[j]).area
            union = polys[i].area + polys[j].area - inter
            iou = inter / union if union > 0 else 0.0
            if iou >= iou_threshold:
                out.append(Finding.make("duplicate_box", sample.file, sample.line,
                                        f"boxes {i} ({sample.texts[i]!r}) and {j} ({sample.texts[j]!r}) overlap "
                                        f"with IoU {iou:.2f}"))
    return out


def validate_det_geometry(sample: DetSample, width: int, height: int, min_text_size: int = 8) -> list[Finding]:
    """Checks that need the image size: points outside the image, text smaller than ``min_text_size``.

    "Small" is measured as upstream's MakeShrinkMap does (the shorter side of the polygon's axis-aligned bounding
    box), here in original pixels; training scales images, so take it as an estimate."""
    out = []
    for i, (pts, text, ignore) in enumerate(zip(sample.polys, sample.texts, sample.ignore_tags)):
        xs, ys = pts[:, 0], pts[:, 1]
        if xs.min() < 0 or ys.min() < 0 or xs.max() > width or ys.max() > height:
            out.append(Finding.make("point_outside_image", sample.file, sample.line,
                                    f"box {i} ({text!r}) spans x {xs.min():g}..{xs.max():g}, y {ys.min():g}.."
                                    f"{ys.max():g} on a {width}x{height} image"))
        short = min(xs.max() - xs.min(), ys.max() - ys.min())
        if not ignore and short < min_text_size:
            out.append(Finding.make("tiny_text", sample.file, sample.line,
                                    f"box {i} ({text!r}) is {short:g} px on its short side < min_text_size "
                                    f"{min_text_size}"))
    return out
