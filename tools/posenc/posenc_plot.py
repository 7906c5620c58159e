"""Draws a figure that `posenc plot` describes (docs/plots.md), with matplotlib.

    python3 posenc_plot.py DESCRIPTION.json

DESCRIPTION.json (written by tools/posenc/plot.hpp, posenc_cli::plot::describe) names the
picture to write, its format (svg or png), the titles, the colour map and every panel: a heatmap
(values in a .npy of float64 [rows, cols], -inf masked, with its colour range) or a line plot
(series in .npy files of float64 [2, n]: x then y). File names are relative to the
description's directory. The colour ranges are the program's; nothing here computes data.

Exit status: 0 when the picture is written; 3 when numpy or matplotlib cannot be imported (the
one line on stderr names the module); 1 for anything else.
"""
import json
import math
import os
import sys

try:
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.text import Annotation
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator
except ImportError as e:
    print(f"cannot import {e.name or 'a module'} ({e})", file=sys.stderr)
    sys.exit(3)

DPI = 100
# Space around each panel's plotting area, in pixels, from the default 10-point text at 100 dpi:
# tick labels and the axis label on the left, ticks and the label below, the panel title above.
LEFT, RIGHT, BELOW, ABOVE = 70, 10, 55, 30
COLORBAR = 80  # a colour bar with its tick labels and label
TITLE, SUBTITLE = 32, 18
COLORMAPS = {"viridis": "viridis", "diverging": "RdBu_r", "gray": "gray_r"}
MASKED = "#dddddd"


def clean(text):
    """Control characters (other than newlines) as U+FFFD: the fonts have no glyphs for them."""
    return "".join(c if c >= " " or c == "\n" else "\ufffd" for c in text)


def setup():
    """matplotlib's own defaults whatever the user's matplotlibrc says, so that a picture
    depends only on its description, and the settings that make the output reproducible."""
    matplotlib.rcdefaults()
    matplotlib.rcParams.update({
        "svg.hashsalt": "posenc",  # fixed ids instead of random ones
        "svg.fonttype": "none",  # text stays <text>, searchable and scalable
        "text.parse_math": False,  # labels are plain text: '$' is a dollar sign
        "axes.formatter.useoffset": False,  # positions up to 2^40 printed in full
        "image.interpolation": "nearest",
        "image.resample": False,
    })


def legend_width(panel):
    names = [s["name"] for s in panel["series"]]
    if not panel["legend"]:
        return 0
    return 45 + 7 * max(len(n) for n in names)


def heatmap_ticks(axis, n, v0, step, names, length_px, horizontal):
    """Ticks of a heatmap axis of n cells labelled v0 + i step, or by name (every k-th cell so
    that the names do not overlap: names longer than 3 characters below the x axis are turned
    upright). Returns whether the labels are turned."""
    turned = False
    if names:
        widest = max(len(s) for s in names)
        turned = horizontal and widest > 3
        need = (7 * widest + 6) if horizontal and not turned else 14
        every = max(1, math.ceil(need * n / max(length_px, 1)))
        idx = list(range(0, n, every))
        axis.set_major_locator(FixedLocator([v0 + i * step for i in idx]))
        axis.set_ticklabels([clean(names[i]) for i in idx])
    else:
        target = max(2, min(8, int(length_px / (60 if horizontal else 30))))
        axis.set_major_locator(MaxNLocator(nbins=target, integer=step == int(step), steps=[1, 2, 2.5, 5, 10]))
    axis.set_minor_locator(NullLocator())
    return turned


def draw_heatmap(fig, ax, panel, d, base):
    values = np.load(os.path.join(base, panel["values"]))
    rows, cols = values.shape
    data = np.ma.masked_invalid(values)
    cmap = matplotlib.colormaps[COLORMAPS[d["colormap"]]].with_extremes(bad=MASKED)
    x0, xs, y0, ys = panel["x0"], panel["x_step"], panel["y0"], panel["y_step"]
    # Cell (i, j) centred on (x0 + j xs, y0 + i ys), row 0 at the top.
    extent = (x0 - xs / 2, x0 + (cols - 0.5) * xs, y0 + (rows - 0.5) * ys, y0 - ys / 2)
    interpolation = "none" if d["format"] == "svg" else "nearest"
    im = ax.imshow(data, cmap=cmap, vmin=panel["vmin"], vmax=panel["vmax"], extent=extent,
                   aspect="auto", interpolation=interpolation, origin="upper")
    im.set_gid(f"heatmap-{panel['index']}")
    ax.set_box_aspect(panel["height"] / panel["width"])
    if heatmap_ticks(ax.xaxis, cols, x0, xs, panel["x_names"], panel["width"], True):
        ax.tick_params(axis="x", labelrotation=90)
    heatmap_ticks(ax.yaxis, rows, y0, ys, panel["y_names"], panel["height"], False)
    if not d["shared_scale"]:
        colorbar(fig, im, ax, d, panel["index"])
    return im


