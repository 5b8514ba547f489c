"""One figure style for every plot and image grid the project draws.

* a real font (DejaVu Sans, shipped with matplotlib) for plots and for the labels of image grids;
* one fixed colour and marker per key (``style``): a method's is declared by its module in ``blend.methods`` and
  handed in as ``methods`` (``blend.styles.style`` does), any other key's is fixed here or chosen by a hash of
  its name, the same in every run and script;
* weight labels on sweep points placed so that their boxes never overlap; a label that finds no free place is
  left off and named for the caption (``place_labels``);
* paired differences as a forest plot: a point and its 95% interval per comparison against a zero line
  (``forest``);
* legends outside the data (``legend_outside``);
* every figure saved as PNG and PDF side by side (``save``);
* image grids with prompt rows, seed columns and the method as title (``image_grid``), with a log line
  when a grid is capped.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from dbcore.io import atomic_path
from dbcore.logging import get_logger

log = get_logger("figures")

FONT = "DejaVu Sans"


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str
    label: str

    def kwargs(self, line: bool = True) -> dict:
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle if line else "none",
                "label": self.label}


# Styles of what is not a sampling method: the theory lab's distributions. A method's style (Okabe–Ito colours
# for the blends, Tol's muted colours for the baselines) is declared by its module in blend.methods.
METHODS: dict[str, Style] = {
    "mpa_ls_batch": Style("#009E73", "v", "-.", "DB-MPA-LS (one draw per step for the batch)"),
    "target": Style("#882255", "P", "-", "exact target"),
}
_FALLBACK = ["#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB"]
_FALLBACK_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def style(key: str, methods: Callable[[str], Style | None] | None = None) -> Style:
    """The fixed style of ``key``: ``methods(key)`` when it gives one (the methods' own styles, handed in by the
    layer that knows them: ``blend.styles.style``), else the fixed style above, else a colour and marker chosen by a
    hash of the name (the same in every run)."""
    found = methods(key) if methods is not None else None
    if found is not None:
        return found
    if key in METHODS:
        return METHODS[key]
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
    return Style(_FALLBACK[h % len(_FALLBACK)], _FALLBACK_MARKERS[(h // 7) % len(_FALLBACK_MARKERS)], "-", key)


def setup():
    """matplotlib with the Agg backend and the project's rcParams; returns ``pyplot``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.family": "sans-serif", "font.sans-serif": [FONT], "font.size": 9, "axes.titlesize": 10,
        "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
        "axes.grid": True, "grid.alpha": 0.3, "savefig.dpi": 150, "pdf.fonttype": 42,
        "errorbar.capsize": 2, "lines.markersize": 5,
    })
    return plt


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the axes, outside the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, **kwargs)


def _overlaps(a, b, pad: float = 1.0) -> bool:
    return not (a.x1 + pad < b.x0 or b.x1 + pad < a.x0 or a.y1 + pad < b.y0 or b.y1 + pad < a.y0)


def _offsets() -> list[tuple[float, float]]:
    """Candidate label offsets in points: rings of 12 directions at growing radii, nearest first (right and up
    before left and down at equal distance)."""
    import math

    out = []
    for r in (5.0, 9.0, 14.0, 20.0, 28.0):
        for k in (0, 1, 11, 2, 10, 3, 9, 4, 8, 5, 7, 6):  # starting up-right, alternating around the ring
            a = math.pi / 4 + k * math.pi / 6
            out.append((round(r * math.cos(a), 1), round(r * math.sin(a), 1) - 3.0))
    return out


_OFFSETS = _offsets()


@dataclass
class Placed:
    """The outcome of :func:`place_labels`: one entry per label, the text artist or None where the label was
    dropped (no candidate position was free), and the dropped labels for the caption."""

    texts: list
    dropped: list[str]

    def caption(self) -> str:
        """'' when every label fits, else a sentence naming the labels left off."""
        if not self.dropped:
            return ""
        return (f"{len(self.dropped)} point label(s) left off for lack of room: " + ", ".join(self.dropped) + ".")


