#!/usr/bin/env python
"""One DPOK iteration split into its phases, each against the pure UNet compute it needs; training memory.

Phases of one iteration of ``dpok.trainer.Trainer`` (built with its public classes, nothing patched):

* rollout — DDIM sampling with the LoRA, every transition and log-probability recorded, and decoding;
  floor: the same number of UNet forwards (CFG batch, no grad) alone;
* reward — the reward of the decoded images (``brightness`` here: no weights needed);
* value update — one value-function step (``--v_flag``); no UNet;
* policy update — ``p_step`` optimizer steps of ``gradient_accumulation_steps`` micro-batches, each one
  forward of the pretrained model (adapter disabled, no grad; DPOK's KL anchor) and one forward and
  backward of the LoRA model; floor: exactly those UNet calls on the same shapes, alone.

Memory: one iteration runs once more in a fresh subprocess per variant, and the peak RSS (``ru_maxrss``;
the CUDA allocator's peak on a GPU) is compared: ``one_unet`` is this project's trainer (the KL anchor is
the same UNet with its adapter disabled); ``two_unet`` keeps a second, LoRA-free copy of the UNet for
the KL term, as DPOK's ``train_online_pg.py`` does (``unet_copy``).

    python scripts/bench_train.py --model tiny --memory none        # a quick run (seconds)
    python scripts/bench_train.py --model sd15 --repeats 1          # SD-1.5-sized UNet, latent 16 (minutes)

Targets (issue 14): policy update ≤ 1.15 × its pure UNet compute; training memory ≤ 0.6 × the two-UNet
variant. The last printed line is a JSON object of the ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_blend import _reset_peak_rss, _vm_hwm_mb, build_model  # noqa: E402

from diffusion.adapters import activate, clear_cache  # noqa: E402
from dpok.config import TrainConfig  # noqa: E402
from dpok.rollout import draw_noise, guided_eps, sample_trajectories  # noqa: E402
from dpok.trainer import ADAPTER, Trainer  # noqa: E402

PROMPT = "a red circle on a blue background"


class TwoUNetTrainer(Trainer):
    """DPOK's layout: the KL anchor ε_pre comes from a second, LoRA-free copy of the UNet kept in memory."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from peft.tuners.lora import LoraLayer

        ref = copy.deepcopy(self.unet)
        for name, mod in list(ref.named_modules()):
            if isinstance(mod, LoraLayer):
                parent, _, child = name.rpartition(".")
                setattr(ref.get_submodule(parent) if parent else ref, child, mod.base_layer)
        clear_cache(ref)
        self.ref_unet = ref.requires_grad_(False)

    def reference_eps(self, x, t, cond, uncond) -> torch.Tensor:
        with self.autocast():
            return guided_eps(self.ref_unet, x, t, cond, uncond, self.cfg.guidance_scale)


def make_trainer(args: argparse.Namespace, out_dir: str, two_unets: bool = False) -> Trainer:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bundle = build_model(args.model, args.latent, device, torch.float32)
    cfg = TrainConfig(base_model=f"<{args.model}>", output_dir=out_dir, reward="brightness", single_flag=1,
                      single_prompt=PROMPT, num_inference_steps=args.steps, g_batch_size=args.g_batch, g_step=1,
                      p_step=args.p_step, p_batch_size=args.p_batch, gradient_accumulation_steps=args.grad_acc,
                      v_flag=1, v_step=1, v_batch_size=8, iterations=1000, seed=0, report_to="none", progress=False,
                      save_interval=10**6, gradient_checkpointing=args.checkpointing,
                      mixed_precision=args.mixed_precision)
    return (TwoUNetTrainer if two_unets else Trainer)(cfg, bundle=bundle)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> tuple[float, object]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def one_iteration(tr: Trainer, it: int) -> dict[str, float]:
    """Seconds of each phase of iteration ``it`` (the trainer's own methods, rollout and reward timed apart)."""
    cfg, dev = tr.cfg, tr.acc.device
    prompts = tr.prompts_for(it, 0)
    x_t, z = draw_noise(tr.generator(it, 0x5A, 0), len(prompts), tr.bundle.sample_shape, cfg.num_inference_steps)
    activate(tr.unet, ADAPTER)

    def roll():
        traj = sample_trajectories(tr.bundle, tr.unet, prompts, tr.cache, x_t, z, cfg.guidance_scale, cfg.eta)
        with torch.no_grad():
            return traj, tr.bundle.decode(traj.final)

    t_roll, (traj, images) = timed(roll, dev)
    t_rew, (total, parts) = timed(lambda: tr.reward(images, prompts), dev)
    ro = {"prompts": prompts, "latents": traj.latents, "log_probs": traj.log_probs, "reward": total.cpu(),
          "parts": {k: v.cpu() for k, v in parts.items()}}
    t_buf, _ = timed(lambda: tr.add_to_buffer(ro, it, 0), dev)
    t_val, _ = timed(lambda: tr.value_step(it), dev) if tr.value is not None else (0.0, None)
    t_pol, _ = timed(lambda: tr.policy_steps(it), dev)
    return {"rollout": t_roll, "reward": t_rew, "buffer": t_buf, "value_update": t_val, "policy_update": t_pol}


