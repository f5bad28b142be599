"""Findings: every problem with input data, with the file and line it comes from, and the policy that acts on them.

Upstream PaddleOCR silently drops or replaces samples it cannot read (and drops characters missing from the
dictionary from the ground truth). Here nothing is dropped or replaced silently: each problem becomes a
:class:`Finding`, and a :class:`DataPolicy` decides what happens to the samples that carry error findings:

* ``strict`` (default): any error-severity finding raises :class:`workbench.errors.DataError` listing them;
* ``skip``: the affected samples are excluded, counted per code, and the counts are returned for logging / MLflow.

Warnings and info findings never stop anything; they are reported (``wb data check``) and logged.

The codes are stable strings. :data:`CODES` below is the one table that documents them (``wb data check
--list-codes`` prints it).
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field
from typing import Iterable, Literal

from workbench.errors import ConfigError, DataError

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class CodeInfo:
    """One row of the code table."""

    severity: Severity
    scope: str  # "rec", "det", "ori", "both", "dict": which inputs can raise it ("ori": orientation class files)
    description: str
    hint: str | None = None
    # True where the data can still be used as decoded / parsed, so a user may accept it as a warning
    # (``DataPolicy(accept={code})``). False where the sample cannot be trained at all.
    acceptable: bool = False


# The code table. Keep it sorted by where the problem is found: label file, label text, image, polygon, set level.
CODES: dict[str, CodeInfo] = {
    # --- label file ---------------------------------------------------------------------------------------------
    "missing_label_file": CodeInfo("error", "both", "The label file does not exist or cannot be read."),
    "bad_line": CodeInfo(
        "error", "both", "The line is not valid UTF-8 (or holds a NUL byte).",
        "Re-save the label file as UTF-8.",
    ),
    "blank_line": CodeInfo(
        "warning", "both", "An empty (or whitespace-only) line; it holds no sample and is ignored.",
        "Remove empty lines.",
    ),
    "no_tab": CodeInfo(
        "error", "both", "No TAB between image path and label (wrong delimiter).",
        "Separate the image path from the label with one TAB character.",
    ),
    "empty_path": CodeInfo("error", "both", "The image path before the TAB is empty."),
    "bom": CodeInfo(
        "warning", "both", "The file starts with a UTF-8 byte-order mark (removed on reading; upstream would "
        "read it as part of the first image path).", "Save the file as UTF-8 without BOM.",
    ),
    "crlf": CodeInfo(
        "warning", "both", "Windows line endings (CRLF; the CR is removed on reading; upstream keeps it in rec "
        "labels).", "Convert the file to LF line endings.",
    ),
    # --- rec label text -----------------------------------------------------------------------------------------
    "empty_label": CodeInfo("error", "rec", "The text after the TAB is empty.", "Label the crop or remove the line."),
    "extra_tab": CodeInfo(
        "error", "rec", "The label contains another TAB (upstream would cut the label at it).",
        "Remove the TAB from the text, or fix the delimiter.",
    ),
    "char_not_in_dict": CodeInfo(
        "error", "rec", "The label has characters the dictionary does not contain (upstream silently deletes "
        "them from the ground truth).",
        "Extend the dictionary with missing_chars.txt from the report (this changes the head size), "
        "or fix / drop these labels.",
    ),
    "label_too_long": CodeInfo(
        "error", "rec", "The label has more characters than the model can be trained on (max_text_length; with "
        "the NRTR branch max_text_length - 2).",
        "Raise max_text_length (only if the model allows it) or split the crops.",
    ),
    "non_nfc": CodeInfo(
        "warning", "rec", "The label is not in Unicode NFC form (e.g. a decomposed accent); the dictionary "
        "matches code points, so 'é' and 'e'+U+0301 are different.", "NFC-normalise the labels.",
    ),
    "whitespace": CodeInfo(
        "warning", "rec", "Leading / trailing whitespace, repeated spaces or unusual space characters in the "
        "label.", "Check the transcription; strip stray spaces.",
    ),
    # --- images ---------------------------------------------------------------------------------------------------
    "missing_image": CodeInfo("error", "both", "The image file does not exist.",
                              "Check the path; it is relative to the label file's folder unless a root is given."),
    "corrupt_image": CodeInfo("error", "both", "The image cannot be decoded (not an image, or a damaged one).",
                              "Re-export the image or remove the line."),
    "image_too_large": CodeInfo(
        "error", "both", "The image header declares more pixels than the workbench decodes (WB_MAX_IMAGE_PIXELS, "
        "default 2^27 = 134 M): a decompression bomb, or a scan far larger than any model input. It is refused "
        "from its header, never decoded.", "Downscale the image, or raise WB_MAX_IMAGE_PIXELS knowingly.",
    ),
    "truncated_image": CodeInfo(
        "error", "both", "The image file ends before its end marker (JPEG EOI / PNG IEND). OpenCV still decodes "
        "it and invents the missing pixels (grey or black rows, blurred detail), so the labels no longer match "
        "the pixels.", "Re-export the image; or accept it knowingly with --accept truncated_image.",
        acceptable=True,
    ),
    "extreme_aspect_ratio": CodeInfo(
        "warning", "rec", "The crop is very wide (squeezed hard into 48x320) or, for a multi-character label, "
        "taller than wide (vertical or rotated text).", "Check the crop; split very long lines.",
    ),
    "exif_orientation": CodeInfo(
        "warning", "both", "The image carries an EXIF orientation; it is decoded rotated (as PaddleX does), so "
        "its labels must refer to the rotated image.", "Bake the rotation into the pixels and drop the tag.",
    ),
    "duplicate_image": CodeInfo(
        "warning", "both", "The same image content (by hash) appears on several lines.",
        "Remove duplicates; they over-weight the sample.",
    ),
    "conflicting_labels": CodeInfo(
        "warning", "both", "The same image content appears with different labels.",
        "Decide which label is right.",
    ),
    "train_val_leak": CodeInfo(
        "warning", "both", "An image of the validation set is also in the training set (by content hash); "
        "validation metrics would be optimistic.", "Remove it from one of the sets.",
    ),
    "document_leak": CodeInfo(
        "warning", "both", "A validation image comes from a document (receipt, page, scene) that also has images in "
        "the training set: its id is the file name without a trailing _<crop index> (403_047.png and 403_012.png "
        "are both receipt 403). Crops of one document share paper, print and neighbours, so validation metrics "
        "would be optimistic.", "Split by document: wb data split TRAIN_LABELS [...] --out DIR.",
    ),
    # --- det annotations ----------------------------------------------------------------------------------------
    "bad_json": CodeInfo("error", "det", "The annotation after the TAB is not valid JSON.",
                         "Write a JSON list of {\"transcription\": ..., \"points\": [[x, y], ...]} objects."),
    "bad_annotation": CodeInfo(
        "error", "det", "The JSON is not a list of objects with a string 'transcription' and a 'points' list.",
        "Write a JSON list of {\"transcription\": ..., \"points\": [[x, y], ...]} objects.",
    ),
    "bad_polygon": CodeInfo("error", "det", "'points' is not a list of [x, y] pairs of finite numbers."),
    "too_few_points": CodeInfo("error", "det", "A polygon has fewer than 4 points.",
                               "Give at least 4 points (a quad: top-left, top-right, bottom-right, bottom-left)."),
    "zero_area": CodeInfo("error", "det", "A polygon encloses no area (all points on one line).",
                          "Fix or remove the box."),
    "self_intersecting": CodeInfo(
        "error", "det", "A polygon crosses itself (points out of order, e.g. a 'bow tie' quad).",
        "Order the points around the outline (clockwise from top-left).",
    ),
    "point_outside_image": CodeInfo(
        "warning", "det", "A polygon has points outside the image (they are clipped in training).",
        "Check that the label belongs to this image and its size.",
    ),
    "duplicate_box": CodeInfo("warning", "det", "Two boxes of one image are (nearly) identical (IoU >= 0.9).",
                              "Remove the duplicate."),
    "empty_transcription": CodeInfo(
        "warning", "det", "A box has an empty transcription. It is trained as text, not as don't-care.",
        "Use \"###\" for boxes that should be ignored.",
    ),
    "no_boxes": CodeInfo(
        "info", "det", "An image without boxes: trained as a pure negative (upstream drops such images).",
    ),
    "tiny_text": CodeInfo(
        "warning", "det", "A box smaller than min_text_size on its short side (in original pixels); training "
        "masks it out like a don't-care box.",
    ),
    # --- orientation labels -------------------------------------------------------------------------------------
    "unknown_class": CodeInfo(
        "error", "ori", "The label of an orientation class file is not a class of the task (its PaddleX name, its "
        "angle or its index, e.g. 0_degree / 180 / 1).", "Use one of the class names the report lists.",
    ),
    "no_orientation_signal": CodeInfo(
        "warning", "ori", "A page without text boxes cannot show which way is up; it is not turned into "
        "document-orientation samples.", "Nothing to do, or label its orientation in a class file.",
    ),
    # --- set level ----------------------------------------------------------------------------------------------
    "all_upper_case": CodeInfo(
        "warning", "rec", "No label has a lower-case letter: a model fine-tuned on them learns to read upper "
        "case only.", "Score case-insensitively, or relabel with the case printed.",
    ),
    "all_lower_case": CodeInfo(
        "warning", "rec", "No label has an upper-case letter: a model fine-tuned on them learns to read lower "
        "case only.", "Score case-insensitively, or relabel with the case printed.",
    ),
    "no_samples": CodeInfo("error", "both", "A label file yields no usable sample."),
    # --- dictionary -----------------------------------------------------------------------------------------------
    "dict_bom": CodeInfo("warning", "dict", "The dictionary starts with a UTF-8 BOM (removed; upstream would "
                         "glue it to the first character).", "Save the dictionary as UTF-8 without BOM."),
    "dict_empty_line": CodeInfo(
        "warning", "dict", "An empty dictionary line. It keeps its index (weights depend on it) but can never "
        "be a target.",
    ),
    "dict_multi_codepoint": CodeInfo(
        "warning", "dict", "A dictionary line with several code points (e.g. a flag emoji). Labels are matched "
        "code point by code point, so this class can be predicted but never trained.",
    ),
    "dict_duplicate": CodeInfo(
        "warning", "dict", "A character listed twice (or a space line while use_space_char adds one); labels "
        "use the last index, the earlier one is never trained.",
    ),
    "dict_bad_encoding": CodeInfo("error", "dict", "The dictionary is not valid UTF-8."),
}


def code_info(code: str) -> CodeInfo:
    try:
        return CODES[code]
    except KeyError:
        raise KeyError(f"unknown finding code {code!r}; known: {', '.join(sorted(CODES))}") from None


@dataclass(frozen=True)
class Finding:
    """One problem in the input data, where it is (label file + 1-based line, or ``None`` for file level)."""

    severity: Severity
    code: str
    file: str
    line: int | None
    message: str
    hint: str | None = None

    @classmethod
    def make(cls, code: str, file, line: int | None, message: str, hint: str | None = None) -> "Finding":
        """A finding with the code's default severity (from :data:`CODES`)."""
        return cls(code_info(code).severity, code, str(file), line, message, hint)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    @property
    def key(self) -> tuple[str, int | None]:
        """The sample (label file, line) the finding belongs to."""
        return (self.file, self.line)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.where}: [{self.code}] {self.message}"


