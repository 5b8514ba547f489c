"""Train the toy base model (``toy.model``) from scratch on the procedural set (``toy.data``).

Joint training of the UNet and the CLIP text encoder with the DDPM ε-loss: AdamW (lr 1e-3, 100-step
warm-up, cosine decay to 1e-4 over ``--steps``), weight decay 0.01, gradient clipping 1.0, batch 32,
captions replaced by "" 10 % of the time (for classifier-free guidance), EMA 0.999 of the weights.
The final EMA weights are saved with ``diffusion.bundle.save_bundle`` (the Stable Diffusion directory
layout; text encoder in float16) plus ``manifest.json``.

Deterministic for a given ``--seed``: the batch, the noise and the timesteps of step k are functions of
(seed, k) only, so a run that resumes from its checkpoint (``--out``/train_state.pt, written
atomically every ``--ckpt_every`` steps) gives the same weights as one that did not stop.

    python -m toy.train_base --out toy/weights/base --steps 3000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from diffusion.bundle import save_bundle
from toy.data import make_batch
from toy.manifest import write_manifest
from toy.model import SCHEDULER_CONFIG, TEXT_CONFIG, UNET_CONFIG, make_toy_model

# what a checkpoint must share with its resumption (--steps may grow: a longer run continues the same one)
RUN_SETTINGS = ("seed", "batch", "lr", "ema", "texture")


def lr_at(step: int, total: int, lr: float, warmup: int = 100, floor: float = 0.1) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * prog)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="toy/weights/base")
    ap.add_argument("--work", default="toy/_work/base", help="checkpoint folder (not committed)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt_every", type=int, default=200)
    ap.add_argument("--log_every", type=int, default=50)
    ap.add_argument("--texture", type=float, default=0.0,
                    help="largest amplitude (0-255) of the background stripes in the training images (toy.data.draw)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out, work = Path(args.out), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    bundle = make_toy_model(args.seed)
    unet, te = bundle.unet, bundle.text_encoder
    for m in (unet, te):
        m.train().requires_grad_(True)
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    tok = bundle.tokenizer
    alphas_cum = bundle.scheduler.alphas_cumprod.float()

    step, elapsed, losses = 0, 0.0, []
    ckpt = work / "train_state.pt"
    settings = {k: vars(args)[k] for k in RUN_SETTINGS}
    if ckpt.is_file():
        st = torch.load(ckpt, weights_only=False)
        old = st.get("settings", settings)  # checkpoints written before settings were recorded: as before
        if old != settings:
            changed = ", ".join(f"--{k} {old[k]} → {settings[k]}" for k in RUN_SETTINGS if old[k] != settings[k])
            raise SystemExit(f"error: {ckpt} holds a run with other settings ({changed}); resuming it would mix two "
                             f"trainings. Use the checkpoint's values to resume, or another --work to start afresh")
        unet.load_state_dict(st["unet"]), te.load_state_dict(st["te"]), opt.load_state_dict(st["opt"])
        for e, v in zip(ema, st["ema"]):
            e.copy_(v)
        step, elapsed, losses = st["step"], st["elapsed"], st["losses"]
        print(f"resumed from {ckpt} at step {step}", flush=True)

    t0 = time.perf_counter() - elapsed
    while step < args.steps:
        x0, caps, _ = make_batch(args.batch, (args.seed, step, 1), texture=args.texture)
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        drop = torch.rand(args.batch, generator=g) < 0.1
        caps = ["" if d else c for c, d in zip(caps, drop.tolist())]
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = alphas_cum[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        ids = tok(caps, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        enc = te(ids)[0]
        loss = F.mse_loss(unet(xt, t, enc).sample, noise)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - args.ema)
        losses.append(loss.item())
        step += 1
        if step % args.log_every == 0:
            print(f"step {step}/{args.steps} loss {sum(losses[-args.log_every:]) / args.log_every:.4f} "
                  f"lr {lr_at(step - 1, args.steps, args.lr):.2e} {time.perf_counter() - t0:.0f}s", flush=True)
        if step % args.ckpt_every == 0 or step == args.steps:
            st = {"unet": unet.state_dict(), "te": te.state_dict(), "opt": opt.state_dict(), "ema": ema,
                  "settings": settings, "step": step, "elapsed": time.perf_counter() - t0, "losses": losses}
            torch.save(st, work / "train_state.pt.tmp")
            os.replace(work / "train_state.pt.tmp", ckpt)

    wall = time.perf_counter() - t0
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    for m in (unet, te):
        m.eval().requires_grad_(False)
    bundle.text_encoder = te.half()
    bundle.source = "toy base"
    save_bundle(bundle, out)
    write_manifest(out, {
        "what": "toy base model (pixel-space 32x32 UNet2DConditionModel + CLIPTextModel, EMA weights)",
        "command": "python -m toy.train_base " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "seed": args.seed, "steps": args.steps, "batch": args.batch, "lr": args.lr, "ema": args.ema,
        "texture": args.texture, "samples_seen": args.steps * args.batch, "wall_seconds": round(wall, 1),
        "threads": args.threads,
        "final_loss_mean_last_100": sum(losses[-100:]) / max(1, len(losses[-100:])),
        "unet_config": UNET_CONFIG, "text_config": TEXT_CONFIG, "scheduler_config": SCHEDULER_CONFIG,
    })
    print(json.dumps({"out": str(out), "steps": step, "wall_s": round(wall, 1)}), flush=True)


if __name__ == "__main__":
    main()
