"""Inline SVG charts written by hand (no plotting library, no scripts): strings in, SVG out.

Every label passes through ``html.escape`` here, because the SVG is inserted into the page as-is.
"""
from __future__ import annotations

from html import escape

import numpy as np

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
W, H = 470, 320
LEFT, RIGHT, TOP, BOTTOM = 50, 180, 24, 42


def _colour(i):
    return PALETTE[i % len(PALETTE)]


def _svg_head(width, height, title, title_x=None, attrs="", title_y=14):
    """The opening of a chart: the svg element (with extra attributes), its title and a heading."""
    title_x = width / 2 if title_x is None else title_x
    return [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'font-family="sans-serif" font-size="11"{attrs}>',
            f'<title>{escape(title)}</title>',
            f'<text x="{title_x}" y="{title_y}" text-anchor="middle" font-weight="bold">{escape(title)}</text>']


def _frame(title, xlabel, ylabel, width=W, height=H):
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM
    parts = _svg_head(width, height, title, LEFT + pw / 2) + [
             f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
             f'<text x="{LEFT + pw / 2}" y="{height - 6}" text-anchor="middle">{escape(xlabel)}</text>',
             f'<text transform="translate(12,{TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
             f'{escape(ylabel)}</text>']
    return parts, pw, ph


def _ticks(parts, pw, ph, x_range, y_range, height=H):
    for t in np.linspace(0, 1, 6):
        x = LEFT + t * pw
        y = TOP + ph - t * ph
        xv = x_range[0] + t * (x_range[1] - x_range[0])
        yv = y_range[0] + t * (y_range[1] - y_range[0])
        parts.append(f'<line x1="{x:.1f}" y1="{TOP + ph}" x2="{x:.1f}" y2="{TOP + ph + 4}" stroke="#999"/>')
        parts.append(f'<text x="{x:.1f}" y="{TOP + ph + 15}" text-anchor="middle">{xv:.3g}</text>')
        parts.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#999"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{yv:.3g}</text>')


def _legend(parts, names, width):
    for i, name in enumerate(names):
        y = TOP + 8 + i * 15
        parts.append(f'<line x1="{width - RIGHT + 8}" y1="{y}" x2="{width - RIGHT + 24}" y2="{y}" '
                     f'stroke="{_colour(i)}" stroke-width="2"/>')
        parts.append(f'<text x="{width - RIGHT + 28}" y="{y + 4}">{escape(str(name)[:26])}</text>')