def floors(tr: Trainer) -> dict[str, float]:
    """Pure UNet compute of the rollout and of the policy update, on the shapes one iteration uses."""
    cfg, dev, dtype = tr.cfg, tr.acc.device, tr.bundle.dtype
    n = cfg.g_batch_size * cfg.num_samples
    shape = tr.bundle.sample_shape
    emb = tr.cache.hidden([PROMPT] * n + [""] * n)
    x = torch.randn(2 * n, *shape, device=dev, dtype=dtype)
    activate(tr.unet, ADAPTER)

    def roll():
        with torch.no_grad():
            for t in tr.timesteps.tolist():
                tr.unet(x, t, encoder_hidden_states=emb)

    t_roll, _ = timed(roll, dev)
    b = cfg.p_batch_size
    xp = torch.randn(2 * b, *shape, device=dev, dtype=dtype)
    tp = tr.timesteps[torch.arange(2 * b) % len(tr.timesteps)].to(dev)
    embp = tr.cache.hidden([PROMPT] * b + [""] * b)

    def pol():
        for _ in range(cfg.p_step * cfg.gradient_accumulation_steps):
            with torch.no_grad():
                activate(tr.unet, None)
                tr.unet(xp, tp, encoder_hidden_states=embp)
                activate(tr.unet, ADAPTER)
            out = tr.train_unet(xp, tp, encoder_hidden_states=embp).sample
            out.float().square().mean().backward()
        for p in tr.lora_params:
            p.grad = None

    t_pol, _ = timed(pol, dev)
    return {"rollout": t_roll, "policy_update": t_pol}


def child(args: argparse.Namespace) -> None:
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        tr = make_trainer(args, tmp, two_unets=args.child == "two_unet")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        reset = _reset_peak_rss()  # the one-off peak of building the model is left out (the same for both variants)
        one_iteration(tr, 0)
        out = {"variant": args.child, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "training_peak_rss_mb": _vm_hwm_mb() if reset else None}
        if cuda:
            out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("CHILD " + json.dumps(out), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", choices=["tiny", "sd15"],
                   help="the toy is not offered: its scheduler (set_alpha_to_one) makes the last DDIM step deterministic, "
                        "whose DPOK log-probability is undefined")
    p.add_argument("--latent", type=int, default=16, help="latent size of the sd15-sized model")
    p.add_argument("--steps", type=int, default=4, help="DDIM steps per rollout")
    p.add_argument("--g_batch", type=int, default=2, help="images per rollout")
    p.add_argument("--p_step", type=int, default=2)
    p.add_argument("--p_batch", type=int, default=2)
    p.add_argument("--grad_acc", type=int, default=1)
    p.add_argument("--checkpointing", type=int, default=1, choices=[0, 1], help="gradient checkpointing (DPOK: on)")
    p.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"], help="fp16/bf16 need a GPU")
    p.add_argument("--repeats", type=int, default=2, help="iterations timed (after one warm-up); median kept")
    p.add_argument("--memory", default="all", choices=["all", "none"])
    p.add_argument("--memory_only", action="store_true", help="skip the timing; measure memory only")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--_child", dest="child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return
    result = {"phase_seconds": {}, "floor_seconds": {}, "ratio_to_floor": {}, "memory": {}}
    load = os.getloadavg()[0]
    if not args.memory_only:
        result.update(time_phases(args))
    if args.memory != "none":
        result["memory"] = measure_memory(args)
    result["info"] = {"load_1min": load, "threads": torch.get_num_threads(), "model": args.model}
    print(json.dumps(result))


def time_phases(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tr = make_trainer(args, tmp)
        one_iteration(tr, 0)  # warm-up (also fills the buffer)
        floors(tr)
        phases: dict[str, list[float]] = {}
        fl: dict[str, list[float]] = {}
        for r in range(args.repeats):  # alternate the iteration and its floors so that load hits both alike
            for k, v in one_iteration(tr, r + 1).items():
                phases.setdefault(k, []).append(v)
            for k, v in floors(tr).items():
                fl.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in phases.items()}
    fmed = {k: statistics.median(v) for k, v in fl.items()}
    result = {"phase_seconds": med, "floor_seconds": fmed, "ratio_to_floor": {k: med[k] / fmed[k] for k in fmed}}
    load = os.getloadavg()[0]
    print(f"\n### DPOK iteration on {args.model}: {args.steps} DDIM steps, {args.g_batch} images per rollout, "
          f"p_step {args.p_step} × accumulation {args.grad_acc} × batch {args.p_batch}, gradient checkpointing "
          f"{'on' if args.checkpointing else 'off'}; median of {args.repeats}, {torch.get_num_threads()} thread(s), "
          f"load average {load:.1f}\n")
    print("| phase | seconds | pure UNet compute | ratio |\n|---|---|---|---|")
    for k, v in med.items():
        f = fmed.get(k)
        print(f"| {k} | {v:.3f} | {f'{f:.3f}' if f else '–'} | {f'{v / f:.3f}' if f else '–'} |")
    return result


def measure_memory(args: argparse.Namespace) -> dict:
    mem = {}
    for variant in ("one_unet", "two_unet"):
        cmd = [sys.executable, __file__, "--_child", variant] + [a for a in sys.argv[1:] if a != "--_child"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD ")]
        if proc.returncode or not lines:
            raise RuntimeError(f"memory child {variant} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        mem[variant] = json.loads(lines[-1][6:])
    key = "cuda_peak_mb" if "cuda_peak_mb" in mem["one_unet"] else \
        "training_peak_rss_mb" if mem["one_unet"].get("training_peak_rss_mb") else "peak_rss_mb"
    out = {"one_unet_mb": mem["one_unet"][key], "two_unet_mb": mem["two_unet"][key],
           "ratio": mem["one_unet"][key] / mem["two_unet"][key], "measure": key}
    print(f"\npeak training memory ({key}): {out['one_unet_mb']:.0f} MB (one UNet, adapter disabled for the KL "
          f"anchor) vs {out['two_unet_mb']:.0f} MB (a second UNet copy, DPOK's layout): ratio {out['ratio']:.3f}")
    return out


if __name__ == "__main__":
    main()