def format_findings(findings: Iterable[Finding], limit: int = 20) -> str:
    findings = list(findings)
    text = "\n".join(f"  {f.severity.upper():7s} {f}" for f in findings[:limit])
    if len(findings) > limit:
        text += f"\n  ... and {len(findings) - limit} more"
    return text


@dataclass(frozen=True)
class DataPolicy:
    """What happens to samples that carry error findings.

    ``mode``: ``"strict"`` raises :class:`DataError` on any error; ``"skip"`` excludes the sample and counts it.
    ``accept``: codes the user accepts as warnings (only codes whose table row says ``acceptable``; for now
    ``truncated_image``): such samples are used as they decode.
    """

    mode: Literal["strict", "skip"] = "strict"
    accept: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self):
        if self.mode not in ("strict", "skip"):
            raise ConfigError(f"data policy must be 'strict' or 'skip', got {self.mode!r}")
        object.__setattr__(self, "accept", frozenset(self.accept))
        for code in self.accept:
            if not code_info(code).acceptable:
                acceptable = sorted(c for c, i in CODES.items() if i.acceptable)
                raise ConfigError(f"finding code {code!r} cannot be accepted (the sample cannot be trained); "
                                  f"acceptable codes: {', '.join(acceptable)}")

    def severity(self, finding: Finding) -> str:
        """The effective severity: an accepted error counts as a warning."""
        if finding.severity == "error" and finding.code in self.accept:
            return "warning"
        return finding.severity

    def blocking(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings that make their sample untrainable under this policy."""
        return [f for f in findings if self.severity(f) == "error"]

    def apply(self, samples: list, findings: Iterable[Finding], *, what: str = "training data",
              skippable: bool = True):
        """Act on parse-time findings. Returns ``(kept_samples, skipped_counts)``.

        ``skippable=False``: the caller has no skip mode, so the strict error does not suggest one.

        ``samples`` carry ``file`` and ``line``. File-level errors (``line is None``) exclude every sample of
        that file in ``skip`` mode. ``strict`` raises :class:`DataError` listing every blocking finding.
        """
        errors = self.blocking(findings)
        if not errors:
            return list(samples), collections.Counter()
        if self.mode == "strict":
            counts = collections.Counter(f.code for f in errors)
            summary = ", ".join(f"{code}: {n}" for code, n in counts.most_common())
            remedy = (", or use the data policy 'skip' to exclude these samples (they are counted, never replaced)"
                      if skippable else "")
            raise DataError(f"{len(errors)} problem(s) in {what} ({summary}). Fix them (see `wb data check`){remedy}",
                            errors)
        # One count per excluded sample (label file + line), under the code of its first error. Samples that failed
        # to parse are not in ``samples`` at all; they are counted the same way.
        first_code: dict[tuple, str] = {}
        for f in errors:
            first_code.setdefault(f.key, f.code)
        bad_files = {f.file for f in errors if f.line is None}
        kept = [s for s in samples if (str(s.file), s.line) not in first_code and str(s.file) not in bad_files]
        return kept, collections.Counter(first_code.values())

    def on_failure(self, finding: Finding) -> None:
        """A failure while reading one sample at train time: raise in strict mode, return in skip mode."""
        if self.mode == "strict":
            raise DataError(f"cannot read a sample ({finding.code})", [finding])
