"""Bad inputs for the fuzz tests: label files and images as they arrive from colleagues, scanners and the web.

``build(folder, data_dir)`` writes one label file per case (``<kind>_<case>.txt``, each next to its images) and
returns the cases. Every case says what must happen: an ``error`` finding with its code at a label line, or
``usable`` (the sample trains; the oddity is at most a warning).
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOMB_SIDE = 50_000  # 2.5 G pixels: 7.5 GB once decoded as BGR


@dataclass
class Case:
    kind: str  # rec | det
    name: str
    label_file: Path
    expect: str  # "error" (some line fails with `code`) | "usable" (every sample loads)
    code: str | None = None  # "a|b": either code
    line: int | None = None  # the label line the error is at (None: any / file level)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid-looking PNG header declaring side x side RGB, a few rows of data, IEND: a tiny file whose full
    decode would need side * side * 3 bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * side) * 4)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def jpeg_bomb(base_jpeg: bytes, side: int = BOMB_SIDE) -> bytes:
    """A real JPEG whose SOF0 frame header is patched to declare side x side pixels."""
    data = bytearray(base_jpeg)
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", side, side)
            return bytes(data)
        i += 2 + length
    raise ValueError("no SOF marker")


def _encode(img_rgb: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img_rgb).save(buf, format=fmt, **kw)
    return buf.getvalue()


def image_variants(base_rgb: np.ndarray) -> dict[str, tuple[bytes, str, str | None]]:
    """name -> (file bytes, file name, expected error code or None for usable)."""
    from PIL import Image

    jpeg = _encode(base_rgb, "JPEG", quality=90)
    cmyk = io.BytesIO()
    Image.fromarray(base_rgb).convert("CMYK").save(cmyk, format="JPEG")
    sixteen = io.BytesIO()
    Image.fromarray((base_rgb[..., 0].astype(np.uint16) * 257)).save(sixteen, format="PNG")  # 16-bit grey
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    rotated = io.BytesIO()
    Image.fromarray(base_rgb).save(rotated, format="JPEG", exif=exif.tobytes())
    return {
        "zero_bytes": (b"", "zero.png", "corrupt_image"),
        # a crop cut in half: OpenCV may still decode it (truncated_image) or not at all (corrupt_image)
        "truncated": (jpeg[: len(jpeg) // 2], "truncated.jpg", "truncated_image|corrupt_image"),
        "not_an_image": (b"<html>404 not found</html>", "page.jpg", "corrupt_image"),
        "one_pixel": (_encode(base_rgb[:1, :1], "PNG"), "one.png", None),
        "png_bomb": (png_bomb(), "bomb.png", "image_too_large"),
        "jpeg_bomb": (jpeg_bomb(jpeg), "bomb.jpg", "image_too_large"),
        "cmyk": (cmyk.getvalue(), "cmyk.jpg", None),
        "sixteen_bit": (sixteen.getvalue(), "sixteen.png", None),
        "exif_rotated": (rotated.getvalue(), "rotated.jpg", None),
    }


def _det_json(points, text="WORD") -> str:
    return json.dumps([{"transcription": text, "points": points}])


def build(folder: Path, data_dir: Path) -> list[Case]:
    """Write every case into ``folder``; returns them."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    rec_img = cv2.imread(str(data_dir / "icdar2015_rec" / "images" / "train" / "img_78_030.png"))[..., ::-1].copy()
    det_src = cv2.imread(str(data_dir / "icdar2015_det" / "images" / "train" / "img_105.jpg"))
    det_img = cv2.resize(det_src, (320, 180))[..., ::-1].copy()
    quad = [[20, 20], [120, 20], [120, 60], [20, 60]]
    cases: list[Case] = []

    def write(kind: str, name: str, label: bytes, expect: str, code=None, line=None, images=None) -> None:
        d = folder / f"{kind}_{name}"
        d.mkdir(exist_ok=True)
        for fname, data in (images or {}).items():
            (d / fname).write_bytes(data)
        path = d / "label.txt"
        path.write_bytes(label)
        cases.append(Case(kind, name, path, expect, code, line))

    good = {"rec": _encode(rec_img, "PNG"), "det": _encode(det_img, "JPEG")}
    good_line = {"rec": b"good.png\tPhone", "det": f"good.jpg\t{_det_json(quad)}".encode()}
    for kind in ("rec", "det"):
        g, gl = {"good." + ("png" if kind == "rec" else "jpg"): good[kind]}, good_line[kind]
        # --- label files ---
        noise = bytes(rng.getrandbits(8) for _ in range(3000))
        write(kind, "random_bytes", noise, "error", None, None, g)
        write(kind, "non_utf8", gl + b"\n" + b"good.png\t\xff\xfe\xc3(bad\n", "error", "bad_line", 2, g)
        write(kind, "crlf_mix", gl + b"\r\n" + gl + b"\n" + gl + b"\r\n", "usable", None, None, g)
        write(kind, "empty_lines", b"\n\n" + gl + b"\n   \n\n" + gl + b"\n\n", "usable", None, None, g)
        long_label = (b"good.png\t" + b"x" * 100_000) if kind == "rec" else \
            b"good.jpg\t" + _det_json([[i % 300, (i * 7) % 170] for i in range(12000)]).encode()[:100_000]
        write(kind, "line_100kb", gl + b"\n" + long_label + b"\n", "error",
              "label_too_long" if kind == "rec" else "bad_json", 2, g)
        write(kind, "nul_byte", gl + b"\n" + gl.replace(b"\t", b"\x00\t") + b"\n", "error", "bad_line", 2, g)
        write(kind, "no_tab", gl + b"\n" + gl.replace(b"\t", b"    ") + b"\n", "error", "no_tab", 2, g)
        # --- images ---
        base = rec_img if kind == "rec" else det_img
        for vname, (data, fname, code) in image_variants(base).items():
            label = f"{fname}\tPhone" if kind == "rec" else f"{fname}\t{_det_json(quad)}"
            expect = "error" if code else "usable"
            write(kind, f"image_{vname}", gl + b"\n" + label.encode() + b"\n", expect, code, 2 if code else None,
                  {**g, fname: data})
    # --- det polygons ---
    g = {"good.jpg": good["det"]}
    gl = good_line["det"]
    polys = {
        "nan": ('[[NaN, 1], [10, 1], [10, 10], [1, 10]]', "bad_polygon"),
        "inf": ('[[Infinity, 1], [10, 1], [10, 10], [1, 10]]', "bad_polygon"),
        "negative": ('[[-50, -40], [100, -40], [100, 30], [-50, 30]]', None),  # outside the image: a warning
        "points_10k": (json.dumps([[float(100 + 60 * np.cos(t)), float(90 + 60 * np.sin(t))]
                                   for t in np.linspace(0, 2 * np.pi, 10_000, endpoint=False)]), None),
        "huge_coordinate": ('[[1e300, 1], [10, 1], [10, 10], [1, 10]]', "bad_polygon"),  # inf as float32
        "three_points": ('[[1, 1], [10, 1], [10, 10]]', "too_few_points"),
        "not_numbers": ('[["a", 1], [10, 1], [10, 10], [1, 10]]', "bad_polygon"),
    }
    for name, (pts, code) in polys.items():
        label = gl + b"\n" + b'good.jpg\t[{"transcription": "W", "points": ' + pts.encode() + b"}]\n"
        write("det", f"polygon_{name}", label, "error" if code else "usable", code, 2 if code else None, g)
    return cases
