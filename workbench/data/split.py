"""Train / validation splits by source document, and the check that a split does not leak.

Crops cut from one receipt (or words from one scene photo) look alike: the paper, the printer, the font, the
neighbouring fields. With crops of one receipt on both sides, validation scores what the model memorised, not
what it will read on the next receipt. So a split is made by **group** — the source document an image comes from —
and `wb data check` flags groups present on both sides.

A group id is derived from the image file name: by default the stem without a trailing ``_<digits>`` (the crop
index) when what remains has a digit: ``images/403_047.png`` -> ``403``, ``images/403.jpg`` -> ``403``,
``img_105_3.png`` -> ``img_105``, ``img_105.jpg`` -> ``img_105`` (a page, not crop 105 of ``img``). So a
rec set of crops and the det set of their pages get the same ids. ``group_pattern`` (a regular expression whose
first group, or whole match, is the id, searched in the file name) covers other naming schemes.

Which side a group lands on is decided by a hash of (seed, group id) compared with one threshold, not by a
shuffled list: a document is held out in every label file split together (the det pages and the rec crops of a
held-out receipt are both held out, so the end-to-end evaluation on those pages is clean), and adding data later
never moves an existing document to the other side. The threshold is set so that the **first** label file gets
exactly ``round(val_fraction x its documents)`` held-out documents (at least one); the other files get about the
same fraction of theirs. Put the smallest set (e.g. the 40 det pages) first.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from workbench.errors import ConfigError

__all__ = ["group_id", "group_hash", "split_threshold", "SplitResult", "split_label_files", "shared_groups"]

_CROP_INDEX = re.compile(r"_\d+$")


def group_id(image_path: str, pattern: Optional[str] = None) -> str:
    """The source document of ``image_path`` (see the module docstring)."""
    name = Path(str(image_path).replace("\\", "/")).name
    if pattern:
        m = re.search(pattern, name)
        if m is None:
            raise ConfigError(f"group pattern {pattern!r} does not match the image name {name!r}")
        return m.group(1) if m.groups() else m.group(0)
    stem = Path(name).stem
    base = _CROP_INDEX.sub("", stem)
    # "img_105" is page 105, not crop 105 of "img": a crop index only follows an id that has digits itself
    return base if base and any(c.isdigit() for c in base) else stem


def group_hash(group: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by (seed, group id): groups below the split threshold are held out."""
    digest = hashlib.sha256(f"{seed}:{group}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_threshold(groups: Iterable[str], val_fraction: float, seed: int = 0) -> float:
    """The hash threshold that holds out exactly ``round(val_fraction x len(groups))`` (>= 1) of ``groups``."""
    hashes = sorted({group_hash(g, seed) for g in groups})
    if len(hashes) < 2:
        raise ConfigError(f"a split needs at least 2 documents, got {len(hashes)}")
    k = min(max(1, round(val_fraction * len(hashes))), len(hashes) - 1)
    return (hashes[k - 1] + hashes[k]) / 2


@dataclass
class SplitResult:
    source: Path
    train_file: Path
    val_file: Path
    train_lines: int = 0
    val_lines: int = 0
    train_groups: int = 0
    val_groups: int = 0
    skipped_lines: list = field(default_factory=list)  # (line number, reason) of lines that are not samples

    def summary(self) -> str:
        return (f"{self.source}: train {self.train_lines} lines / {self.train_groups} documents -> {self.train_file}; "
                f"val {self.val_lines} lines / {self.val_groups} documents -> {self.val_file}")


def split_label_files(
    label_files: Iterable[str | Path],
    out_dir: str | Path,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    group_pattern: Optional[str] = None,
    root: Optional[str | Path] = None,
) -> list[SplitResult]:
    """Split each PaddleOCR label file (rec or det: ``path<TAB>label``) into ``<out>/<name>_train.txt`` and
    ``<name>_val.txt`` by document (see the module docstring). Image paths are rewritten relative to ``out_dir``
    so the new files work where they are. Existing outputs are never overwritten."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val fraction must be between 0 and 1, got {val_fraction}")
    sources = [Path(p) for p in label_files]
    for source in sources:
        if not source.is_file():
            raise ConfigError(f"label file not found: {source}")
    if not sources:
        raise ConfigError("no label file to split")
    first = [ln.split("\t", 1)[0] for ln in sources[0].read_text(encoding="utf-8-sig").splitlines() if "\t" in ln]
    threshold = split_threshold({group_id(p, group_pattern) for p in first}, val_fraction, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for source in sources:
        name = source.parent.name if source.stem == "label" else source.stem
        result = SplitResult(source, out / f"{name}_train.txt", out / f"{name}_val.txt")
        for target in (result.train_file, result.val_file):
            if target.exists():
                raise ConfigError(f"{target} exists; choose another out folder (splits are never overwritten)")
        base = Path(root) if root else source.parent
        sides: dict[bool, list[str]] = {True: [], False: []}
        groups: dict[bool, set] = {True: set(), False: set()}
        text = source.read_text(encoding="utf-8-sig")
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if "\t" not in line:
                result.skipped_lines.append((lineno, "no tab between image path and label"))
                continue
            rel, label = line.split("\t", 1)
            gid = group_id(rel, group_pattern)
            held = group_hash(gid, seed) < threshold
            image = Path(rel) if Path(rel).is_absolute() else base / rel
            sides[held].append(f"{_relative(image, out)}\t{label}\n")
            groups[held].add(gid)
        if not sides[True] or not sides[False]:
            raise ConfigError(f"{source}: {len(groups[False]) + len(groups[True])} documents give an empty "
                              f"{'val' if not sides[True] else 'train'} side at val fraction {val_fraction}; "
                              f"change the fraction or the seed")
        result.train_file.write_text("".join(sides[False]), encoding="utf-8")
        result.val_file.write_text("".join(sides[True]), encoding="utf-8")
        result.train_lines, result.val_lines = len(sides[False]), len(sides[True])
        result.train_groups, result.val_groups = len(groups[False]), len(groups[True])
        results.append(result)
    return results


def _relative(path: Path, start: Path) -> str:
    import os

    try:
        return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return path.resolve().as_posix()


def shared_groups(train_paths: Iterable[str], val_paths: Iterable[str],
                  group_pattern: Optional[str] = None) -> tuple[Counter, Counter, set]:
    """Group ids on each side and those on both (documents that leak from training into validation)."""
    train = Counter(group_id(p, group_pattern) for p in train_paths)
    val = Counter(group_id(p, group_pattern) for p in val_paths)
    return train, val, set(train) & set(val)
