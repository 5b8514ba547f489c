"""Figures of the reports: forest plots of the paired differences, the methods side by side, labels that never
overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from blend import report
from blend.styles import style
from dbcore import figures


def _rows(configs: dict[str, tuple[str, float]], n_prompts: int = 3, seeds=(0, 1, 2)) -> list[dict]:
    """Result rows of a synthetic run: config -> (method, shift of its weighted reward); DB-MPA targets w."""
    rng = np.random.default_rng(0)
    out = []
    for label, (method, shift) in configs.items():
        for p in range(n_prompts):
            for s in seeds:
                v = float(p + 0.1 * s + shift + 0.05 * rng.normal())
                out.append({"config": label, "display": label.upper(), "method": method, "role": "", "weights": [0.5],
                            "lam": None, "targets": "w" if method != "base" else None, "prompt_index": p,
                            "prompt": f"prompt number {p} with a long text", "seed": s,
                            "image": f"images/{label}/p{p}_s{s}.png", "rewards": {"r": v},
                            "weighted_reward": {"w": v}, "seconds": 0.1, "unet_evals": 2, "noise": "per_image"})
    return out


def test_forest_plot_of_the_summary_has_one_row_per_paired_difference(tmp_path):
    rows = _rows({"mpa": ("mpa", 0.0), "soup": ("soup", -0.5), "ls": ("mpa_ls", 0.1), "base": ("base", -1.0)})
    summary = report.summarise(rows)
    forest = report.paired_rows(summary, ["w"])
    # every config but the reference has its Δ vs DB-MPA, as in the table, with the table's interval
    assert [r.label for r in forest] == ["SOUP − DB-MPA", "LS − DB-MPA", "BASE − DB-MPA"]
    d = summary["soup"]["paired_vs_mpa"]["w"]
    assert (forest[0].mean, forest[0].lo, forest[0].hi) == (d["mean"], *d["ci95"])
    assert forest[0].lo < forest[0].mean < forest[0].hi and abs(forest[0].mean + 0.5) < 0.15 and forest[0].key == "soup"
    path = report.plot_paired(tmp_path, summary, ["w"])
    assert path == tmp_path / "summary_paired.png"
    assert path.stat().st_size > 0 and (tmp_path / "summary_paired.pdf").stat().st_size > 0
    assert report.plot_paired(tmp_path, report.summarise([r for r in rows if r["method"] != "mpa"]), ["w"]) is None


def test_forest_draws_a_zero_line_and_every_row(tmp_path, monkeypatch):
    seen = {}
    real_save = figures.save

    def keep(fig, path, formats=("png", "pdf")):
        ax = fig.axes[0]
        seen["ticks"] = [t.get_text() for t in ax.get_yticklabels()]
        seen["zero"] = any(list(line.get_xdata()) == [0.0, 0.0] for line in ax.get_lines())
        seen["note"] = " ".join(t.get_text() for t in fig.texts)
        return real_save(fig, path, formats)

    monkeypatch.setattr(figures, "save", keep)
    rows = [figures.ForestRow("a − ref", 0.2, 0.1, 0.3, "soup"), figures.ForestRow("b − ref", -0.1, math.nan,
                                                                                     math.nan, "code"),
            figures.ForestRow("c − ref", math.nan, math.nan, math.nan, "rgg")]
    paths = figures.forest(rows, tmp_path / "f.png", "t", "Δ", "s.e. by prompt", style_of=style)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert seen["ticks"] == ["a − ref", "b − ref (no interval)"] and seen["zero"]
    assert "c − ref" in seen["note"] and "s.e. by prompt" in seen["note"]
    assert figures.forest([], tmp_path / "g.png", "t", "Δ", style_of=style) == []


def test_methods_side_by_side_share_one_seed(tmp_path, monkeypatch):
    rows = _rows({"mpa": ("mpa", 0.0), "soup": ("soup", -0.5)}, n_prompts=2, seeds=(0, 1))
    rows = [r for r in rows if not (r["config"] == "soup" and r["seed"] == 0)]  # seed 0 missing for one method
    for r in rows:  # each image's colour encodes its (config, prompt, seed)
        path = tmp_path / r["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10 * r["prompt_index"], 100 * r["seed"], 200 if r["config"] == "soup" else 0)
                  ).save(path)
    captured = {}
    real = figures.image_grid

    def spy(tiles, row_labels, col_labels, title, path=None, **kw):
        captured.update(tiles=tiles, rows=row_labels, cols=col_labels, title=title)
        return real(tiles, row_labels, col_labels, title, path, **kw)

    monkeypatch.setattr(figures, "image_grid", spy)
    written = report.write_grids(tmp_path, rows)
    side = tmp_path / "grids" / "methods_seed1.png"
    assert side in written and side.exists() and side.with_suffix(".pdf").exists()
    assert captured["rows"] == ["MPA", "SOUP"]  # display names as row labels
    assert len(captured["cols"]) == 2 and all(len(c) <= 12 for c in captured["cols"])
    for i, blue in enumerate((0, 200)):
        for p, tile in enumerate(captured["tiles"][i]):
            assert tile.getpixel((0, 0)) == (10 * p, 100, blue)  # seed 1 in every row: paired images
    assert report.write_method_grid(tmp_path, [r for r in rows if r["config"] == "mpa"]) is None  # one method


def test_crowded_front_labels_never_overlap():
    """A front far too crowded for every label: the labels that are drawn have pairwise disjoint boxes (measured by
    matplotlib's renderer after the layout), and each label is either drawn or named as dropped."""
    plt = figures.setup()
    fig, ax = plt.subplots(figsize=(2.4, 2.0))
    xs, ys, labels = [], [], []
    for k, key in enumerate(["mpa", "mpa_ls", "soup", "code", "rgg"]):
        w = np.linspace(0, 1, 21)
        x, y = w + 0.02 * k, 1 - w ** 1.5 + 0.015 * k
        ax.plot(x, y, **style(key).kwargs())
        xs += list(x)
        ys += list(y)
        labels += [f"{v:g}" for v in w]
    placed = figures.place_labels(ax, xs, ys, labels, fontsize=6)
    figures.legend_outside(ax)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in placed.texts if t is not None]
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert len(texts) + len(placed.dropped) == len(labels) and len(texts) > 10 and placed.dropped
    assert not [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert "left off" in placed.caption() and placed.dropped[0] in placed.caption()
    plt.close(fig)


def test_sparse_labels_are_all_placed():
    plt = figures.setup()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [0, 1, 0], "o")
    placed = figures.place_labels(ax, [0, 1, 2], [0, 1, 0], ["a", "b", "c"])
    assert not placed.dropped and placed.caption() == "" and all(t is not None for t in placed.texts)
    plt.close(fig)