def colorbar(fig, im, axes, d, gid):
    cb = fig.colorbar(im, ax=axes, fraction=0.08 if gid != "shared" else 0.04, pad=0.03, aspect=25)
    cb.ax.set_gid(f"colorbar-{gid}")
    if d["colorbar_label"]:
        cb.set_label(clean(d["colorbar_label"]))
    return cb


def draw_lines(ax, panel, base):
    for k, s in enumerate(panel["series"]):
        xy = np.load(os.path.join(base, s["data"]))
        ax.plot(xy[0], xy[1], lw=1.5, label=clean(s["name"]) or None, gid=f"series-{panel['index']}-{k}")
    if panel["y_reference"] is not None:
        ax.axhline(panel["y_reference"], color="0.45", lw=1, ls="--", zorder=1)
    ax.grid(True, color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    if panel["legend"]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)


def draw(d, base):
    panels = d["panels"]
    columns, rows = d["columns"], d["rows"]
    heat = [p for p in panels if p["kind"] == "heatmap"]
    own_bars = bool(heat) and not d["shared_scale"]
    slot_w = max(p["width"] + LEFT + RIGHT + (COLORBAR if own_bars and p["kind"] == "heatmap" else 0)
                 + (legend_width(p) if p["kind"] == "line" else 0) for p in panels)
    slot_h = max(p["height"] + BELOW + ABOVE for p in panels)
    top = (TITLE if d["title"] else 0) + (SUBTITLE if d["subtitle"] else 0)
    width = columns * slot_w + (COLORBAR if heat and d["shared_scale"] else 0)
    height = rows * slot_h + top
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(rows, columns)
    axes, last_image = [], None
    for k, p in enumerate(panels):
        p["index"] = k
        ax = fig.add_subplot(grid[k // columns, k % columns])
        ax.set_gid(f"panel-{k}")
        axes.append(ax)
        if p["title"]:
            ax.set_title(clean(p["title"]), fontsize=11, fontweight="bold")
        ax.set_xlabel(clean(p["x_label"]))
        ax.set_ylabel(clean(p["y_label"]))
        if p["kind"] == "heatmap":
            last_image = draw_heatmap(fig, ax, p, d, base)
        else:
            draw_lines(ax, p, base)
    if heat and d["shared_scale"]:
        colorbar(fig, last_image, [a for a, p in zip(axes, panels) if p["kind"] == "heatmap"], d, "shared")
    title, subtitle = clean(d["title"]), clean(d["subtitle"])
    if title:
        # A blank second line keeps room for the subtitle, drawn under the title's first line.
        sup = fig.suptitle(title + ("\n " if subtitle else ""), fontsize=13, fontweight="bold")
        if subtitle:
            fig.add_artist(Annotation(subtitle, xy=(0.5, 0.0), xycoords=sup, xytext=(0, 3),
                                      textcoords="offset points", ha="center", va="bottom", fontsize=10,
                                      color="0.3"))
    elif subtitle:
        fig.suptitle(subtitle, fontsize=10, color="0.3")
    if d["masked"]:
        fig.legend(handles=[Patch(facecolor=MASKED, edgecolor="0.2", lw=0.6, label="masked (\u2212\u221e)")],
                   loc="upper right", bbox_to_anchor=(1.0, 0.0), frameon=False)
    return fig


def main():
    if len(sys.argv) != 2:
        print("usage: posenc_plot.py DESCRIPTION.json", file=sys.stderr)
        return 1
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    base = os.path.dirname(os.path.abspath(path))
    setup()
    fig = draw(d, base)
    metadata = {"Date": None, "Creator": None} if d["format"] == "svg" else {"Software": None}
    fig.savefig(os.path.join(base, d["output"]), format=d["format"], dpi=DPI, metadata=metadata,
                bbox_inches="tight", pad_inches=0.12, facecolor="white")
    return 0


if __name__ == "__main__":
    sys.exit(main())
