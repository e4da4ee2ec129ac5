"""Tiny dependency-free SVG plots for reports and ``Evidence.figures``.

Every function returns the SVG document as UTF-8 ``bytes`` (put it in ``Evidence.figures[caption]``;
the HTML report inlines it). Plots are self-contained: no fonts, scripts or external references.

- :func:`bar_chart`: one bar per value, some highlighted, optional threshold line.
- :func:`line_plot`: one or more series as lines (``markers=True`` adds points) or a scatter.
- :func:`histogram`: binned values with optional vertical marker lines.
- :func:`image_grid`: float images in [0, 1] (N, H, W) / (N, C, H, W) / (N, H, W, C) as a grid.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
BAR = "#9fb4d3"
HIGHLIGHT = "#c44e52"
THRESHOLD = "#333333"
FONT = "font-family:sans-serif;font-size:11px"

_M_LEFT, _M_RIGHT, _M_TOP, _M_BOTTOM = 54, 14, 28, 40


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick positions covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    t = first
    while t <= hi + step * 1e-9:
        out.append(round(t, 12))
        t += step
    return out


def _range(values: np.ndarray, extra: Sequence[float] = (), zero: bool = False) -> tuple[float, float]:
    pool = np.concatenate([values, _finite(list(extra))]) if len(extra) else values
    if zero:
        pool = np.concatenate([pool, [0.0]])
    if len(pool) == 0:
        return 0.0, 1.0
    lo, hi = float(pool.min()), float(pool.max())
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return (lo if zero and lo == 0 else lo - pad), (hi if zero and hi == 0 else hi + pad)


class _Canvas:
    """Plot area with linear scales and SVG element helpers."""

    def __init__(self, width: int, height: int, xr: tuple[float, float], yr: tuple[float, float],
                 title: str, xlabel: str, ylabel: str) -> None:
        self.w, self.h, self.xr, self.yr = width, height, xr, yr
        self.x0, self.x1 = _M_LEFT, width - _M_RIGHT
        self.y0, self.y1 = height - _M_BOTTOM, _M_TOP
        self.parts: list[str] = []
        if title:
            self.text(width / 2, 16, title, anchor="middle", weight="bold")
        if xlabel:
            self.text((self.x0 + self.x1) / 2, height - 6, xlabel, anchor="middle")
        if ylabel:
            cy = (self.y0 + self.y1) / 2
            self.parts.append(f'<text x="12" y="{cy:.1f}" text-anchor="middle" style="{FONT}" '
                              f'transform="rotate(-90 12 {cy:.1f})">{escape(ylabel)}</text>')

    def sx(self, x: float) -> float:
        lo, hi = self.xr
        return self.x0 + (x - lo) / (hi - lo) * (self.x1 - self.x0)

    def sy(self, y: float) -> float:
        lo, hi = self.yr
        return self.y0 - (y - lo) / (hi - lo) * (self.y0 - self.y1)

    def text(self, x: float, y: float, s: str, anchor: str = "start", weight: str = "normal") -> None:
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
                          f'style="{FONT};font-weight:{weight}">{escape(s)}</text>')

    def axes(self, xticks: bool = True) -> None:
        self.parts.append(f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x1}" y2="{self.y0}" stroke="#555"/>')
        self.parts.append(f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x0}" y2="{self.y1}" stroke="#555"/>')
        for t in _ticks(*self.yr):
            y = self.sy(t)
            self.parts.append(f'<line x1="{self.x0 - 4}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" '
                              'stroke="#e4e4e4"/>')
            self.text(self.x0 - 6, y + 4, _fmt(t), anchor="end")
        if xticks:
            for t in _ticks(*self.xr):
                x = self.sx(t)
                self.parts.append(f'<line x1="{x:.1f}" y1="{self.y0}" x2="{x:.1f}" y2="{self.y0 + 4}" stroke="#555"/>')
                self.text(x, self.y0 + 15, _fmt(t), anchor="middle")

    def hline(self, y: float, label: str = "", color: str = THRESHOLD) -> None:
        py = self.sy(y)
        self.parts.append(f'<line x1="{self.x0}" y1="{py:.1f}" x2="{self.x1}" y2="{py:.1f}" '
                          f'stroke="{color}" stroke-dasharray="5,3"/>')
        if label:
            self.text(self.x1 - 2, py - 4, label, anchor="end")

    def vline(self, x: float, label: str = "", color: str = THRESHOLD) -> None:
        px = self.sx(x)
        self.parts.append(f'<line x1="{px:.1f}" y1="{self.y0}" x2="{px:.1f}" y2="{self.y1}" '
                          f'stroke="{color}" stroke-dasharray="5,3"/>')
        if label:
            self.text(px + 3, self.y1 + 10, label)

    def svg(self, desc: str = "") -> bytes:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" role="img">')
        title = f"<title>{escape(desc)}</title>" if desc else ""
        body = "".join(self.parts)
        return (f'{head}{title}<rect width="100%" height="100%" fill="white"/>{body}</svg>').encode()


def bar_chart(values: Sequence[float], labels: Sequence[str] | None = None,
              highlight: Sequence[int] = (), threshold: float | None = None,
              threshold_label: str = "", title: str = "", xlabel: str = "", ylabel: str = "",
              width: int = 480, height: int = 260) -> bytes:
    """Bars for ``values`` (non-finite values are drawn as empty slots); indices in
    ``highlight`` are drawn in red; ``threshold`` adds a dashed horizontal line."""
    vals = np.asarray(values, dtype=float).ravel()
    labels = [str(i) for i in range(len(vals))] if labels is None else [str(s) for s in labels]
    if len(labels) != len(vals):
        raise ValueError("labels and values differ in length")
    extra = [] if threshold is None else [threshold]
    c = _Canvas(width, height, (0.0, max(len(vals), 1)), _range(_finite(vals), extra, zero=True),
                title, xlabel, ylabel)
    c.axes(xticks=False)
    hi = set(int(i) for i in highlight)
    slot = (c.x1 - c.x0) / max(len(vals), 1)
    every = max(1, math.ceil(len(vals) / max(1, (c.x1 - c.x0) // 28)))
    base = c.sy(max(c.yr[0], 0.0))
    for i, v in enumerate(vals):
        x = c.x0 + i * slot + 0.1 * slot
        if math.isfinite(v):
            y = c.sy(v)
            top, h = min(y, base), abs(base - y)
            color = HIGHLIGHT if i in hi else BAR
            c.parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{0.8 * slot:.1f}" height="{h:.1f}" '
                           f'fill="{color}"><title>{escape(labels[i])}: {_fmt(v)}</title></rect>')
        if i % every == 0:
            c.text(x + 0.4 * slot, c.y0 + 15, labels[i], anchor="middle")
    if threshold is not None:
        c.hline(threshold, threshold_label)
    return c.svg(title)


def line_plot(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str = "",
              xlabel: str = "", ylabel: str = "", markers: bool = False, lines: bool = True,
              hline: float | None = None, hline_label: str = "", log_y: bool = False,
              width: int = 480, height: int = 260) -> bytes:
    """Each ``series[name] = (xs, ys)`` as a coloured line (``lines=False, markers=True`` gives a
    scatter plot); ``log_y`` plots log10 of positive y values; ``hline`` adds a dashed line."""
    prepared: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (xs, ys) in series.items():
        x, y = np.asarray(xs, dtype=float).ravel(), np.asarray(ys, dtype=float).ravel()
        if len(x) != len(y):
            raise ValueError(f"series {name!r}: xs and ys differ in length")
        if log_y:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)
        keep = np.isfinite(x) & np.isfinite(y)
        prepared[name] = (x[keep], y[keep])
    allx = np.concatenate([p[0] for p in prepared.values()]) if prepared else np.zeros(0)
    ally = np.concatenate([p[1] for p in prepared.values()]) if prepared else np.zeros(0)
    h = None if hline is None else (math.log10(hline) if log_y and hline > 0 else hline)
    c = _Canvas(width, height, _range(allx), _range(ally, [] if h is None else [h]), title, xlabel,
                ("log10 " + ylabel) if log_y and ylabel else ylabel)
    c.axes()
    for k, (name, (x, y)) in enumerate(prepared.items()):
        color = PALETTE[k % len(PALETTE)]
        if lines and len(x) > 1:
            order = np.argsort(x, kind="stable")
            pts = " ".join(f"{c.sx(a):.1f},{c.sy(b):.1f}" for a, b in zip(x[order], y[order]))
            c.parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        if markers or not lines:
            for a, b in zip(x, y):
                c.parts.append(f'<circle cx="{c.sx(a):.1f}" cy="{c.sy(b):.1f}" r="2.6" fill="{color}"/>')
        if len(prepared) > 1:
            ly = c.y1 + 4 + 13 * k
            c.parts.append(f'<rect x="{c.x1 - 110}" y="{ly}" width="10" height="10" fill="{color}"/>')
            c.text(c.x1 - 96, ly + 9, name)
    if h is not None:
        c.hline(h, hline_label)
    return c.svg(title)


def scatter_plot(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], **kw: object) -> bytes:
    """:func:`line_plot` with points and no lines."""
    return line_plot(series, lines=False, markers=True, **kw)  # type: ignore[arg-type]


def histogram(values: Sequence[float], bins: int = 20, markers: Mapping[str, float] | None = None,
              title: str = "", xlabel: str = "", ylabel: str = "count",
              width: int = 480, height: int = 260) -> bytes:
    """Histogram of the finite ``values``; ``markers`` maps a label to an x position drawn as a
    dashed vertical line (e.g. the observed statistic among null scores)."""
    vals = _finite(values)
    marks = dict(markers or {})
    lo, hi = _range(vals, list(marks.values()))
    counts, edges = np.histogram(vals, bins=bins, range=(lo, hi)) if len(vals) else (np.zeros(bins), np.linspace(lo, hi, bins + 1))
    c = _Canvas(width, height, (lo, hi), (0.0, max(1.0, float(counts.max()) * 1.05)), title, xlabel, ylabel)
    c.axes()
    for n, a, b in zip(counts, edges[:-1], edges[1:]):
        if n > 0:
            x, w = c.sx(a), c.sx(b) - c.sx(a)
            y = c.sy(float(n))
            c.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w - 1, 0.5):.1f}" '
                           f'height="{c.y0 - y:.1f}" fill="{BAR}"><title>[{_fmt(a)}, {_fmt(b)}): {int(n)}'
                           '</title></rect>')
    for k, (label, x) in enumerate(marks.items()):
        c.vline(x, label, HIGHLIGHT if k == 0 else PALETTE[(k + 1) % len(PALETTE)])
    return c.svg(title)


def _to_uint8_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 with C in {1, 3} from float images in [0, 1]."""
    arr = np.asarray(images, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    elif arr.ndim != 4:
        raise ValueError(f"images must be (N,H,W), (N,C,H,W) or (N,H,W,C), got shape {arr.shape}")
    arr = np.nan_to_num(arr, nan=0.0)
    return (np.clip(arr, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _png_data_uri(img: np.ndarray) -> str:
    from PIL import Image

    mode = "L" if img.shape[-1] == 1 else "RGB"
    pil = Image.fromarray(img[..., 0] if mode == "L" else img, mode=mode)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_grid(images: np.ndarray | Sequence[np.ndarray], labels: Sequence[str] | None = None,
               cols: int = 8, cell: int = 64, title: str = "",
               highlight: Sequence[int] = ()) -> bytes:
    """Images (float in [0, 1]) in a grid of ``cols`` columns, each scaled to ``cell`` pixels
    (nearest neighbour), captioned by ``labels``; ``highlight`` frames some cells in red.
    Pixels are embedded as PNG data URIs, so the SVG stays self-contained."""
    imgs = _to_uint8_images(np.stack([np.asarray(i) for i in images]) if isinstance(images, list | tuple)
                            else np.asarray(images))
    n = len(imgs)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols) if n else 0
    label_h = 14 if labels is not None else 0
    top = 24 if title else 4
    width, height = cols * (cell + 6) + 6, top + rows * (cell + label_h + 6) + 2
    parts = []
    if title:
        parts.append(f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" '
                     f'style="{FONT};font-weight:bold">{escape(title)}</text>')
    hi = set(int(i) for i in highlight)
    for i, img in enumerate(imgs):
        r, k = divmod(i, cols)
        x, y = 6 + k * (cell + 6), top + r * (cell + label_h + 6)
        parts.append(f'<image x="{x}" y="{y}" width="{cell}" height="{cell}" '
                     f'preserveAspectRatio="none" style="image-rendering:pixelated" '
                     f'href={quoteattr(_png_data_uri(img))}/>')
        if i in hi:
            parts.append(f'<rect x="{x - 2}" y="{y - 2}" width="{cell + 4}" height="{cell + 4}" '
                         f'fill="none" stroke="{HIGHLIGHT}" stroke-width="2"/>')
        if labels is not None and i < len(labels):
            parts.append(f'<text x="{x + cell / 2:.1f}" y="{y + cell + 11}" text-anchor="middle" '
                         f'style="{FONT}">{escape(str(labels[i]))}</text>')
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">')
    desc = f"<title>{escape(title)}</title>" if title else ""
    return f'{head}{desc}<rect width="100%" height="100%" fill="white"/>{"".join(parts)}</svg>'.encode()
