#!/usr/bin/env python
"""Do the generic speed levers pay here? One UNet call (a CFG batch) of the SD-1.5-sized UNet, per variant.

Variants, run round-robin ``--repeats`` times (median kept), each as a ratio to the default:

* ``default``       — diffusers' default attention (``AttnProcessor2_0``: PyTorch SDPA), contiguous tensors;
* ``classic_attn``  — diffusers' ``AttnProcessor`` (explicit softmax(QKᵀ)V): what SDPA buys;
* ``channels_last`` — UNet weights and input in channels-last memory format;
* ``compile``       — ``torch.compile(unet)`` (only with ``--compile``; its one-off compile time is printed);

(The LoRA layers' own cost is ``base_disabled`` and ``single`` in ``scripts/bench_blend.py``.) One UNet is kept
in memory and put into each variant's state outside the timed call.

Also the cost of encoding the prompts of one sampling call with a CLIP-ViT-L-sized text encoder (12
layers, width 768, 77 tokens; random weights) against one UNet call: the most that computing
prompt embeddings once and reusing them across methods, weights and seeds could save per call.

    python scripts/bench_levers.py --latent 16 --repeats 3        # SD-1.5-sized, CPU (minutes)
    python scripts/bench_levers.py --tiny --repeats 2             # builtin:tiny (seconds)

The last printed line is a JSON object of the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_blend import build_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="builtin:tiny instead of the SD-1.5-sized UNet")
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--batch", type=int, default=1, help="images; the UNet sees 2× (CFG)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers.models.attention_processor import AttnProcessor

    bundle = build_model("tiny" if args.tiny else "sd15", args.latent, "cpu", torch.float32)
    unet = bundle.unet
    shape = bundle.sample_shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * args.batch, *shape, generator=g)
    emb = bundle.encode_prompts(["a red circle on a blue background"] * args.batch + [""] * args.batch)
    xcl = x.contiguous(memory_format=torch.channels_last)
    sdpa = {k: v for k, v in unet.attn_processors.items()}

    def state(attn: str, fmt: torch.memory_format) -> None:
        """Put the one UNet in a variant's state (not timed): attention processor and memory format."""
        unet.set_attn_processor(AttnProcessor() if attn == "classic" else dict(sdpa))
        unet.to(memory_format=fmt)

    variants = {  # (state, call): one UNet in memory, switched between variants outside the timed call
        "default": (lambda: state("sdpa", torch.contiguous_format), lambda: unet(x, 500, encoder_hidden_states=emb)),
        "classic_attn": (lambda: state("classic", torch.contiguous_format),
                         lambda: unet(x, 500, encoder_hidden_states=emb)),
        "channels_last": (lambda: state("sdpa", torch.channels_last), lambda: unet(xcl, 500, encoder_hidden_states=emb)),
    }
    info = {}
    if args.compile:
        state("sdpa", torch.contiguous_format)
        compiled = torch.compile(unet)
        t0 = time.perf_counter()
        with torch.no_grad():
            compiled(x, 500, encoder_hidden_states=emb)
        info["compile_s"] = time.perf_counter() - t0
        variants["compile"] = (lambda: state("sdpa", torch.contiguous_format),
                               lambda: compiled(x, 500, encoder_hidden_states=emb))
    with torch.no_grad():
        state("sdpa", torch.contiguous_format)
        ref = unet(x, 500, encoder_hidden_states=emb).sample
        for k in ("classic_attn", "channels_last"):
            variants[k][0]()
            info[f"{k}_max_abs_diff"] = float((variants[k][1]().sample - ref).abs().max())
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):
            for k, (prep, f) in variants.items():
                prep()
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        # prompt encoding with a CLIP-ViT-L-sized text encoder (SD 1.5's: 12 layers, width 768, 77 tokens)
        from transformers import CLIPTextConfig, CLIPTextModel

        te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                          num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77)).eval()
        ids = torch.randint(0, 49407, (2 * args.batch, 77), generator=g)
        te(ids)
        t_te = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            te(ids)
            t_te.append(time.perf_counter() - t0)
    base = statistics.median(times["default"])
    ratios = {k: round(statistics.median(v) / base, 4) for k, v in times.items()}
    ratios["clip_l_encode_per_unet_call"] = round(statistics.median(t_te) / base, 4)
    print(f"\n### one UNet call, CFG batch {2 * args.batch}, {'builtin:tiny' if args.tiny else f'SD-1.5-sized UNet, latent {args.latent}'}; "
          f"median of {args.repeats}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}\n")
    print("| variant | s / call | ratio to default |\n|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {statistics.median(v):.4f} | {ratios[k]:.3f} |")
    print(f"| CLIP-L-sized prompt encoding ({2 * args.batch} prompts) | {statistics.median(t_te):.4f} | "
          f"{ratios['clip_l_encode_per_unet_call']:.3f} |")
    print(f"\n{info}")
    print(json.dumps({"ratios": ratios, "info": info}))


if __name__ == "__main__":
    main()
