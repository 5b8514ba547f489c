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

SPLIT = ("rollout_seconds", "reward_seconds", "value_seconds", "policy_seconds", "iteration_seconds")
# axis labels of the rewards a curve may hold (scripts/dpok_toy.py --eval_rewards); others are labelled by name
LABELS = {"jpeg_compressibility": "Δ jpeg_compressibility (−kB)", "toy_alignment": "Δ toy_alignment (nats)",
          "toy_align_heldout_z": "Δ alignment, held-out judge (σ)", "toy_jpeg_z": "Δ JPEG compressibility (σ)",
          "toy_align_z": "Δ alignment, training judge (σ)", "toy_truth": "Δ ground truth (fraction right)"}


def rewards_of(runs: dict[str, list[dict]]) -> list[str]:
    """The rewards the curves hold, in the order they first appear in the runs' first points."""
    out: list[str] = []
    for curve in runs.values():
        for name in (curve[0]["heldout"] if curve else {}):
            if name not in out:
                out.append(name)
    return out


def load(path: Path) -> list[dict]:
    f = path / "curve.jsonl"
    if not f.is_file():
        raise FileNotFoundError(f"{f} is missing: run scripts/dpok_toy.py --out {path} first")
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def se(h: dict) -> float:
    """The s.e. clustered by prompt (``se_prompt``; equal to the s.e. of the prompt means for a balanced design)."""
    return h.get("se_prompt", h["se"])


def table(runs: dict[str, list[dict]]) -> str:
    rewards = rewards_of(runs)
    head = ["run", "samples", "train s", "KL", *[f"{LABELS.get(r, 'Δ ' + r)} ± s.e. (t)" for r in rewards],
            "s/iter: rollout / reward / value / policy / total"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, curve in runs.items():
        for p in curve:
            h, sp = p["heldout"], p["seconds_per_iteration"]
            cells = [f"{h[r]['delta']:+.4f} ± {se(h[r]):.4f} ({h[r]['delta'] / se(h[r]):+.1f})" if r in h else "–"
                     for r in rewards]
            split = " / ".join(f"{sp.get(k, 0):.2f}" for k in SPLIT)
            kl = f"{p['kl']:.1e}" if p.get("kl") is not None else "–"
            lines.append("| " + " | ".join([name, str(p["samples"]), f"{p['train_seconds']:.0f}", kl, *cells, split])
                         + " |")
    lines.append("")
    lines.append("Each Δ is the adapter minus the base model on the same held-out (prompt, seed), averaged over the "
                 "images; the s.e. is cluster-robust by prompt (the images share only their prompt), t = Δ / s.e.")
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rewards = rewards_of(runs)
    cols = min(len(rewards), 2)
    rows = -(-len(rewards) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(rewards):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, rewards):
        label = LABELS.get(key, "Δ " + key)
        for name, curve in runs.items():
            if not curve or key not in curve[0]["heldout"]:
                continue
            x = [0] + [p["samples"] for p in curve]
            y = [0.0] + [p["heldout"][key]["delta"] for p in curve]
            e = [0.0] + [se(p["heldout"][key]) for p in curve]
            ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, label=name)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("training samples drawn")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("paired with the base model on the held-out prompts (± 1 s.e., clustered by prompt)", fontsize=10)
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
