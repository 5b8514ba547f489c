"""Score the toy base model and its adapters on fixed held-out prompts × seeds, with paired s.e.

For every configuration (base, one adapter, or a blend) the same (prompt, seed) pairs give the same
initial and per-step noise, so differences from the base are paired image by image. Reported per
configuration: toy_alignment, jpeg_compressibility (−kB), toy_smoothness (−TV), palette colour and
background accuracy (read from pixels, no learned model), and paired Δ vs the base in s.e. units.
Standard errors are cluster-robust by prompt (``blend.stats``): each (prompt, seed) has its own noise, so
the images of one prompt share only the prompt.

    python -m toy.evaluate --adapter alignment=toy/weights/adapters/alignment \
        --adapter compressibility=toy/weights/adapters/compressibility --n_seeds 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from blend.methods.base import Base
from blend.methods.single import Single
from blend.sampler import SamplerConfig, sample
from blend.spec import BlendSpec
from blend.stats import mean_se
from dbcore.prompts import load_prompts
from diffusion.loading import load_bundle
from diffusion.lora import load_adapter
from rewards import get_reward
from toy.data import palette_attributes, parse_caption
from toy.model import SAMPLE_ETA, SAMPLE_GUIDANCE, SAMPLE_STEPS

METRICS = ("toy_alignment", "jpeg_compressibility", "toy_smoothness", "colour_acc", "bg_acc")


def score(images: torch.Tensor, prompts: list[str], rewards: dict) -> dict[str, torch.Tensor]:
    out = {name: fn(images, prompts).detach().float().cpu() for name, fn in rewards.items()}
    labels = torch.tensor([parse_caption(p) for p in prompts])
    pa = palette_attributes(images)
    out["colour_acc"] = (pa[:, 0] == labels[:, 0]).float()
    out["bg_acc"] = (pa[:, 1] == labels[:, 2]).float()
    return out


def evaluate(base: str, adapters: dict[str, str], specs: dict[str, BlendSpec], prompts: list[str], n_seeds: int,
             seed_offset: int = 1000, batch: int = 32, config: SamplerConfig | None = None) -> dict:
    config = config or SamplerConfig(steps=SAMPLE_STEPS, guidance=SAMPLE_GUIDANCE, eta=SAMPLE_ETA)
    bundle = load_bundle(base)
    for name, path in adapters.items():
        load_adapter(bundle.unet, name, path)
    rewards = {n: get_reward(n) for n in ("toy_alignment", "jpeg_compressibility", "toy_smoothness")}
    pairs = [(p, seed_offset + s) for p in prompts for s in range(n_seeds)]
    results = {}
    for label, spec in specs.items():
        t0 = time.perf_counter()
        chunks = []
        for i in range(0, len(pairs), batch):
            ps, ss = zip(*pairs[i : i + batch])
            chunks.append(sample(bundle, spec, list(ps), list(ss), config).images)
        images = torch.cat(chunks)
        results[label] = {"scores": score(images, [p for p, _ in pairs], rewards), "images": images,
                          "seconds": time.perf_counter() - t0, "clusters": [i // n_seeds for i in range(len(pairs))]}
    return results


def report(results: dict, ref: str = Base.name) -> str:
    lines = ["| config | " + " | ".join(METRICS) + " | Δ align (s.e.) | Δ jpeg (s.e.) |",
             "|---" * (len(METRICS) + 3) + "|"]
    for label, r in results.items():
        s = r["scores"]
        cells = []
        for m in METRICS:
            mu, se = mean_se(s[m], r.get("clusters"))
            cells.append(f"{mu:.3f} ± {se:.3f}")
        deltas = []
        for m in ("toy_alignment", "jpeg_compressibility"):
            if ref in results and label != ref:
                d = s[m] - results[ref]["scores"][m]
                mu, se = mean_se(d, r.get("clusters"))
                deltas.append(f"{mu:+.3f} ± {se:.3f} ({mu / se if se else 0:+.1f})")
            else:
                deltas.append("—")
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(deltas) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base_model", default="toy/weights/base")
    ap.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--prompt_file", default="dataset/toy_test_prompts.json")
    ap.add_argument("--n_seeds", type=int, default=8)
    ap.add_argument("--seed_offset", type=int, default=1000)
    ap.add_argument("--json", default=None, help="write the means and paired deltas here")
    ap.add_argument("--grid", default=None, help="write a PNG grid (first 12 images per config) here")
    args = ap.parse_args()
    adapters = dict(a.split("=", 1) for a in args.adapter)
    specs = {Base.name: BlendSpec(Base.name)}
    specs.update({n: BlendSpec(Single.name, (n,)) for n in adapters})
    results = evaluate(args.base_model, adapters, specs, load_prompts(args.prompt_file), args.n_seeds,
                       args.seed_offset)
    print(report(results))
    if args.json:
        out = {}
        for label, r in results.items():
            out[label] = {m: mean_se(r["scores"][m], r["clusters"]) for m in METRICS}
            if label != Base.name:
                out[label]["delta_vs_base"] = {m: mean_se(r["scores"][m] - results[Base.name]["scores"][m], r["clusters"])
                                               for m in METRICS}
            out[label]["se_unit"] = "cluster-robust by prompt"
            out[label]["seconds"] = r["seconds"]
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    if args.grid:
        from toy.grid import save_grid

        save_grid({k: r["images"][:: args.n_seeds][:12] for k, r in results.items()}, args.grid,
                  title=f"seed {args.seed_offset}, one held-out prompt per column",
                  col_labels=[f"prompt {i}" for i in range(12)])


if __name__ == "__main__":
    main()
