#!/usr/bin/env python
"""Side-by-side cost of the sampling methods, measured in one run (ratios, not absolute targets).

For each method, sample the same (prompt, seed) batch; methods are run round-robin ``--repeats``
times and the median wall time is kept, so machine load hits every method alike. Prints seconds
per image and the ratio to a single adapter (the cost of plain SD sampling), plus the parameter
memory of one UNet with m adapters against m separate UNets (the reference code's layout).

    python scripts/bench_blend.py                       # built-in tiny model, 2 random adapters
    python scripts/bench_blend.py --base_model DIR --lora a=PATH --lora b=PATH --device cuda --steps 50

Targets from PEERS.md §3: DB-MPA (m = 2) ≤ 1.9× a single model when batched on a GPU (2.03× in
the paper); DB-MPA-LS ≤ 1.05×.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blend.sampler import SamplerConfig, sample  # noqa: E402
from blend.spec import BlendSpec  # noqa: E402
from diffusion.loading import load_bundle  # noqa: E402
from diffusion.lora import add_lora, load_adapter, random_lora  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base_model", default="builtin:tiny")
    p.add_argument("--lora", action="append", default=[], metavar="NAME=PATH", help="two or more adapters")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    bundle = load_bundle(args.base_model, device=args.device)
    if args.lora:
        names = [item.split("=", 1)[0] for item in args.lora]
        for item in args.lora:
            name, path = item.split("=", 1)
            load_adapter(bundle.unet, name, path)
    else:
        names = ["a", "b"]
        for i, n in enumerate(names):
            add_lora(bundle.unet, n, random_lora(bundle.unet, seed=i + 1))
    m = len(names)
    w = tuple([1.0 / m] * m)
    specs = {
        "single adapter (= plain sampling)": (BlendSpec("single", (names[0],)), False),
        f"DB-MPA m={m}, looped": (BlendSpec("mpa", tuple(names), w), False),
        f"DB-MPA m={m}, batched": (BlendSpec("mpa", tuple(names), w), True),
        f"DB-MPA-LS m={m}": (BlendSpec("mpa_ls", tuple(names), w), False),
        "DB-KLA λ=0.5 (base + 1 adapter)": (BlendSpec("kla", (names[0],), (1.0,), lam=0.5), False),
    }
    prompts, seeds = ["a red circle on a blue background"] * args.batch, list(range(args.batch))
    times = {k: [] for k in specs}
    for spec, batched in specs.values():  # warm-up
        sample(bundle, spec, prompts[:2], seeds[:2], SamplerConfig(steps=2, batched=batched))
    for _ in range(args.repeats):
        for key, (spec, batched) in specs.items():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            sample(bundle, spec, prompts, seeds, SamplerConfig(steps=args.steps, batched=batched))
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[key].append(time.perf_counter() - t0)
    ref = statistics.median(times["single adapter (= plain sampling)"])
    print(f"\nmodel {bundle.source}, device {args.device}, {args.steps} steps, batch {args.batch}, "
          f"median of {args.repeats} round-robin repeats, torch threads {torch.get_num_threads()}\n")
    print("| method | s / image | ratio to single adapter |\n|---|---|---|")
    for key, ts in times.items():
        med = statistics.median(ts)
        print(f"| {key} | {med / args.batch:.4f} | {med / ref:.2f}× |")

    base_params = sum(p.numel() * p.element_size() for n, p in bundle.unet.named_parameters() if "lora_" not in n)
    lora_params = sum(p.numel() * p.element_size() for n, p in bundle.unet.named_parameters() if "lora_" in n)
    one_unet_m = base_params + lora_params
    m_unets = m * base_params + lora_params
    print(f"\nUNet parameter memory with {m} adapters: {one_unet_m / 1e6:.2f} MB in one UNet vs "
          f"{m_unets / 1e6:.2f} MB as {m} separate UNets (ratio {one_unet_m / m_unets:.2f}); "
          f"LoRA share {lora_params / one_unet_m:.1%}")


if __name__ == "__main__":
    main()
