"""What ``wb data check`` found: the :class:`Report` (findings, per-file usability, statistics) and its summary."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from workbench.data.findings import DataPolicy, Finding, code_info
from workbench.errors import DataError


@dataclass
class SourceInfo:
    file: str
    split: str  # "train" | "val"
    lines: int = 0  # sample lines (each non-blank line that should be a sample)
    usable: int = 0  # samples without (effective) errors

    def to_dict(self) -> dict:
        return {"file": self.file, "split": self.split, "lines": self.lines, "usable": self.usable}


@dataclass
class FindingGroup:
    code: str
    severity: str
    count: int
    samples: int
    share: float | None
    examples: list[str]
    hint: str | None
    description: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class Report:
    """The outcome of a data check. ``ok`` says whether training would start under ``policy``."""

    kind: str
    policy: DataPolicy
    sources: list[SourceInfo]
    findings: list[Finding]
    stats: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    examples: int = 5
    # Not serialised: what the pictures need.
    samples: list = field(default_factory=list, repr=False)
    images: dict = field(default_factory=dict, repr=False)
    check: object = field(default=None, repr=False)  # the LabelCheck that made it (draws its pictures)
    out_dir: Path | None = None
    written: list[Path] = field(default_factory=list)

    # ---- outcome -----------------------------------------------------------------------------------------------
    def severity(self, finding: Finding) -> str:
        return self.policy.severity(finding)

    @property
    def errors(self) -> list[Finding]:
        return self.policy.blocking(self.findings)

    @property
    def total_lines(self) -> int:
        return sum(s.lines for s in self.sources)

    @property
    def total_usable(self) -> int:
        return sum(s.usable for s in self.sources)

    @property
    def ok(self) -> bool:
        """Would training start? strict: no error at all. skip: every label file keeps at least one sample."""
        if self.policy.mode == "strict":
            return not self.errors
        return all(s.usable > 0 for s in self.sources)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def raise_if_failed(self) -> None:
        """For the trainer: raise :class:`DataError` listing the blocking findings when training would not start."""
        if self.ok:
            return
        if self.policy.mode == "strict":
            raise DataError(f"the {self.kind} data would fail training under the strict data policy "
                            f"(see `wb data check`)", self.errors)
        empty = [s.file for s in self.sources if s.usable == 0]
        raise DataError(f"no usable {self.kind} sample left in {', '.join(empty)} after excluding the ones with "
                        f"errors", [f for f in self.errors if f.file in empty])

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(f.code for f in self.findings))

    def groups(self) -> list[FindingGroup]:
        """Findings grouped by code, errors first, then by count."""
        by_code: dict[str, list[Finding]] = collections.defaultdict(list)
        for f in self.findings:
            by_code[f.code].append(f)
        total = max(self.total_lines, 1)
        groups = []
        for code, items in by_code.items():
            info = code_info(code)
            keys = {f.key for f in items if f.line is not None and f.file in self._label_files}
            hint = next((f.hint for f in items if f.hint), None) or info.hint
            groups.append(FindingGroup(
                code=code, severity=self.severity(items[0]), count=len(items), samples=len(keys),
                share=round(len(keys) / total, 4) if keys else None,
                examples=[str(f) for f in items[: self.examples]], hint=hint, description=info.description))
        order = {s: i for i, s in enumerate(("error", "warning", "info"))}
        return sorted(groups, key=lambda g: (order[g.severity], -g.count, g.code))

    @property
    def _label_files(self) -> set[str]:
        return {s.file for s in self.sources}

    def to_dict(self) -> dict:
        sev = collections.Counter(self.severity(f) for f in self.findings)
        return {
            "kind": self.kind,
            "result": "pass" if self.ok else "fail",
            "exit_code": self.exit_code,
            "policy": {"mode": self.policy.mode, "accept": sorted(self.policy.accept)},
            "options": self.options,
            "sources": [s.to_dict() for s in self.sources],
            "totals": {"lines": self.total_lines, "usable": self.total_usable, "errors": sev.get("error", 0),
                       "warnings": sev.get("warning", 0), "info": sev.get("info", 0)},
            "findings": [g.to_dict() for g in self.groups()],
            "stats": self.stats,
            "wall_time_s": round(self.wall_time_s, 3),
        }

    def summary(self) -> str:
        """The short text ``wb data check`` prints."""
        train = [s for s in self.sources if s.split == "train"]
        val = [s for s in self.sources if s.split == "val"]
        head = (f"wb data check {self.kind}: {len(train)} train file(s), {sum(s.lines for s in train):,} samples"
                + (f"; {len(val)} val file(s), {sum(s.lines for s in val):,} samples" if val else ""))
        if self.options.get("dict"):
            head += f"; dictionary {self.options['dict']} ({self.stats.get('dict_size', 0):,} chars)"
        lines = [head]
        groups = self.groups()
        if groups:
            width = max(len(g.code) for g in groups)
            for g in groups:
                smp = f"{g.samples:>6,} samples" if g.samples else " " * 14
                lines.append(f"  {g.severity.upper():7s} {g.code:{width}s} {g.count:>6,}  {smp}  e.g. "
                             f"{clip(g.examples[0], 110)}")
        else:
            lines.append("  no findings")
        missing = self.stats.get("missing_chars")
        if missing:
            shown = ", ".join(f"{c!r}×{n}" for c, n in list(missing.items())[:12])
            more = f" (+{len(missing) - 12} more)" if len(missing) > 12 else ""
            share = self.stats.get("missing_chars_share", 0.0)
            lines.append(f"  characters not in the dictionary: {shown}{more}; "
                         f"{self.stats.get('missing_chars_samples', 0):,} samples ({share:.1%})")
        if self.out_dir is not None:
            names = ", ".join(p.name for p in self.written if p.parent == self.out_dir)
            lines.append(f"report: {self.out_dir} ({names})")
        for p in self.written:
            if p.parent != self.out_dir:
                lines.append(f"cleaned label file: {p}")
        verdict = "PASS" if self.ok else "FAIL"
        n_err = len({f.key for f in self.errors})
        why = (f"{self.total_usable:,} of {self.total_lines:,} samples usable" if self.ok or self.policy.mode == "skip"
               else f"{n_err:,} sample(s)/file(s) with errors would stop training")
        lines.append(f"{verdict} (policy {self.policy.mode}): {why} [{self.wall_time_s:.1f} s]")
        if not self.ok and self.policy.mode == "strict":
            lines.append("  fix the errors above, or train with the data policy 'skip' (excluded samples are counted,"
                         " never replaced)")
        return "\n".join(lines)


def clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."