def line_chart(series, title, xlabel, ylabel, diagonal=False, x_range=(0, 1), y_range=(0, 1), step=False):
    """Overlaid curves. series: [{"name", "x", "y"}]. ``diagonal`` draws the chance line."""
    parts, pw, ph = _frame(title, xlabel, ylabel)
    _ticks(parts, pw, ph, x_range, y_range)

    def px(v):
        return LEFT + (v - x_range[0]) / ((x_range[1] - x_range[0]) or 1) * pw

    def py(v):
        return TOP + ph - (v - y_range[0]) / ((y_range[1] - y_range[0]) or 1) * ph

    if diagonal:
        parts.append(f'<line x1="{px(x_range[0]):.1f}" y1="{py(y_range[0]):.1f}" x2="{px(x_range[1]):.1f}" '
                     f'y2="{py(y_range[1]):.1f}" stroke="#bbb" stroke-dasharray="4 3"/>')
    for i, s in enumerate(series):
        xs, ys = list(s["x"]), list(s["y"])
        if step:    # precision-recall is a step function
            sx, sy = [], []
            for j, (a, b) in enumerate(zip(xs, ys)):
                if j:
                    sx.append(a)
                    sy.append(sy[-1])
                sx.append(a)
                sy.append(b)
            xs, ys = sx, sy
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs, ys) if np.isfinite(a) and np.isfinite(b))
        parts.append(f'<polyline fill="none" stroke="{_colour(i)}" stroke-width="1.6" points="{points}">'
                     f'<title>{escape(str(s["name"]))}</title></polyline>')
        if s.get("markers"):
            parts += [f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="2.5" fill="{_colour(i)}"/>'
                      for a, b in zip(s["x"], s["y"])]
    _legend(parts, [s["name"] for s in series], W)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(labels, values, title, ylabel, lows=None, highs=None, horizontal=False):
    """Bars with optional interval whiskers; horizontal bars suit long labels (SHAP groups)."""
    values = [float(v) if v is not None and np.isfinite(v) else 0.0 for v in values]
    top = max([*values, *(h for h in (highs or []) if h is not None and np.isfinite(h)), 1e-12])
    if horizontal:
        width, row = 560, 20
        height = TOP + BOTTOM + row * len(labels)
        left, pw = 200, 560 - 200 - 70
        parts = _svg_head(width, height, title) + [
                 f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{escape(ylabel)}</text>']
        for i, (label, v) in enumerate(zip(labels, values)):
            y = TOP + i * row
            parts.append(f'<text x="{left - 6}" y="{y + row * 0.65:.1f}" text-anchor="end">{escape(str(label)[:32])}</text>')
            parts.append(f'<rect x="{left}" y="{y + 3}" width="{v / top * pw:.1f}" height="{row - 6}" '
                         f'fill="{_colour(0)}"><title>{escape(str(label))}: {v:.4g}</title></rect>')
            parts.append(f'<text x="{left + v / top * pw + 4:.1f}" y="{y + row * 0.65:.1f}">{v:.3g}</text>')
        parts.append("</svg>")
        return "".join(parts)
    width = max(W, LEFT + 30 + 46 * len(labels))
    parts, pw, ph = _frame(title, "", ylabel, width=width + RIGHT - 30, height=H + 60)
    ph = H + 60 - TOP - BOTTOM - 60
    parts[3] = f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>'
    for t in np.linspace(0, 1, 6):
        y = TOP + ph - t * ph
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t * top:.3g}</text>')
    slot = pw / max(1, len(labels))
    for i, (label, v) in enumerate(zip(labels, values)):
        x = LEFT + i * slot + slot * 0.15
        h = v / top * ph
        parts.append(f'<rect x="{x:.1f}" y="{TOP + ph - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                     f'fill="{_colour(i)}"><title>{escape(str(label))}: {v:.4g}</title></rect>')
        if lows is not None and lows[i] is not None and highs[i] is not None:
            cx = x + slot * 0.35
            y1, y2 = TOP + ph - lows[i] / top * ph, TOP + ph - highs[i] / top * ph
            parts.append(f'<line x1="{cx:.1f}" y1="{y1:.1f}" x2="{cx:.1f}" y2="{y2:.1f}" stroke="#000"/>')
            for yy in (y1, y2):
                parts.append(f'<line x1="{cx - 4:.1f}" y1="{yy:.1f}" x2="{cx + 4:.1f}" y2="{yy:.1f}" stroke="#000"/>')
        parts.append(f'<text transform="translate({x + slot * 0.35:.1f},{TOP + ph + 10}) rotate(35)" '
                     f'font-size="10">{escape(str(label)[:28])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def confusion_svg(matrix, classes, title):
    """A small heat-map table of a confusion matrix (rows true, columns predicted)."""
    k = len(classes)
    cell, left, top = 44, 90, 50
    width, height = left + cell * k + 10, top + cell * k + 10
    peak = max(1, max(max(r) for r in matrix))
    parts = _svg_head(width, height, title, title_y=12) + [
             f'<text x="{left + cell * k / 2}" y="26" text-anchor="middle">predicted</text>']
    for j, c in enumerate(classes):
        parts.append(f'<text x="{left + j * cell + cell / 2}" y="{top - 6}" text-anchor="middle">{escape(str(c)[:8])}</text>')
    for i, c in enumerate(classes):
        parts.append(f'<text x="{left - 4}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end">{escape(str(c)[:12])}</text>')
        for j in range(k):
            v = matrix[i][j]
            shade = int(255 - 180 * v / peak)
            parts.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                         f'fill="rgb({shade},{shade},255)" stroke="#fff"/>')
            parts.append(f'<text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}" '
                         f'text-anchor="middle">{v}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _signed_colour(value):
    return "#d62728" if value > 0 else "#1f77b4"


def waterfall_svg(steps, base, fx, title, xlabel):
    """One case's attributions (``shapley.waterfall_steps``): E[f] at the bottom, each group's bar
    starting where the previous ended, the top bar ending at f(x); the value in each bar's label."""
    base, fx = float(base), float(fx)
    row, left, pw = 20, 200, 300
    width, height = left + pw + 70, TOP + 20 + row * len(steps) + 40
    ends = [base, fx] + [s["start"] for s in steps] + [s["end"] for s in steps]
    lo, hi = min(ends), max(ends)
    pad = (hi - lo) * 0.06 or 0.05
    lo, hi = lo - pad, hi + pad

    def px(v):
        return left + (v - lo) / (hi - lo) * pw

    bottom = TOP + 20 + row * len(steps)
    parts = _svg_head(width, height, title, attrs=f' class="waterfall" data-base="{base!r}" data-fx="{fx!r}"') + [
             f'<line x1="{px(fx):.1f}" y1="{TOP + 6}" x2="{px(fx):.1f}" y2="{TOP + 20}" stroke="#555"/>',
             f'<text x="{px(fx):.1f}" y="{TOP + 2}" text-anchor="middle">f(x) = {fx:.3f}</text>',
             f'<line x1="{left}" y1="{bottom}" x2="{left + pw}" y2="{bottom}" stroke="#999"/>',
             f'<line x1="{px(base):.1f}" y1="{TOP + 20}" x2="{px(base):.1f}" y2="{bottom + 4}" stroke="#999" '
             f'stroke-dasharray="3 3"/>',
             f'<text x="{px(base):.1f}" y="{bottom + 16}" text-anchor="middle">E[f] = {base:.3f}</text>',
             f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">{escape(xlabel)}</text>']
    for i, s in enumerate(reversed(steps)):        # the top row is the last step, ending at f(x)
        y = TOP + 20 + i * row
        a, b = sorted((px(s["start"]), px(s["end"])))
        parts.append(f'<text x="{left - 6}" y="{y + row * 0.65:.1f}" text-anchor="end">{escape(s["label"][:32])}</text>')
        parts.append(f'<rect x="{a:.1f}" y="{y + 3}" width="{max(b - a, 1):.1f}" height="{row - 6}" '
                     f'fill="{_signed_colour(s["value"])}" data-start="{s["start"]!r}" data-end="{s["end"]!r}">'
                     f'<title>{escape(s["label"])}: {s["value"]:+.4g}</title></rect>')
        parts.append(f'<text x="{b + 4:.1f}" y="{y + row * 0.65:.1f}">{s["value"]:+.3f}</text>')
        if i:
            parts.append(f'<line x1="{px(s["end"]):.1f}" y1="{y - 3}" x2="{px(s["end"]):.1f}" y2="{y + 3}" '
                         f'stroke="#777"/>')
    parts.append("</svg>")
    return "".join(parts)


def _low_high(t):
    """Blue (low) to red (high) for t in [0, 1]; grey where the value is unknown."""
    if t is None or not np.isfinite(t):
        return "#aaaaaa"
    t = min(max(float(t), 0.0), 1.0)
    return f"rgb({int(30 + 225 * t)},{int(110 - 80 * t)},{int(230 - 150 * t)})"


def _swarm_offsets(xs, radius, half):
    """Vertical offsets that spread points sharing an x bin, alternating above and below."""
    offsets = np.zeros(len(xs))
    bins = {}
    for i in np.argsort(xs, kind="mergesort"):
        k = int(xs[i] // (2 * radius))
        n = bins.get(k, 0)
        bins[k] = n + 1
        step = (n + 1) // 2 * radius * 1.2
        offsets[i] = (step % half) * (1 if n % 2 else -1)
    return offsets


def beeswarm_svg(rows, title, xlabel):
    """One row per feature (top first): a dot per case at its SHAP value, coloured by the feature's
    value from low (blue) to high (red). rows: [{"name", "shap", "colour_t" (0..1 or NaN)}]."""
    row, left, pw, radius = 26, 200, 360, 2.6
    width, height = left + pw + 90, TOP + 10 + row * len(rows) + 44
    allx = np.concatenate([np.asarray(r["shap"], float) for r in rows]) if rows else np.zeros(1)
    span = max(abs(allx.min()), abs(allx.max()), 1e-9) * 1.05
    lo, hi = -span, span

    def px(v):
        return left + (v - lo) / (hi - lo) * pw

    bottom = TOP + 10 + row * len(rows)
    parts = _svg_head(width, height, title, attrs=' class="beeswarm"') + [
             f'<line x1="{px(0):.1f}" y1="{TOP + 6}" x2="{px(0):.1f}" y2="{bottom}" stroke="#bbb"/>',
             f'<line x1="{left}" y1="{bottom}" x2="{left + pw}" y2="{bottom}" stroke="#999"/>',
             f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{escape(xlabel)}</text>']
    for t in np.linspace(0, 1, 5):
        v = lo + t * (hi - lo)
        parts.append(f'<text x="{px(v):.1f}" y="{bottom + 14}" text-anchor="middle">{v:.3g}</text>')
    for i, r in enumerate(rows):
        cy = TOP + 10 + i * row + row / 2
        xs = np.array([px(v) for v in np.asarray(r["shap"], float)])
        parts.append(f'<text x="{left - 6}" y="{cy + 4:.1f}" text-anchor="end">{escape(str(r["name"])[:32])}</text>')
        for x, dy, t in zip(xs, _swarm_offsets(xs, radius, row / 2 - radius), r["colour_t"]):
            parts.append(f'<circle cx="{x:.1f}" cy="{cy + dy:.1f}" r="{radius}" fill="{_low_high(t)}" '
                         f'fill-opacity="0.85"/>')
    lx = left + pw + 30
    for k in range(10):
        parts.append(f'<rect x="{lx}" y="{TOP + 20 + (9 - k) * 12}" width="10" height="12" '
                     f'fill="{_low_high(k / 9)}"/>')
    parts.append(f'<text x="{lx + 5}" y="{TOP + 14}" text-anchor="middle">high</text>')
    parts.append(f'<text x="{lx + 5}" y="{TOP + 152}" text-anchor="middle">low</text>')
    parts.append(f'<text transform="translate({lx + 24},{TOP + 80}) rotate(90)" text-anchor="middle">'
                 f'feature value</text>')
    parts.append("</svg>")
    return "".join(parts)


def png_data_uri(gray):
    """A uint8 grayscale image as a base64 PNG data URI (the page stays one self-contained file)."""
    import base64  # noqa: PLC0415

    import cv2  # noqa: PLC0415

    ok, buf = cv2.imencode(".png", np.asarray(gray, np.uint8))
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def occlusion_svg(gray, drops, title, subtitle, size=240):
    """The image with the occlusion map over it: each grid cell tinted by how much hiding it lowered
    the explained probability (red) or raised it (blue); opacity scales with the map's largest |drop|.
    subtitle: a list of lines."""
    return _occlusion_svg(gray, drops, title, list(subtitle), size)


def _occlusion_svg(gray, drops, title, subtitle, size):
    gray = np.asarray(gray)
    drops = np.asarray(drops, float)
    h, w = gray.shape
    scale = size / max(h, w)
    dw, dh = w * scale, h * scale
    top = 20 + 14 * len(subtitle)
    width, height = int(max(dw, 230) + 10), int(top + dh + 24)
    peak = float(np.nanmax(np.abs(drops))) if np.isfinite(drops).any() else 0.0
    rows, cols = drops.shape
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'font-family="sans-serif" font-size="11" class="occlusion" data-grid="{rows}x{cols}">',
             f'<title>{escape(title)}</title>',
             f'<text x="5" y="13" font-weight="bold">{escape(title)}</text>',
             *(f'<text x="5" y="{27 + 14 * i}">{escape(line)}</text>' for i, line in enumerate(subtitle)),
             f'<image x="5" y="{top}" width="{dw:.1f}" height="{dh:.1f}" href="{png_data_uri(gray)}"/>']
    for i in range(rows):
        for j in range(cols):
            d = float(drops[i, j])
            alpha = 0.0 if not peak or not np.isfinite(d) else 0.65 * abs(d) / peak
            x0, x1 = 5 + dw * j / cols, 5 + dw * (j + 1) / cols
            y0, y1 = top + dh * i / rows, top + dh * (i + 1) / rows
            parts.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                         f'fill="{_signed_colour(d)}" fill-opacity="{alpha:.3f}" stroke="#fff" '
                         f'stroke-opacity="0.3" data-drop="{d!r}"><title>drop {d:+.4f}</title></rect>')
    parts.append(f'<text x="5" y="{height - 6}">largest change {peak:.4f} (red: hiding lowers P)</text>')
    parts.append("</svg>")
    return "".join(parts)
