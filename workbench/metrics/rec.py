"""Text-recognition metrics: upstream PaddleOCR's numbers (for comparison) and honest ones, from one pass.

Upstream's ``RecMetric`` (ppocr/metrics/rec_metric.py) as used for every published PP-OCR rec accuracy:

* the target is the label **after the dictionary filter** of the label encoder: characters missing from the
  dictionary silently vanish from the ground truth (samples whose label becomes empty, or is longer than
  ``max_text_length``, are never evaluated: the loader replaces them with other samples);
* ``ignore_space`` (default on) removes ``" "`` from prediction and target; ``is_filter`` keeps only
  ``[0-9A-Za-z]`` and lower-cases;
* ``acc = correct / (n + 1e-5)``, ``norm_edit_dis = 1 - Σ d / (n + 1e-5)`` with
  ``d = Levenshtein(pred, target) / max(len(pred), len(target))`` (0 when both are empty; rapidfuzz's
  ``normalized_distance``). The ``1e-5`` is kept so the numbers equal upstream's exactly.

The honest variants compare the raw label with the prediction: spaces, case and characters the dictionary
cannot produce all count, and every sample counts.

``compute()`` keys:

=====================  ===============================================================================
``acc``                upstream accuracy (dictionary-filtered target, options above)
``norm_edit_dis``      upstream 1 − mean normalised edit distance
``acc_honest``         exact match of raw label and prediction
``ned_honest``         1 − mean normalised edit distance, raw strings
``acc_honest_nocase``  exact match after lower-casing both (e.g. SROIE's upper-case-only labels)
``ned_honest_nocase``  1 − mean normalised edit distance after lower-casing both
``cer_honest``         character error rate: Σ edit distance / Σ label length (raw strings)
``n``                  samples seen; ``n_upstream``: samples upstream would evaluate;
``n_upstream_excluded``  the difference
=====================  ===============================================================================
"""

from __future__ import annotations

import string
from typing import Any, Iterable, Sequence

from rapidfuzz.distance import Levenshtein

#: upstream's epsilon in the denominators of acc / norm_edit_dis
UPSTREAM_EPS = 1e-5
_ALNUM = frozenset(string.digits + string.ascii_letters)


def _dictionary_set(dictionary, use_space_char: bool) -> frozenset[str] | None:
    if dictionary is None:
        return None
    chars = dictionary.characters if hasattr(dictionary, "characters") else dictionary
    chars = set(chars)
    if use_space_char:
        chars.add(" ")
    return frozenset(chars)


class RecMetric:
    """Accuracy / normalised edit distance in upstream and honest modes (see module docstring).

    Args:
        dictionary: the characters the model can output (list, set, or a ``Charset``-like object with
            ``.characters``). Used for upstream's target filter only; ``None`` = no filtering.
        use_space_char: the space is part of the dictionary (as in every PP-OCRv5 rec config).
        ignore_space: upstream's option — remove spaces before comparing (upstream default: on).
        is_filter: upstream's option — keep only ``[0-9A-Za-z]``, lower-cased.
        max_text_length: labels longer than this are excluded from the upstream keys, as upstream's
            label encoder drops them (25 in the PP-OCRv5 configs); ``None`` = no length rule.

    ``update(preds, labels, ids=None)``: ``preds`` are strings or ``(text, score)`` pairs (CTCDecoder output).
    """

    def __init__(
        self,
        dictionary: Iterable[str] | Any | None = None,
        use_space_char: bool = True,
        ignore_space: bool = True,
        is_filter: bool = False,
        max_text_length: int | None = None,
    ):
        self.dictionary = _dictionary_set(dictionary, use_space_char)
        self.ignore_space = ignore_space
        self.is_filter = is_filter
        self.max_text_length = max_text_length
        self.reset()

    def reset(self) -> None:
        self._records: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._records)

    # -- normalisations -------------------------------------------------------------------------------------------

    def upstream_target(self, label: str) -> str | None:
        """The target upstream compares against, or ``None`` when upstream would never evaluate this label."""
        if len(label) == 0 or (self.max_text_length is not None and len(label) > self.max_text_length):
            return None
        if self.dictionary is not None:
            label = "".join(c for c in label if c in self.dictionary)
            if not label:
                return None
        return self._upstream_normalise(label)

    def _upstream_normalise(self, text: str) -> str:
        if self.ignore_space:
            text = text.replace(" ", "")
        if self.is_filter:
            text = "".join(c for c in text if c in _ALNUM).lower()
        return text

    # -- accumulation ---------------------------------------------------------------------------------------------

    def update(self, preds: Sequence, labels: Sequence[str], ids: Sequence | None = None) -> None:
        if len(preds) != len(labels):
            raise ValueError(f"{len(preds)} predictions but {len(labels)} labels")
        if ids is not None and len(ids) != len(labels):
            raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
        for i, (pred, label) in enumerate(zip(preds, labels)):
            text, score = (pred, None) if isinstance(pred, str) else (pred[0], float(pred[1]))
            target = self.upstream_target(label)
            pred_up = self._upstream_normalise(text)
            distance = Levenshtein.distance(text, label)
            missing = "" if self.dictionary is None else "".join(sorted(set(label) - self.dictionary))
            self._records.append(
                {
                    "id": ids[i] if ids is not None else len(self._records),
                    "gt": label,
                    "pred": text,
                    "score": score,
                    "edit_distance": distance,
                    "ned": Levenshtein.normalized_distance(text, label),
                    "ned_nocase": Levenshtein.normalized_distance(text.lower(), label.lower()),
                    "correct_honest": text == label,
                    "correct_nocase": text.lower() == label.lower(),
                    "in_upstream": target is not None,
                    "gt_upstream": target,
                    "pred_upstream": pred_up,
                    "correct": target is not None and pred_up == target,
                    "ned_upstream": None if target is None else Levenshtein.normalized_distance(pred_up, target),
                    "missing_chars": missing,
                }
            )

    # -- results --------------------------------------------------------------------------------------------------

    def compute(self) -> dict[str, float]:
        rows = self._records
        n = len(rows)
        upstream = [r for r in rows if r["in_upstream"]]
        n_up = len(upstream)
        label_chars = sum(len(r["gt"]) for r in rows)
        mean = lambda values: sum(values) / n if n else 0.0  # noqa: E731
        return {
            "acc": sum(r["correct"] for r in upstream) / (n_up + UPSTREAM_EPS),
            "norm_edit_dis": 1 - sum(r["ned_upstream"] for r in upstream) / (n_up + UPSTREAM_EPS),
            "acc_honest": mean([r["correct_honest"] for r in rows]),
            "ned_honest": 1 - mean([r["ned"] for r in rows]) if n else 0.0,
            "acc_honest_nocase": mean([r["correct_nocase"] for r in rows]),
            "ned_honest_nocase": 1 - mean([r["ned_nocase"] for r in rows]) if n else 0.0,
            "cer_honest": sum(r["edit_distance"] for r in rows) / label_chars if label_chars else 0.0,
            "n": n,
            "n_upstream": n_up,
            "n_upstream_excluded": n - n_up,
        }

    def records(self) -> list[dict[str, Any]]:
        """Per-sample rows: ``id, gt, pred, score``, honest ``edit_distance`` / ``ned`` / ``ned_nocase``,
        ``correct_honest``, ``correct_nocase``, upstream ``in_upstream, gt_upstream, pred_upstream, correct,
        ned_upstream``, and ``missing_chars`` (label characters the dictionary lacks)."""
        return [dict(r) for r in self._records]