def _toy_rows() -> list[dict]:
    """A synthetic toy run (scripts/toy_report.py's inputs): base, both adapters, DB-MPA and the soup at w = 0.5, and
    the w = 0.5 MORL oracle in two training seeds."""
    rng = np.random.default_rng(1)
    configs = [("base", "base", "", [], []), ("single_a", "single", "", [1.0], ["alignment"]),
               ("single_c", "single", "", [1.0], ["compressibility"]),
               ("mpa", "mpa", "", [0.5, 0.5], ["alignment", "compressibility"]),
               ("soup", "soup", "", [0.5, 0.5], ["alignment", "compressibility"]),
               ("o0", "single", "oracle", [1.0], ["oracle0_w"]), ("o1", "single", "oracle", [1.0], ["oracle1_w"])]
    rows = []
    for label, method, role, weights, adapters in configs:
        for p in range(3):
            for s in range(2):
                rows.append({"config": label, "method": method, "role": role, "weights": weights, "lam": None,
                             "adapters": [{"name": a, "path": f"toy/weights/oracles/w0.5/seed{label[-1]}"}
                                          for a in adapters], "targets": "w=(0.5,0.5)" if role else None,
                             "prompt_index": p, "seed": s, "noise": "per_image", "seconds": 0.1, "unet_evals": 2,
                             "steps": 10, "guidance": 2.0, "eta": 1.0,
                             "rewards": {k: float(p + rng.normal()) for k in
                                         ("toy_align_heldout_z", "toy_jpeg_capped_z", "toy_jpeg_z", "toy_align_z",
                                          "toy_truth")}})
    return rows


