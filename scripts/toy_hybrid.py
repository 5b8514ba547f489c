#!/usr/bin/env python
"""Hybrid schedules on the toy world: weighted reward against UNet evaluations per image.

Samples the held-out toy prompts with the rewarded soup (ΔW), DB-MPA, DB-MPA-LS and hybrids (DB-MPA
on a range of steps, the soup or DB-MPA-LS elsewhere; ``blend.hybrid``), all from the same noise per
(prompt, seed), and scores them with the standardised toy rewards. For each hybrid it reports the
share of DB-MPA's gain over the soup it keeps,

    kept = (WR_hybrid − WR_soup) / (WR_mpa − WR_soup)      (WR = w·r_align,z + (1−w)·r_jpeg,z)

with paired standard errors, and its cost in UNet evaluations relative to the base model. A hybrid
qualifies as a named method when kept ≥ 0.95 at cost ≤ 1.5 (m = 2).

    python scripts/toy_hybrid.py                       # 12 prompts × 8 seeds, 10 steps
    python scripts/toy_hybrid.py --n_seeds 1 --steps 4  # smoke

The last printed line is a JSON object of the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blend.hybrid import HybridSchedule, sample_hybrid  # noqa: E402
from blend.methods.mpa import Mpa  # noqa: E402
from blend.methods.mpa_ls import MpaLS  # noqa: E402
from blend.methods.soup import Soup  # noqa: E402
from blend.sampler import SamplerConfig, sample  # noqa: E402
from blend.soup import ensure_soup_adapter  # noqa: E402
from blend.spec import BlendSpec  # noqa: E402
from blend.stats import mean_se  # noqa: E402

MPA, LS, SOUP = Mpa.name, MpaLS.name, Soup.name  # blend.methods
from dbcore.prompts import load_prompts  # noqa: E402
from diffusion.loading import load_bundle  # noqa: E402
from diffusion.lora import load_adapter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = ((0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.0, 0.3), (0.2, 0.5), (0.3, 0.6))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--w", type=float, default=0.5, help="weight of the alignment adapter/reward")
    p.add_argument("--n_seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--prompt_file", default=str(ROOT / "dataset" / "toy_test_prompts.json"))
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args()
    torch.set_num_threads(1)

    import rewards

    bundle = load_bundle("builtin:toy")
    loras = {n: load_adapter(bundle.unet, n, ROOT / "toy" / "weights" / "adapters" / d)
             for n, d in (("align", "alignment"), ("jpeg", "compressibility"))}
    fns = {n: rewards.get_reward(n) for n in ("toy_alignment_z", "toy_jpeg_z")}
    names, w = ("align", "jpeg"), (args.w, 1.0 - args.w)
    prompts = load_prompts(args.prompt_file)
    pairs = [(pr, s) for pr in prompts for s in range(args.n_seeds)]
    cfg = SamplerConfig(steps=args.steps, guidance=args.guidance, eta=1.0)

    def wr_of(run) -> list[float]:
        out = []
        for i in range(0, len(pairs), args.batch):
            chunk = pairs[i:i + args.batch]
            res = run([c[0] for c in chunk], [c[1] for c in chunk])
            with torch.no_grad():
                r = {n: fn(res.images, [c[0] for c in chunk]).float() for n, fn in fns.items()}
            out += (w[0] * r["toy_alignment_z"] + w[1] * r["toy_jpeg_z"]).tolist()
        return out

    soup = BlendSpec(SOUP, names, w)
    ensure_soup_adapter(bundle.unet, soup, loras)
    methods = {SOUP: (lambda pr, sd: sample(bundle, soup, pr, sd, cfg), 1.0),
               MPA: (lambda pr, sd: sample(bundle, BlendSpec(MPA, names, w), pr, sd, cfg), 2.0),
               LS: (lambda pr, sd: sample(bundle, BlendSpec(LS, names, w), pr, sd, cfg), 1.0)}
    for other in (SOUP, LS):
        for lo, hi in WINDOWS:
            h = HybridSchedule(names, w, lo, hi, other)
            methods[h.label] = (lambda pr, sd, h=h: sample_hybrid(bundle, h, pr, sd, cfg), h.cost_ratio(args.steps))
    wr = {k: wr_of(run) for k, (run, _) in methods.items()}
    gain = [a - b for a, b in zip(wr[MPA], wr[SOUP])]
    g, g_se = mean_se(gain)
    rows = []
    print(f"\ntoy, w = {args.w:g}, {len(pairs)} images, {args.steps} steps; DB-MPA − soup = {g:.3f} ± {g_se:.3f}\n")
    print("| method | UNet evals / base | WR_z | vs soup | kept share of DB-MPA's gain | qualifies |")
    print("|---|---|---|---|---|---|")
    for k, (_, cost) in methods.items():
        d, d_se = mean_se([a - b for a, b in zip(wr[k], wr[SOUP])])
        kept = d / g if g != 0 else float("nan")
        # paired s.e. of the ratio by the delta method, on per-image differences
        resid = [(a - b) - kept * gg for a, b, gg in zip(wr[k], wr[SOUP], gain)]
        kept_se = mean_se(resid)[1] / abs(g) if g != 0 else float("nan")
        ok = k.startswith("hybrid") and kept >= 0.95 and cost <= 1.5
        rows.append({"method": k, "cost": cost, "wr": mean_se(wr[k])[0], "vs_soup": d, "vs_soup_se": d_se,
                     "kept": kept, "kept_se": kept_se, "qualifies": ok})
        print(f"| {k} | {cost:.2f} | {mean_se(wr[k])[0]:.3f} | {d:+.3f} ± {d_se:.3f} | {kept:.2f} ± {kept_se:.2f} | "
              f"{'yes' if ok else ''} |")
    out = {"w": args.w, "images": len(pairs), "steps": args.steps, "gain": g, "gain_se": g_se, "rows": rows}
    if args.out:
        from dbcore.io import write_json_atomic

        write_json_atomic(args.out, out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