def place_labels(ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], fontsize: float = 7,
                 color: str | None = None, colors: Sequence[str] | None = None, inside: bool = True) -> Placed:
    """Annotate points so that no two label boxes overlap and no label covers a point: for each label in turn the
    candidate offsets (rings of 12 directions at 5–28 points) are tried, nearest first, with the text's extent from
    the renderer; the first free one is kept (greedy). A label with no free position is dropped (listed in
    ``Placed.dropped``, for the caption), never drawn over another. ``inside`` keeps labels within the axes."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    points = [ax.transData.transform((x, y)) for x, y in zip(xs, ys)]
    placed_boxes, texts, dropped = [], [], []
    for i, ((x, y), lab) in enumerate(zip(zip(xs, ys), labels)):
        c = colors[i] if colors is not None else color
        chosen = None
        for dx, dy in _OFFSETS:
            ha = "left" if dx > 0.5 else "right" if dx < -0.5 else "center"
            t = ax.annotate(lab, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha,
                            color=c)
            bb = t.get_window_extent(renderer)
            clash = (inside and not (frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0
                                     and bb.y1 <= frame.y1)) \
                or any(_overlaps(bb, p) for p in placed_boxes) \
                or any(bb.x0 - 2 <= px <= bb.x1 + 2 and bb.y0 - 2 <= py <= bb.y1 + 2 for px, py in points)
            if not clash:
                chosen = (t, bb)
                break
            t.remove()
        if chosen is None:
            texts.append(None)
            dropped.append(str(lab))
            continue
        placed_boxes.append(chosen[1])
        texts.append(chosen[0])
    if dropped:
        log.info("%d of %d point labels left off (no free position): %s", len(dropped), len(labels),
                 ", ".join(dropped))
    return Placed(texts, dropped)


def label_points(ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], fontsize: float = 7,
                 color: str | None = None) -> list:
    """:func:`place_labels`, returning the text artists of the labels that were placed (pairwise disjoint)."""
    return [t for t in place_labels(ax, xs, ys, labels, fontsize, color).texts if t is not None]


@dataclass(frozen=True)
class ForestRow:
    """One paired comparison: ``label`` (e.g. "Rewarded soup − DB-MPA, w=(0.5,0.5)"), the mean difference and its
    95% interval (NaN where no standard error exists), ``key`` the method style (colour, marker)."""

    label: str
    mean: float
    lo: float
    hi: float
    key: str = ""


def forest(rows: Sequence[ForestRow], path: str | Path, title: str, xlabel: str, note: str = "", *,
           style_of: Callable[[str], Style]) -> list[Path]:
    """A forest plot of paired differences: one row per comparison (top to bottom in the given order), the mean as a
    point in its method's style, the 95% interval as a line, a zero line; ``note`` (the unit of the intervals) under
    the axes. Rows without a finite mean are left out and named in the note; a row without an interval is drawn as a
    point and labelled "(no interval)"; ``style_of(key)`` gives a row's style (``blend.styles.style``; a row
    without a key is drawn as the reference method, ``style_of("")``). Written as ``path`` in PNG and PDF; returns
    the paths ([] without rows)."""
    import math

    finite = [r for r in rows if r.mean is not None and math.isfinite(r.mean)]
    missing = [r.label for r in rows if r not in finite]
    if not finite:
        return []
    plt = setup()
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.28 * len(finite)))
    ys = list(range(len(finite)))[::-1]
    for y, r in zip(ys, finite):
        st = style_of(r.key)
        has_ci = all(v is not None and math.isfinite(v) for v in (r.lo, r.hi))
        if has_ci:
            ax.plot([r.lo, r.hi], [y, y], color=st.color, lw=1.4, solid_capstyle="butt")
        ax.plot([r.mean], [y], marker=st.marker, color=st.color, linestyle="none", ms=5)
    ax.axvline(0.0, color="k", lw=0.8, zorder=0)
    ax.set_yticks(ys, [r.label + ("" if all(v is not None and math.isfinite(v) for v in (r.lo, r.hi))
                                  else " (no interval)") for r in finite])
    ax.set_ylim(-0.7, len(finite) - 0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    text = " ".join(x for x in (note, ("Not drawn (no finite difference): " + ", ".join(missing) + ".")
                                if missing else "") if x)
    if text:  # under the x label (measured), so the two never overlap
        fig.canvas.draw()
        y0 = ax.xaxis.label.get_window_extent(fig.canvas.get_renderer()).y0
        fig.text(0.01, fig.transFigure.inverted().transform((0, y0 - 4))[1], textwrap.fill(text, 110), fontsize=6.5,
                 ha="left", va="top")
    paths = save(fig, path)
    plt.close(fig)
    return paths


def save(fig, path: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (atomically), legends outside included."""
    path = Path(path)
    out = []
    for fmt in formats:
        target = path.with_suffix("." + fmt)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight")
        out.append(target)
    return out


