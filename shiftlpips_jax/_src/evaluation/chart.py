"""A small line chart drawn with Pillow (no plotting dependency), for the shift study.

Example::

    rgb = line_chart([Series("a", [0, 1, 2], [0.0, 0.5, 1.0])], title="t", xlabel="x",
                     ylabel="y")                  # (H, W, 3) uint8
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Series", "line_chart", "PALETTE"]

# Colour-blind-friendly (Okabe-Ito) colours.
PALETTE = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0),
           (86, 180, 233), (240, 228, 66))


@dataclasses.dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: tuple[int, int, int] | None = None
    width: int = 3
    dashed: bool = False


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _dashed(draw, p, q, fill, width, dash=10):
    (x0, y0), (x1, y1) = p, q
    length = max(1e-9, float(np.hypot(x1 - x0, y1 - y0)))
    steps = int(length // dash)
    for k in range(0, steps + 1, 2):
        a, b = k * dash / length, min(1.0, (k + 1) * dash / length)
        draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a),
                   (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)], fill=fill, width=width)


def line_chart(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str,
               size: tuple[int, int] = (960, 600), ylim: tuple[float, float] | None = None,
               note: str = "") -> np.ndarray:
    """Draws the series on shared axes; returns an (H, W, 3) uint8 image."""
    w, h = size
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    f_title, f_text, f_small = _font(22), _font(16), _font(14)
    left, right, top, bottom = 80, 260, 60, 70
    pw, ph = w - left - right, h - top - bottom
    xs = np.concatenate([np.asarray(s.x, float) for s in series])
    ys = np.concatenate([np.asarray(s.y, float) for s in series])
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = ylim if ylim else (float(np.nanmin(ys)), float(np.nanmax(ys)))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * pw, top + (1 - (y - y0) / (y1 - y0)) * ph)

    # Grid, ticks and labels.
    for k in range(6):
        yv = y0 + (y1 - y0) * k / 5
        _, yy = px(x0, yv)
        draw.line([(left, yy), (left + pw, yy)], fill=(225, 225, 225), width=1)
        draw.text((left - 10, yy), f"{yv:.2g}", fill="black", font=f_small, anchor="rm")
    for xv in np.unique(np.round(xs)):
        xx, _ = px(xv, y0)
        draw.line([(xx, top), (xx, top + ph)], fill=(240, 240, 240), width=1)
        draw.text((xx, top + ph + 8), f"{xv:g}", fill="black", font=f_small, anchor="mt")
    draw.rectangle([left, top, left + pw, top + ph], outline="black", width=1)
    draw.text((left + pw / 2, 22), title, fill="black", font=f_title, anchor="mm")
    draw.text((left + pw / 2, h - 22), xlabel, fill="black", font=f_text, anchor="mm")
    label_img = Image.new("RGB", (ph, 24), "white")
    ImageDraw.Draw(label_img).text((ph / 2, 12), ylabel, fill="black", font=f_text, anchor="mm")
    img.paste(label_img.rotate(90, expand=True), (8, top))

    # Lines with point markers, then the legend.
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        pts = [px(x, y) for x, y in zip(s.x, s.y) if np.isfinite(y)]
        for p, q in zip(pts[:-1], pts[1:]):
            if s.dashed:
                _dashed(draw, p, q, color, s.width)
            else:
                draw.line([p, q], fill=color, width=s.width)
        for x, y in pts:
            r = s.width + 1
            draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
    ly = top + 10
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        lx = left + pw + 20
        if s.dashed:
            _dashed(draw, (lx, ly + 8), (lx + 34, ly + 8), color, s.width, dash=6)
        else:
            draw.line([(lx, ly + 8), (lx + 34, ly + 8)], fill=color, width=s.width)
        draw.text((lx + 44, ly + 8), s.label, fill="black", font=f_text, anchor="lm")
        ly += 28
    if note:
        for line in note.splitlines():
            draw.text((left + pw + 20, ly + 12), line, fill=(80, 80, 80), font=f_small,
                      anchor="lm")
            ly += 20
    return np.asarray(img)
