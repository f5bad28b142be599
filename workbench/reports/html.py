"""Small building blocks of the workbench's HTML reports (module reports, ``wb compare``).

Every page is one self-contained file: CSS inline, pictures embedded as ``data:`` URIs, no scripts, no fonts or
anything else fetched from a network, so a report opens the same from an MLflow artifact view, an e-mail or an
air-gapped machine. Functions return :class:`Markup` (HTML that is already safe); everything else put into a page
goes through :func:`esc`.
"""

from __future__ import annotations

import base64
import bisect
import html
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np


class Markup(str):
    """A string of HTML that must not be escaped again."""


def esc(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    return Markup(sep.join(esc(p) for p in parts))


# --- numbers ---------------------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 4) -> str:
    """Numbers for tables: ints as they are, floats with ``digits`` decimals, ``None`` / NaN as a dash."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def pct(part: float, whole: float, digits: int = 1) -> str:
    return "–" if not whole else f"{100.0 * part / whole:.{digits}f}%"


# --- pictures --------------------------------------------------------------------------------------------------
def read_image(path: str | Path | None) -> np.ndarray | None:
    """BGR uint8 image, or ``None`` when the file is missing or unreadable (a report still renders without it)."""
    import cv2

    if not path:
        return None
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # np.fromfile + imdecode: non-ASCII paths work too
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def fit(image: np.ndarray, max_width: int, max_height: int, upscale: float = 1.0) -> np.ndarray:
    """``image`` scaled to fit ``max_width`` x ``max_height`` (enlarged up to ``upscale`` times when small)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(max_width / max(w, 1), max_height / max(h, 1), upscale)
    if abs(scale - 1.0) < 1e-3:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def data_uri(image: np.ndarray, fmt_: str = "jpeg", quality: int = 85) -> str:
    """A BGR / gray image as a ``data:`` URI (JPEG for photos, PNG when exact pixels matter)."""
    import cv2

    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if fmt_ == "png":
        ok, buf = cv2.imencode(".png", image)
        mime = "image/png"
    else:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        mime = "image/jpeg"
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as {fmt_}")
    return f"data:{mime};base64,{base64.b64encode(buf.tobytes()).decode('ascii')}"


def img(uri: str, alt: str = "", cls: str = "", title: str = "") -> Markup:
    title_attr = f' title="{esc(title)}"' if title else ""
    return Markup(f'<img class="{esc(cls)}" src="{uri}" alt="{esc(alt)}"{title_attr}>')


def missing_picture(reason: str) -> Markup:
    return Markup(f'<div class="nopic">{esc(reason)}</div>')


# --- layout ----------------------------------------------------------------------------------------------------
def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    *,
    cls: str = "",
    numeric_from: int = 1,
    text_columns: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
) -> Markup:
    """A table; columns from ``numeric_from`` on are right-aligned, except ``text_columns``.
    Cells: Markup as is, numbers via :func:`fmt`, anything else escaped."""
    right = lambda i: i >= numeric_from and i not in text_columns  # noqa: E731
    out = [f'<table class="{esc(cls)}"><thead><tr>']
    out += [f'<th class="{"num" if right(i) else ""}">{esc(h)}</th>' for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        rc = row_classes[r] if row_classes is not None else ""
        out.append(f'<tr class="{esc(rc)}">' if rc else "<tr>")
        for i, value in enumerate(row):
            text = value if isinstance(value, Markup) else esc(fmt(value))
            out.append(f'<td class="num">{text}</td>' if right(i) else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))


def kv_table(items: dict, cls: str = "kv") -> Markup:
    """Name / value rows; numbers right-aligned, text left-aligned."""
    rows = [(k, v if isinstance(v, Markup) else esc(fmt(v))) for k, v in items.items()]
    text_rows = {i for i, v in enumerate(items.values()) if not isinstance(v, (int, float, np.number))}
    out = [f'<table class="{esc(cls)}"><tbody>']
    for i, (k, v) in enumerate(rows):
        out.append(f'<tr><td>{esc(k)}</td><td class="{"" if i in text_rows else "num"}">{v}</td></tr>')
    out.append("</tbody></table>")
    return Markup("".join(out))