def test_toy_report_writes_the_tables_the_claims_and_their_forest_plot(tmp_path, monkeypatch):
    import importlib.util
    import json
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("toy_report", Path(__file__).resolve().parents[1] / "scripts"
                                                  / "toy_report.py")
    toy_report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy_report)
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _toy_rows()))
    (run / "summary.md").write_text("### Results\n")
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["toy_report.py", "--table1", str(run), "--weights", "0.5", "--kla", str(run),
                                      "--out", str(out)])
    toy_report.main()
    assert (out / "claims_forest.png").stat().st_size > 0 and (out / "claims_forest.pdf").exists()
    claims = json.loads((out / "claims.json").read_text())
    labels = [r["label"] for r in claims["family"]]
    assert "w = 0.5: DB-MPA − MORL oracle (2 training seed(s))" in labels
    assert all(r["p_holm"] >= r["p"] for r in claims["family"] + claims["primary"])
    # the primary family is the compromise-wins claim at w = 0.5 alone, and no comparison sits in both families
    assert [r["label"] for r in claims["primary"]] == [
        "w = 0.5: DB-MPA − single adapter: alignment", "w = 0.5: DB-MPA − single adapter: compressibility",
        "w = 0.5: single adapter: alignment − MORL oracle (2 training seed(s))",
        "w = 0.5: single adapter: compressibility − MORL oracle (2 training seed(s))"]
    assert not set(labels) & {r["label"] for r in claims["primary"]}
    assert claims["primary"][0]["simultaneous_level"] == pytest.approx(1 - 0.05 / 4)
    assert "training seed 1" in (out / "table1.md").read_text() and (out / "kla.md").read_text() == "### Results\n"
    rows = [line.split(" | ")[0] for line in (out / "bases.md").read_text().splitlines()[2:4]]
    assert rows == ["| alignment", "| compressibility"]  # each basis adapter paired with the base


def test_toy_report_compares_db_kla_with_the_lambda_specific_models_pooled_over_seeds():
    """DB-KLA at λ against the λ-specific models of every training seed (read from ``oracles_kl/lam<λ>/seed<s>``),
    on alignment by both judges; a λ with no DB-KLA row and an oracle of another folder are left out."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("toy_report", Path(__file__).resolve().parents[1] / "scripts"
                                                  / "toy_report.py")
    toy_report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy_report)
    rng = np.random.default_rng(2)

    def rows(config, method, lam=None, role="", path=""):
        return [{"config": config, "method": method, "role": role, "lam": lam, "weights": [1.0],
                 "adapters": [{"name": config, "path": path}], "prompt_index": p, "seed": s,
                 "rewards": {"toy_align_heldout_z": float(p + rng.normal()), "toy_align_z": float(p + rng.normal())}}
                for p in range(3) for s in range(2)]

    groups = {"kla_0.5": rows("kla_0.5", "kla", 0.5), "kla_1.5": rows("kla_1.5", "kla", 1.5)}
    for s in range(3):
        groups[f"o{s}"] = rows(f"o{s}", "single", role="oracle", path=f"toy/weights/oracles_kl/lam0.5/seed{s}/a.st")
    groups["o_w"] = rows("o_w", "single", role="oracle", path="toy/weights/oracles/w0.5/seed0/a.st")
    family = toy_report.kla_family(groups)
    assert [c.label for c in family] == [
        "λ = 0.5: DB-KLA − λ-specific model (3 training seed(s)), alignment, held-out judge",
        "λ = 0.5: DB-KLA − λ-specific model (3 training seed(s)), alignment, training judge"]
    assert all(c.a is groups["kla_0.5"] and len(c.b) == 3 for c in family)
    assert family[0].value(groups["o0"][0]) == groups["o0"][0]["rewards"]["toy_align_heldout_z"]
