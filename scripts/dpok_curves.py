"""Plot learning curves written by scripts/dpok_toy.py and print them as a Markdown table.

    python scripts/dpok_curves.py --run "DPOK jpeg=outputs/abl/A1_full" --run "DRaFT-K align=outputs/abl/D1" \\
        --png docs/dpok/curves.png --md docs/dpok/curves.md

Each panel is one held-out reward (paired Δ vs the base, ± 1 s.e. cluster-robust by prompt) against
training samples; the table adds the KL term (mean (ε̂_θ − ε̂_pre)² of the last policy step) and the mean
wall time per iteration split into rollout / reward / value / policy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REWARDS = {"jpeg_compressibility": "Δ jpeg_compressibility (−kB)", "toy_alignment": "Δ toy_alignment (nats)"}
SPLIT = ("rollout_seconds", "reward_seconds", "value_seconds", "policy_seconds", "iteration_seconds")


def load(path: Path) -> list[dict]:
    f = path / "curve.jsonl"
    if not f.is_file():
        raise FileNotFoundError(f"{f} is missing: run scripts/dpok_toy.py --out {path} first")
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def se(h: dict) -> float:
    """The s.e. clustered by prompt (``se_prompt``; equal to the s.e. of the prompt means for a balanced design)."""
    return h.get("se_prompt", h["se"])


def table(runs: dict[str, list[dict]]) -> str:
    lines = ["| run | samples | train s | KL | Δ align ± s.e. (z) | Δ jpeg (−kB) ± s.e. (z) | s/iter: rollout / reward / "
             "value / policy / total |", "|---|---|---|---|---|---|---|"]
    for name, curve in runs.items():
        for p in curve:
            h, sp = p["heldout"], p["seconds_per_iteration"]
            cells = [f"{h[r]['delta']:+.4f} ± {se(h[r]):.4f} ({h[r]['delta'] / se(h[r]):+.1f})"
                     for r in ("toy_alignment", "jpeg_compressibility")]
            split = " / ".join(f"{sp.get(k, 0):.2f}" for k in SPLIT)
            kl = f"{p['kl']:.1e}" if p.get("kl") is not None else "–"
            lines.append(f"| {name} | {p['samples']} | {p['train_seconds']:.0f} | {kl} | {cells[0]} | {cells[1]} | "
                         f"{split} |")
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(REWARDS), figsize=(5.5 * len(REWARDS), 4))
    for ax, (key, label) in zip(axes, REWARDS.items()):
        for name, curve in runs.items():
            x = [0] + [p["samples"] for p in curve]
            y = [0.0] + [p["heldout"][key]["delta"] for p in curve]
            e = [0.0] + [se(p["heldout"][key]) for p in curve]
            ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, label=name)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("training samples drawn")
        ax.set_ylabel(label + " vs base, held-out prompts")
        ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=DIR")
    ap.add_argument("--png", default=None)
    ap.add_argument("--md", default=None)
    args = ap.parse_args()
    runs = {}
    for spec in args.run:
        label, _, path = spec.rpartition("=")  # a label may hold "=" (w=0.5); a path does not
        runs[label] = load(Path(path))
    md = table(runs)
    print(md)
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(md + "\n")
    if args.png:
        plot(runs, Path(args.png))


if __name__ == "__main__":
    main()