def bar(value: float | None, maximum: float = 1.0, kind: str = "") -> Markup:
    """A horizontal bar (CSS only) showing ``value / maximum``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or not maximum:
        return Markup('<div class="bar"></div>')
    width = max(0.0, min(1.0, value / maximum)) * 100
    return Markup(f'<div class="bar {esc(kind)}"><span style="width:{width:.1f}%"></span></div>')


def section(anchor: str, title: str, body: Any, note: str = "") -> Markup:
    note_html = f'<p class="note">{esc(note)}</p>' if note else ""
    return Markup(f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{note_html}{esc(body)}</section>')


def cards(items: Sequence[tuple[str, Any, str]]) -> Markup:
    """Headline numbers: (label, value, small print) each."""
    out = ['<div class="cards">']
    for label, value, hint in items:
        text = value if isinstance(value, Markup) else esc(fmt(value))
        out.append(f'<div class="card"><div class="v">{text}</div><div class="l">{esc(label)}</div>'
                   f'<div class="h">{esc(hint)}</div></div>')
    out.append("</div>")
    return Markup("".join(out))


def legend(items: Sequence[tuple[str, str]]) -> Markup:
    """Colour swatches: (CSS colour, meaning) each."""
    return Markup('<div class="legend">' + "".join(
        f'<span><i style="background:{esc(c)}"></i>{esc(label)}</span>' for c, label in items) + "</div>")


def badge(text: str, kind: str = "") -> Markup:
    return Markup(f'<span class="badge {esc(kind)}">{esc(text)}</span>')


def banner(text: Any, kind: str = "warn") -> Markup:
    return Markup(f'<div class="banner {esc(kind)}">{esc(text)}</div>')


# --- text differences ------------------------------------------------------------------------------------------
SPACE_GLYPH = "␣"


def _glyph(ch: str) -> str:
    if ch == " ":
        return f'<span class="sp">{SPACE_GLYPH}</span>'
    if ch == "\t":
        return '<span class="sp">⇥</span>'
    return html.escape(ch)


def aligned_pairs(reference: str, hypothesis: str) -> list[tuple[str, str, str]]:
    """(kind, reference char, hypothesis char) columns of a minimal edit alignment.

    kind: ``eq``, ``sub`` (substituted), ``del`` (reference char missing from the hypothesis), ``ins`` (extra
    hypothesis char); the absent side is ``""``.
    """
    from rapidfuzz.distance import Levenshtein

    columns: list[tuple[str, str, str]] = []
    for op in Levenshtein.opcodes(reference, hypothesis):
        a, b = reference[op.src_start : op.src_end], hypothesis[op.dest_start : op.dest_end]
        if op.tag == "equal":
            columns += [("eq", c, c) for c in a]
        elif op.tag == "delete":
            columns += [("del", c, "") for c in a]
        elif op.tag == "insert":
            columns += [("ins", "", c) for c in b]
        else:  # replace: pair positionally, the longer side's rest are deletions / insertions
            for i in range(max(len(a), len(b))):
                ca, cb = (a[i] if i < len(a) else ""), (b[i] if i < len(b) else "")
                kind = "sub" if ca and cb else ("del" if ca else "ins")
                columns.append((kind, ca, cb))
    return columns


def diff(reference: str, hypothesis: str, labels: tuple[str, str] = ("GT", "pred")) -> Markup:
    """Reference over hypothesis, one column per aligned character, differences coloured.

    Columns keep the two strings aligned whatever the font (CJK is double width). Spaces show as ``␣`` so that
    space errors (which upstream's metric ignores) are visible.
    """
    cols = []
    for kind, a, b in aligned_pairs(reference, hypothesis):
        top = _glyph(a) if a else '<span class="gap">·</span>'
        bottom = _glyph(b) if b else '<span class="gap">·</span>'
        cols.append(f'<span class="dc {kind}"><span>{top}</span><span>{bottom}</span></span>')
    if not cols:
        cols.append('<span class="dc eq"><span><span class="gap">∅</span></span><span>'
                    '<span class="gap">∅</span></span></span>')
    head = (f'<span class="dl"><span>{html.escape(labels[0])}</span><span>{html.escape(labels[1])}</span></span>')
    title = f"{labels[0]}: {reference}\n{labels[1]}: {hypothesis}"
    return Markup(f'<div class="diff" title="{esc(title)}">{head}{"".join(cols)}</div>')


# --- slices ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bins:
    """Half-open bins ``[edges[i], edges[i+1])`` plus under / over bins, with readable labels."""

    edges: tuple[float, ...]
    unit: str = ""
    integer: bool = False  # integer values: [4, 7) reads "4–6"

    def index(self, value: float | None) -> int:
        """0 .. len(edges); ``-1`` for an unknown value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return -1
        return bisect.bisect_right(self.edges, value)

    def labels(self) -> list[str]:
        e, u = self.edges, self.unit

        def n(x):
            return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0")

        if self.integer:
            out = ["0" + u if e[0] == 1 else f"< {n(e[0])}{u}"]
            out += [f"{n(a)}{u}" if b == a + 1 else f"{n(a)}–{n(b - 1)}{u}" for a, b in zip(e, e[1:])]
        else:
            out = [f"< {n(e[0])}{u}"]
            out += [f"{n(a)}–{n(b)}{u}" for a, b in zip(e, e[1:])]
        out.append(f"≥ {n(e[-1])}{u}")
        return out

    def label(self, i: int) -> str:
        return "unknown" if i < 0 else self.labels()[i]


def group(rows: Sequence[dict], key) -> dict[Any, list[dict]]:
    out: dict[Any, list[dict]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


# --- the page --------------------------------------------------------------------------------------------------
CSS = """
:root{--ok:#2e7d32;--bad:#c62828;--warn:#e65100;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--accent:#1d4ed8}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif;
 color:#111827;background:var(--bg)}
header{background:#111827;color:#f9fafb;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#9ca3af;margin-top:4px}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 28px}
nav a{margin-right:18px;color:var(--accent);text-decoration:none;font-weight:500}
main{padding:8px 28px 40px;max-width:1500px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:16px 0 6px;color:#374151}
p.note{color:var(--muted);margin:-4px 0 10px;font-size:13px}
table{border-collapse:collapse;margin:4px 0 10px;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
th{background:#f3f4f6;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv td:first-child{color:var(--muted)}
table.kv td{padding:3px 10px}
tr.sep td{border-top:2px solid #9ca3af}
table.slices td:first-child{white-space:nowrap}
tr.sel td{background:#eff6ff;font-weight:600}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:8px 28px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0 12px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:150px;background:#fcfcfd}
.card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.card .l{font-weight:500}
.card .h{color:var(--muted);font-size:12px}
.bar{width:140px;height:10px;background:#eef2f7;border-radius:3px;overflow:hidden;display:inline-block}
.bar span{display:block;height:100%;background:#60a5fa}
.bar.bad span{background:#f87171}
.bar.ok span{background:#4ade80}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;background:#e5e7eb;color:#374151;
 margin-right:4px;white-space:nowrap}
.badge.bad{background:#fee2e2;color:var(--bad)}
.badge.ok{background:#dcfce7;color:var(--ok)}
.badge.warn{background:#ffedd5;color:var(--warn)}
.banner{border-radius:8px;padding:10px 16px;margin:14px 0;font-weight:600}
.banner.warn{background:#fff7ed;border:1px solid #fdba74;color:#9a3412}
.banner.ok{background:#f0fdf4;border:1px solid #86efac;color:#166534}
.legend{margin:4px 0 10px}
.legend span{margin-right:16px;white-space:nowrap}
.legend i{display:inline-block;width:22px;height:10px;margin-right:6px;border-radius:2px;vertical-align:middle}
.cases{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:10px}
.cases.wide{grid-template-columns:repeat(auto-fill,minmax(640px,1fr))}
.cases.single{grid-template-columns:1fr}
.diff+.diff{margin-top:6px}
.case{border:1px solid var(--line);border-radius:8px;padding:8px 10px;background:#fff;overflow:hidden}
.case .top{display:flex;justify-content:space-between;gap:8px;color:var(--muted);font-size:12px;margin-bottom:6px}
.case .top b{color:#111827}
.case .rank{font-weight:600;color:#111827}
.case .pic{background:repeating-conic-gradient(#f3f4f6 0% 25%,#fff 0% 50%) 50%/16px 16px;border-radius:4px;
 padding:4px;text-align:center;margin-bottom:6px}
.case .pic img{max-width:100%;image-rendering:auto}
.case .meta{font-size:12px;color:#374151;margin-top:4px}
.case.fixed{border-left:4px solid var(--ok)}
.case.regressed{border-left:4px solid var(--bad)}
.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:11px;
 color:var(--muted);word-break:break-all}
.nopic{color:var(--muted);font-style:italic;padding:10px}
.diff{display:flex;flex-wrap:wrap;row-gap:4px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,
 "DejaVu Sans Mono","Noto Sans Mono CJK SC",monospace;font-size:15px;margin:2px 0}
.diff .dc,.diff .dl{display:inline-flex;flex-direction:column;text-align:center;min-width:0.62em}
.diff .dl{color:var(--muted);font-size:11px;font-family:system-ui,sans-serif;padding-right:6px;text-align:right;
 line-height:21px}
.diff .dc>span{display:block;line-height:20px;padding:0 1px;white-space:pre}
.diff .sub>span:first-child,.diff .del>span:first-child{background:#fecaca;color:#7f1d1d}
.diff .sub>span:last-child{background:#fde68a;color:#78350f}
.diff .ins>span:last-child{background:#fed7aa;color:#7c2d12}
.diff .gap{color:#cbd5e1}
.diff .sp{color:#94a3b8}
.diff .sub .sp,.diff .del .sp,.diff .ins .sp{color:inherit}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
.chars td:first-child{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:15px}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
"""


def page(title: str, body: Any, *, subtitle: str = "", nav: Sequence[tuple[str, str]] = ()) -> str:
    """A complete, self-contained HTML document."""
    links = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><div class=\"sub\">{esc(subtitle)}</div></header>"
        + (f"<nav>{links}</nav>" if links else "")
        + f"<main>{esc(body)}</main><footer>OCR Workbench · generated {generated}</footer></body></html>\n"
    )


def write_page(path: str | Path, title: str, body: Any, **kwargs) -> Path:
    path = Path(path)
    path.write_text(page(title, body, **kwargs), encoding="utf-8")
    return path
