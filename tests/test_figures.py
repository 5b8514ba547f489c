"""The shared figure style: labelled image grids (real font, read back), fixed method styles, label placement."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from diffusion_blend import figures


def _ink(img: Image.Image, box) -> int:
    """Dark pixels inside ``box`` (text is black on white)."""
    a = np.asarray(img.convert("L").crop(tuple(int(v) for v in box)))
    return int((a < 128).sum())


def test_image_grid_has_title_row_and_column_labels(tmp_path, caplog):
    tiles = [[Image.new("RGB", (8, 8), (255, 0, 0)) for _ in range(3)] for _ in range(2)]
    tiles[1][2] = None
    prompts = ["a red square on a very long and winding description", "a blue circle"]
    with caplog.at_level(logging.INFO):
        img, lay = figures.image_grid(tiles, prompts, ["seed 0", "seed 1", "seed 2"], "DB-MPA w=(0.5,0.5)",
                                      tmp_path / "g.png", tile_px=48)
    assert not lay.capped and "capped" not in caplog.text
    back = Image.open(tmp_path / "g.png")
    assert back.size == img.size == lay.size
    assert (tmp_path / "g.pdf").stat().st_size > 0
    # title above the column labels, column labels above the tiles, row labels left of the tiles
    top_of_tiles = lay.tile_boxes[0][0][1]
    assert lay.title_box[3] <= min(b[1] for b in lay.col_boxes)
    assert all(b[3] <= top_of_tiles for b in lay.col_boxes)
    assert all(b[2] <= lay.tile_boxes[0][0][0] for b in lay.row_boxes)
    # column label j centred over tile column j; row label i beside tile row i
    for j, b in enumerate(lay.col_boxes):
        x0, _, x1, _ = lay.tile_boxes[0][j]
        assert abs((b[0] + b[2]) / 2 - (x0 + x1) / 2) <= 2
    for i, b in enumerate(lay.row_boxes):
        _, y0, _, y1 = lay.tile_boxes[i][0]
        assert y0 <= (b[1] + b[3]) / 2 <= y1
    # the labels were really drawn (ink inside each box, in an antialiased TrueType font) and the tiles pasted
    for box in [lay.title_box, *lay.col_boxes, *lay.row_boxes]:
        assert _ink(back, box) > 5
    gray = np.asarray(back.convert("L"))
    assert len(np.unique(gray[lay.title_box[1]:lay.title_box[3], lay.title_box[0]:lay.title_box[2]])) > 3
    x0, y0, x1, y1 = lay.tile_boxes[0][0]
    assert tuple(np.asarray(back)[(y0 + y1) // 2, (x0 + x1) // 2]) == (255, 0, 0)
    x0, y0, x1, y1 = lay.tile_boxes[1][2]
    assert tuple(np.asarray(back)[(y0 + y1) // 2, (x0 + x1) // 2]) == (200, 200, 200)


def test_capped_grid_logs(tmp_path, caplog):
    tiles = [[Image.new("RGB", (4, 4)) for _ in range(4)] for _ in range(5)]
    with caplog.at_level(logging.INFO):
        _, lay = figures.image_grid(tiles, [f"p{i}" for i in range(5)], [f"s{j}" for j in range(4)], "base",
                                    max_rows=2, tile_px=16)
    assert lay.capped and len(lay.row_boxes) == 2 and len(lay.col_boxes) == 4
    assert "capped to 2 of 5 rows" in caplog.text


def test_method_styles_are_fixed_and_distinct():
    keys = ["base", "single", "mpa", "mpa_ls", "soup", "soup_factors", "kla", "oracle"]
    assert len({(figures.style(k).color, figures.style(k).marker) for k in keys}) == len(keys)
    assert figures.style("newmethod") == figures.style("newmethod")


def test_weight_labels_do_not_overlap(tmp_path):
    plt = figures.setup()
    fig, ax = plt.subplots(figsize=(3, 2.5))
    xs = np.linspace(0, 1, 11)
    ys = xs + 0.01 * np.sin(xs * 7)  # crowded points on a line
    ax.plot(xs, ys, **figures.style("mpa").kwargs())
    texts = figures.label_points(ax, xs, ys, [f"{w:.1f}" for w in xs])
    figures.legend_outside(ax)
    ax.set_xlabel("x")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in texts]
    clashes = sum(figures._overlaps(a, b, pad=0) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert clashes == 0
    leg = ax.get_legend().get_window_extent(r)
    assert leg.x0 >= ax.get_window_extent(r).x1  # legend outside the axes
    paths = figures.save(fig, tmp_path / "p.png")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)
    plt.close(fig)
