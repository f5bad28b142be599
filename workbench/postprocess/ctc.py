"""Greedy CTC decoding, exactly as PaddleX 3.7's ``CTCLabelDecode`` (what the deployed rec model's output goes through).

Classes are ``["blank"] + dictionary + [" "]`` (space last when ``use_space_char``; PaddleX always appends it for
exported models). For each time step take the arg-max class (the first one on ties) and its probability; drop a
step that repeats the previous step's class, then drop blanks (class 0). The text is the kept classes' characters;
the score is the float32 mean of the kept steps' max probabilities, and **0.0 when nothing is kept** (empty text).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

BLANK = "blank"


def character_list(charset) -> tuple[list[str], bool | None]:
    """Dictionary characters (no blank, no space class) from a list/str or a ``Charset``-like object.

    A ``Charset``-like object exposes ``characters`` (the dictionary lines in file order) and may expose
    ``use_space_char``; returns ``(characters, use_space_char or None when the object does not say)``.
    """
    if isinstance(charset, str):
        return list(charset), None
    if hasattr(charset, "characters"):
        return list(charset.characters), getattr(charset, "use_space_char", None)
    chars = list(charset)
    if not all(isinstance(c, str) for c in chars):
        raise TypeError("CTCDecoder needs the dictionary characters as strings (or a Charset with .characters)")
    return chars, None


class CTCDecoder:
    """Greedy CTC decoder: ``probs [N, T, C] → [(text, score), ...]``.

    Args:
        characters: the dictionary (list of characters in file order, without blank and space), or a
            ``Charset``-like object with ``.characters`` (its ``use_space_char``, when present, wins).
        use_space_char: append the space class (``C = len(dictionary) + 2``).
    """

    def __init__(self, characters: Sequence[str] | object, use_space_char: bool = True):
        chars, charset_space = character_list(characters)
        if charset_space is not None:
            use_space_char = bool(charset_space)
        self.use_space_char = use_space_char
        self.classes: list[str] = [BLANK] + chars + ([" "] if use_space_char else [])
        # object array so a whole row's characters are gathered with one fancy index
        self._lookup = np.array(self.classes, dtype=object)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __call__(self, probs) -> list[tuple[str, float]]:
        probs = np.asarray(probs)
        if probs.ndim != 3:
            raise ValueError(f"expected CTC probabilities [N, T, C], got shape {probs.shape}")
        if probs.shape[2] != self.num_classes:
            # a model trained with another dictionary would decode to garbage: say so instead
            raise ValueError(
                f"CTC output has {probs.shape[2]} classes but the dictionary gives {self.num_classes} "
                f"(len(dict) + blank{' + space' if self.use_space_char else ''})"
            )
        best = probs.argmax(axis=2)
        best_prob = probs.max(axis=2)
        keep = np.ones_like(best, dtype=bool)
        keep[:, 1:] = best[:, 1:] != best[:, :-1]  # merge repeats first ...
        keep &= best != 0  # ... then drop blanks: "a-a" stays "aa", "aa" becomes "a"
        results = []
        for row_best, row_prob, row_keep in zip(best, best_prob, keep):
            text = "".join(self._lookup[row_best[row_keep]])
            kept = row_prob[row_keep]
            score = float(np.mean(kept)) if kept.size else 0.0
            results.append((text, score))
        return results

    def decode_indices(self, indices: Sequence[int]) -> str:
        """Characters of class indices as they are (no merging, blanks dropped): for label → text."""
        return "".join(self.classes[i] for i in indices if i != 0)