# ---- image grids ---------------------------------------------------------------------------------------------
def font_path() -> str:
    """DejaVu Sans from matplotlib's own font folder (always installed with matplotlib)."""
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


@dataclass
class GridLayout:
    """Where a grid's parts went, in pixels of the written image (for callers and tests)."""

    size: tuple[int, int]
    title_box: tuple[int, int, int, int]
    row_boxes: list[tuple[int, int, int, int]]
    col_boxes: list[tuple[int, int, int, int]]
    tile_boxes: list[list[tuple[int, int, int, int]]]
    capped: bool


def image_grid(tiles: Sequence[Sequence[Image.Image | None]], row_labels: Sequence[str], col_labels: Sequence[str],
               title: str, path: str | Path | None = None, tile_px: int = 96, max_rows: int | None = None,
               max_cols: int | None = None, formats: Sequence[str] = ("png", "pdf"),
               what: str = "grid") -> tuple[Image.Image, GridLayout]:
    """A labelled grid: ``title`` on top, one column per seed (``col_labels``), one row per prompt
    (``row_labels``, wrapped on the left). Tiles are scaled to ``tile_px`` (nearest for upscaling); a missing
    tile stays grey. Rows/columns past ``max_rows``/``max_cols`` are left out with a log line. Written as
    ``path`` in each of ``formats`` when ``path`` is given."""
    n_rows, n_cols = len(tiles), max((len(r) for r in tiles), default=0)
    if len(row_labels) != n_rows or len(col_labels) != n_cols:
        raise ValueError(f"{n_rows}×{n_cols} tiles but {len(row_labels)} row and {len(col_labels)} column labels")
    keep_r = min(n_rows, max_rows or n_rows)
    keep_c = min(n_cols, max_cols or n_cols)
    capped = keep_r < n_rows or keep_c < n_cols
    if capped:
        log.info("%s %r capped to %d of %d rows and %d of %d columns", what, title, keep_r, n_rows, keep_c, n_cols)
    f_lab, f_title = _font(max(10, tile_px // 8)), _font(max(12, tile_px // 6))
    wrap = max(12, int(2.6 * tile_px / f_lab.size) + 6)
    rows_txt = ["\n".join(textwrap.wrap(str(lab), wrap)[:3]) or " " for lab in row_labels[:keep_r]]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = max(probe.multiline_textbbox((0, 0), t, font=f_lab)[2] for t in rows_txt) + 12 if rows_txt else 0
    t_h = probe.textbbox((0, 0), title, font=f_title)[3] + 12
    c_h = probe.textbbox((0, 0), "Ag", font=f_lab)[3] + 8
    gap = 2
    width = max(left + keep_c * (tile_px + gap), probe.textbbox((0, 0), title, font=f_title)[2] + 16)
    height = t_h + c_h + keep_r * (tile_px + gap)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    title_box = draw.textbbox((8, 6), title, font=f_title)
    draw.text((8, 6), title, fill="black", font=f_title)
    col_boxes, row_boxes, tile_boxes = [], [], []
    for j, lab in enumerate(col_labels[:keep_c]):
        x = left + j * (tile_px + gap) + tile_px // 2
        col_boxes.append(draw.textbbox((x, t_h + 2), str(lab), font=f_lab, anchor="ma"))
        draw.text((x, t_h + 2), str(lab), fill="black", font=f_lab, anchor="ma")
    for i in range(keep_r):
        y0 = t_h + c_h + i * (tile_px + gap)
        row_boxes.append(draw.multiline_textbbox((left - 8, y0 + tile_px // 2), rows_txt[i], font=f_lab,
                                                 anchor="rm", align="right"))
        draw.multiline_text((left - 8, y0 + tile_px // 2), rows_txt[i], fill="black", font=f_lab, anchor="rm",
                            align="right")
        boxes = []
        for j in range(keep_c):
            x0 = left + j * (tile_px + gap)
            tile = tiles[i][j] if j < len(tiles[i]) else None
            if tile is None:
                draw.rectangle((x0, y0, x0 + tile_px - 1, y0 + tile_px - 1), fill=(200, 200, 200))
            else:
                tile = tile.convert("RGB")
                resample = Image.NEAREST if max(tile.size) <= tile_px else Image.LANCZOS
                grid.paste(tile.resize((tile_px, tile_px), resample), (x0, y0))
            boxes.append((x0, y0, x0 + tile_px, y0 + tile_px))
        tile_boxes.append(boxes)
    layout = GridLayout((width, height), tuple(title_box), [tuple(b) for b in row_boxes],
                        [tuple(b) for b in col_boxes], tile_boxes, capped)
    if path is not None:
        path = Path(path)
        for fmt in formats:
            target = path.with_suffix("." + fmt)
            with atomic_path(target) as tmp:
                grid.save(tmp, format=fmt.upper() if fmt != "jpg" else "JPEG", **({"resolution": 150}
                                                                                   if fmt == "pdf" else {}))
    return grid, layout


__all__ = ["METHODS", "Style", "style", "setup", "legend_outside", "label_points", "place_labels", "Placed", "forest",
           "ForestRow", "save", "image_grid",
           "GridLayout", "font_path", "FONT", "latex_escape", "markdown_to_latex"]


# ---- tables ------------------------------------------------------------------------------------------------
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "−": "$-$", "Δ": r"$\Delta$",
                  "λ": r"$\lambda$", "α": r"$\alpha$", "σ": r"$\sigma$", "μ": r"$\mu$", "ε": r"$\varepsilon$",
                  "×": r"$\times$", "≤": r"$\leq$", "≥": r"$\geq$", "≈": r"$\approx$", "—": "---", "–": "--",
                  "Σ": r"$\Sigma$", "√": r"$\surd$", "₁": r"$_1$", "₂": r"$_2$",
                  "·": r"$\cdot$", "∇": r"$\nabla$", "η": r"$\eta$", "γ": r"$\gamma$", "→": r"$\to$",
                  "²": r"$^2$", "…": r"\ldots{}", "∈": r"$\in$"}


def latex_escape(text: str) -> str:
    """Plain text (with the few Unicode symbols the tables use) as LaTeX; **bold** becomes \\textbf."""
    out = "".join(_LATEX_ESCAPES.get(ch, _LATEX_SYMBOLS.get(ch, ch)) for ch in text)
    while out.count("**") >= 2:
        out = out.replace("**", r"\textbf{", 1).replace("**", "}", 1)
    return out.replace("`", "")


def markdown_to_latex(markdown: str, caption: str = "") -> str:
    """Every markdown table in ``markdown`` as a LaTeX ``table`` (booktabs); a ``### heading`` just before a
    table becomes part of its caption, ``caption`` is appended to each."""
    blocks, heading, cur = [], "", []
    for line in markdown.splitlines() + [""]:
        s = line.strip()
        if s.startswith("|"):
            cur.append(s)
            continue
        if cur:
            blocks.append((heading, cur))
            cur = []
        if s.startswith("#"):
            heading = s.lstrip("#").strip()
    out = []
    for heading, lines in blocks:
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
        rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]
        if not rows:
            continue
        n = len(rows[0])
        cap = " ".join(x for x in (heading + ("." if heading and not heading.endswith(".") else ""), caption) if x)
        out += [r"\begin{table}[ht]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (n - 1) + "}",
                r"\toprule", " & ".join(latex_escape(c) for c in rows[0]) + r" \\", r"\midrule"]
        out += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows[1:]]
        out += [r"\bottomrule", r"\end{tabular}"]
        if cap:
            out.append(r"\caption{" + latex_escape(cap) + "}")
        out += [r"\end{table}", ""]
    return "\n".join(out)
