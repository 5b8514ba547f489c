#!/usr/bin/env python
"""The rewarded soup three ways on one model, side by side: equal ε, and the time of a sampling call.

* ``folded`` — the project's path (``blend.soup.merge_delta`` + ``diffusion.adapters.FoldedAdapter``): the exact
  ΔW = Σ_i w_i s_i B_i A_i folded into the base weights once per call, the original tensors put back after;
* ``diffusers_set_adapters`` — diffusers' weighted ``set_adapters`` (``set_weights_and_activate_adapters``): every
  member active with scale w_i, so each LoRA layer computes Σ_i w_i s_i B_i A_i x in every forward;
* ``diffusers_fuse`` — the same weights fused into the base weights by diffusers' ``fuse_lora`` and taken out by
  ``unfuse_lora`` after the call (which subtracts ΔW again: the restore error is printed);
* ``lora_rank_sum`` — the merged soup run as one LoRA of rank Σ r_i (what PEFT's ``add_weighted_adapter`` with
  ``combination_type="cat"`` builds; the project's path before folding).

Each call is a deterministic DDIM loop (η = 0, classifier-free guidance as one batch of 2B) from the same x_T; the
paths run round-robin ``--repeats`` times after a warm-up, the median is kept.

    python scripts/bench_soup_peft.py --model tiny --steps 10 --batch 2 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blend.soup import ensure_soup_adapter  # noqa: E402
from blend.spec import BlendSpec  # noqa: E402
from diffusion.adapters import BASE, FoldedAdapter, activate  # noqa: E402
from diffusion.loading import load_bundle  # noqa: E402
from diffusion.lora import add_lora, random_lora  # noqa: E402

PROMPT = "a red circle on a blue background"


def set_weighted(unet: torch.nn.Module, names: list[str], weights: list[float]) -> None:
    """diffusers' weighted multi-adapter activation (what ``set_adapters(names, weights)`` does per layer)."""
    from diffusers.utils.peft_utils import set_weights_and_activate_adapters
    from peft.tuners.tuners_utils import BaseTunerLayer

    set_weights_and_activate_adapters(unet, names, weights)
    for module in unet.modules():  # the project disables adapters by PEFT's per-layer flag; diffusers' enable_lora
        if isinstance(module, BaseTunerLayer):
            module._disable_adapters = False


def reset_scales(unet: torch.nn.Module, names: list[str]) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in unet.modules():
        if isinstance(module, BaseTunerLayer):
            for name in names:
                module.set_scale(name, 1.0)
    activate(unet, BASE)


@torch.no_grad()
def ddim_loop(bundle, x_t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, steps: int,
              guidance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_0, the ε of the first step) of a deterministic DDIM loop with the UNet as it is set up."""
    sched = bundle.scheduler
    sched.set_timesteps(steps)
    x, first = x_t.clone(), None
    for t in sched.timesteps:
        out = bundle.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
        u, c = out.chunk(2)
        eps = u + guidance * (c - u)
        first = eps if first is None else first
        x = sched.step(eps, t, x, eta=0.0, return_dict=False)[0]
    return x, first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="builtin model: tiny or toy")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--w", type=float, default=0.3, help="weight of the first member (the second gets 1 − w)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(f"builtin:{args.model}", device="cpu", dtype=torch.float32)
    unet = bundle.unet
    names, weights = ["a", "b"], [args.w, 1.0 - args.w]
    loras = {n: random_lora(unet, seed=i + 1, std_b=0.3) for i, n in enumerate(names)}
    for n, lw in loras.items():
        add_lora(unet, n, lw)
    soup = ensure_soup_adapter(unet, BlendSpec("soup", tuple(names), tuple(weights)), loras)
    unet._hf_peft_config_loaded = True  # the adapters were injected with PEFT directly; diffusers' mixin checks this
    with torch.no_grad():
        cond = bundle.encode_prompts([PROMPT] * args.batch)
        uncond = bundle.encode_prompts([""] * args.batch)
    x_t = torch.randn((args.batch, *bundle.sample_shape), generator=torch.Generator().manual_seed(0))
    base_w = {k: v.detach().clone() for k, v in unet.state_dict().items() if "lora_" not in k}
    restore_err = {"diffusers_fuse": 0.0, "folded": 0.0}

    def folded():
        fa = FoldedAdapter(unet)
        fa.fold(soup)
        try:
            return ddim_loop(bundle, x_t, cond, uncond, args.steps, 7.5)
        finally:
            fa.restore()

    def diffusers_set_adapters():
        set_weighted(unet, names, weights)
        try:
            return ddim_loop(bundle, x_t, cond, uncond, args.steps, 7.5)
        finally:
            reset_scales(unet, names)

    def diffusers_fuse():
        set_weighted(unet, names, weights)
        unet.fuse_lora(adapter_names=names)
        try:
            return ddim_loop(bundle, x_t, cond, uncond, args.steps, 7.5)
        finally:
            unet.unfuse_lora()
            reset_scales(unet, names)

    def lora_rank_sum():
        activate(unet, soup)
        try:
            return ddim_loop(bundle, x_t, cond, uncond, args.steps, 7.5)
        finally:
            activate(unet, BASE)

    paths = {"folded": folded, "diffusers_set_adapters": diffusers_set_adapters, "diffusers_fuse": diffusers_fuse,
             "lora_rank_sum": lora_rank_sum}
    out = {}
    for name, fn in paths.items():  # warm-up, and the outputs to compare
        out[name] = fn()
        if name in restore_err:
            now = {k: v for k, v in unet.state_dict().items() if "lora_" not in k}
            restore_err[name] = max(float((now[k] - base_w[k]).abs().max()) for k in base_w)
    ref_x, ref_eps = out["folded"]
    times: dict[str, list[float]] = {n: [] for n in paths}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {n: statistics.median(ts) for n, ts in times.items()}
    print(f"### soup paths: builtin:{args.model}, {args.steps} DDIM steps (η = 0), batch {args.batch}, CFG, "
          f"w = ({weights[0]:g}, {weights[1]:g}), median of {args.repeats} round-robin repeats, {args.threads} thread(s)\n")
    print("| path | s / call | ratio to folded | max |Δε| first step vs folded | max |Δx_0| vs folded | "
          "base weights after (max |Δ|) |")
    print("|---|---|---|---|---|---|---|")
    result = {}
    for name in paths:
        x, eps = out[name]
        d_eps, d_x = float((eps - ref_eps).abs().max()), float((x - ref_x).abs().max())
        rest = f"{restore_err[name]:.1e}" if name in restore_err else "–"
        print(f"| {name} | {med[name]:.4f} | {med[name] / med['folded']:.3f} | {d_eps:.1e} | {d_x:.1e} | {rest} |")
        result[name] = {"s_per_call": med[name], "ratio": med[name] / med["folded"], "max_eps_diff": d_eps,
                        "max_x0_diff": d_x, "restore_err": restore_err.get(name)}
    print("\n" + json.dumps(result))


if __name__ == "__main__":
    main()
