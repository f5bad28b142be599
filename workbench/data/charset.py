"""Character dictionaries: loading, CTC / NRTR label encoding and decoding, coverage.

The class layout is upstream's, because the head weights depend on it:

* CTC (``CTCLabelEncode``): class 0 = blank, classes 1..n = the dictionary lines in file order, class n+1 = space
  (only with ``use_space_char``). ``num_ctc_classes`` = n + 2 (n + 1 without the space class).
* NRTR (``NRTRLabelEncode``): 0 = pad ("blank"), 1 = ``<unk>``, 2 = ``<s>``, 3 = ``</s>``, 4..n+3 = the dictionary
  lines, n+4 = space. A target is ``[2] + chars + [3]`` padded with 0, so at most ``max_len - 2`` characters fit.

Where a character is listed twice, the *last* index wins (upstream builds its lookup the same way), and the appended
space class wins over a space line in the file.

Unlike upstream, nothing is dropped silently: encoding a text with characters outside the dictionary, an empty text
or a too long one raises :class:`DataError`. Datasets validate the labels first (``labels.validate_rec_text``), so
at train time that cannot happen.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from workbench.errors import DataError
from workbench.data.findings import Finding

NRTR_PAD, NRTR_UNK, NRTR_BOS, NRTR_EOS = 0, 1, 2, 3
NRTR_OFFSET = 4  # dictionary line i (0-based) is NRTR class i + 4
CTC_BLANK = 0

_BOM = "\ufeff"


class Charset:
    """A recognition dictionary.

    ``chars``: the dictionary lines in order (each normally one code point). Line *i* (0-based) is CTC class
    *i + 1* and NRTR class *i + 4*.
    """

    def __init__(self, chars: Sequence[str], use_space_char: bool = True, *, source: str | None = None,
                 findings: Iterable[Finding] = ()):
        self.characters: list[str] = list(chars)
        self.use_space_char = bool(use_space_char)
        self.source = source
        self.findings: list[Finding] = list(findings)
        n = len(self.characters)
        self._ctc: dict[str, int] = {}
        for i, ch in enumerate(self.characters):
            self._ctc[ch] = i + 1  # later duplicates overwrite earlier ones, as upstream
        if self.use_space_char:
            self._ctc[" "] = n + 1

    # ---- loading -----------------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path, use_space_char: bool = True) -> "Charset":
        """Read a dictionary file: one character per line, UTF-8. A BOM and CRLF line endings are tolerated; a line
        holding a single space is the character " ". Problems are kept in ``.findings`` (see ``CODES``: dict_*)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read dictionary {path}: {e.strerror or e}") from None
        lines = raw.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the newline that ends the last line does not start another one
        chars: list[str] = []
        findings: list[Finding] = []
        for lineno, blob in enumerate(lines, start=1):
            try:
                text = blob.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"dictionary {path}:{lineno} is not valid UTF-8 ({e.reason} at byte {e.start})",
                                [Finding.make("dict_bad_encoding", path, lineno, "not valid UTF-8")]) from None
            if lineno == 1 and text.startswith(_BOM):
                text = text[1:]
                findings.append(Finding.make("dict_bom", path, 1, "the file starts with a UTF-8 BOM (removed)"))
            # Upstream strips CR / LF characters (only those) from both ends: a line " " stays the space character.
            chars.append(text.strip("\r\n"))
        findings += _dictionary_findings(chars, use_space_char, path)
        return cls(chars, use_space_char, source=str(path), findings=findings)

    # ---- sizes and lookups -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.characters)

    @property
    def num_ctc_classes(self) -> int:
        """Blank + dictionary (+ space): the CTC head's output size."""
        return len(self.characters) + 1 + int(self.use_space_char)

    @property
    def num_nrtr_classes(self) -> int:
        """pad, <unk>, <s>, </s> + dictionary (+ space). The NRTR embedding has one row more (never a target)."""
        return len(self.characters) + NRTR_OFFSET + int(self.use_space_char)

    @property
    def space_index(self) -> int | None:
        """The CTC class of the appended space, or None without ``use_space_char``."""
        return len(self.characters) + 1 if self.use_space_char else None

    def ctc_class_names(self) -> list[str]:
        """Name of each CTC class: ``["blank", *characters, " "]`` (what PaddleX's CTCLabelDecode builds)."""
        return ["blank", *self.characters] + ([" "] if self.use_space_char else [])

    def __contains__(self, char: str) -> bool:
        return char in self._ctc

    def missing_chars(self, text: str) -> list[str]:
        """The distinct characters (code points) of ``text`` that the dictionary cannot encode, in text order."""
        return list(dict.fromkeys(ch for ch in text if ch not in self._ctc))

    @staticmethod
    def max_chars(max_len: int, nrtr: bool = True) -> int:
        """How many characters a label may have: ``max_len`` for CTC, ``max_len - 2`` when an NRTR target
        (``<s>`` ... ``</s>``) must fit in ``max_len`` too (PP-OCRv5 rec trains both)."""
        return max_len - 2 if nrtr else max_len

    @property
    def sha256(self) -> str:
        """sha256 of the normalised content: the lines joined by LF with a final LF, UTF-8, no BOM. A CRLF copy of
        a dictionary therefore hashes like the LF original. ``use_space_char`` is not part of it."""
        return hashlib.sha256(("\n".join(self.characters) + "\n").encode("utf-8")).hexdigest()

    # ---- encoding ----------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """CTC class of each character of ``text`` (code point by code point, as upstream)."""
        if not text:
            raise DataError("cannot encode an empty label")
        missing = self.missing_chars(text)
        if missing:
            raise DataError(f"label {text!r} has characters that are not in the dictionary: "
                            + ", ".join(_describe_char(c) for c in missing))
        return [self._ctc[ch] for ch in text]

    def encode_ctc(self, text: str, max_len: int = 25) -> tuple[np.ndarray, int]:
        """Upstream ``CTCLabelEncode``: ``(label int64 [max_len] padded with 0, length)``."""
        if len(text) > max_len:
            raise DataError(f"label {text!r} has {len(text)} characters, more than max_text_length {max_len}")
        ids = self.encode(text)
        label = np.zeros(max_len, dtype=np.int64)
        label[: len(ids)] = ids
        return label, len(ids)

    def encode_nrtr(self, text: str, max_len: int = 25) -> tuple[np.ndarray, int]:
        """Upstream ``NRTRLabelEncode``: ``([<s>=2, char + 3 ..., </s>=3] padded with 0 to max_len, length)``.
        Texts of ``max_len - 1`` or more characters are rejected (the target would not fit)."""
        if len(text) >= max_len - 1:
            raise DataError(f"label {text!r} has {len(text)} characters; an NRTR target holds at most "
                            f"{max_len - 2} (max_text_length {max_len} minus <s> and </s>)")
        ids = self.encode(text)
        label = np.zeros(max_len, dtype=np.int64)
        label[0] = NRTR_BOS
        label[1 : len(ids) + 1] = np.asarray(ids, dtype=np.int64) + (NRTR_OFFSET - 1)
        label[len(ids) + 1] = NRTR_EOS
        return label, len(ids)

    @property
    def num_sar_classes(self) -> int:
        """Dictionary (+ space), ``<UKN>``, ``<BOS/EOS>``, ``<PAD>``: the SAR branch's classes (CTC classes + 2)."""
        return len(self.characters) + int(self.use_space_char) + 3

    def encode_sar(self, text: str, max_len: int = 25) -> tuple[np.ndarray, int]:
        """Upstream ``SARLabelEncode``: ``[<BOS/EOS>, char ..., <BOS/EOS>]`` padded with ``<PAD>`` to ``max_len``;
        a character's SAR class is its CTC class - 1 (no blank). Texts of ``max_len - 1`` or more characters are
        rejected (as upstream)."""
        if len(text) >= max_len - 1:
            raise DataError(f"label {text!r} has {len(text)} characters; a SAR target holds at most {max_len - 2}")
        ids = [i - 1 for i in self.encode(text)]
        start_end, padding = self.num_sar_classes - 2, self.num_sar_classes - 1
        label = np.full(max_len, padding, dtype=np.int64)
        label[0] = start_end
        label[1 : len(ids) + 1] = ids
        label[len(ids) + 1] = start_end
        return label, len(ids)

    # ---- decoding ----------------------------------------------------------------------------------------------
    def decode(self, indices: Iterable[int], *, collapse_repeats: bool = False) -> str:
        """CTC class indices to text: blanks removed; with ``collapse_repeats`` repeated classes merged first (greedy
        CTC decoding)."""
        names = self.ctc_class_names()
        out, prev = [], None
        for idx in indices:
            idx = int(idx)
            if collapse_repeats and idx == prev:
                continue
            prev = idx
            if idx == CTC_BLANK:
                continue
            if not 0 < idx < len(names):
                raise ValueError(f"CTC class {idx} is outside 0..{len(names) - 1}")
            out.append(names[idx])
        return "".join(out)

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        return f"Charset({len(self)} chars, use_space_char={self.use_space_char}{src})"


def _describe_char(ch: str) -> str:
    return f"{ch!r} (U+{ord(ch):04X})" if len(ch) == 1 else repr(ch)


def _dictionary_findings(chars: list[str], use_space_char: bool, path) -> list[Finding]:
    findings = []
    first_seen: dict[str, int] = {}
    for lineno, ch in enumerate(chars, start=1):
        if ch == "":
            findings.append(Finding.make("dict_empty_line", path, lineno, "empty line (keeps its class index)"))
            continue
        if len(ch) > 1:
            cps = " ".join(f"U+{ord(c):04X}" for c in ch)
            findings.append(Finding.make("dict_multi_codepoint", path, lineno,
                                         f"{ch!r} is {len(ch)} code points ({cps}); it can never be a target"))
        if ch in first_seen:
            findings.append(Finding.make("dict_duplicate", path, lineno,
                                         f"{ch!r} is also on line {first_seen[ch]}; only this line's class is "
                                         f"trained"))
        else:
            first_seen[ch] = lineno
    if use_space_char and " " in first_seen:
        findings.append(Finding.make("dict_duplicate", path, first_seen[" "],
                                     "a space line while use_space_char appends a space class: labels use the "
                                     "appended one"))
    return findings
