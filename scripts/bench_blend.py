#!/usr/bin/env python
"""Cost of every sampling method as a ratio to the base model, measured in one run, next to its floor.

For each model (``--models``) and each method, the same (prompt, seed) batch is sampled; the methods
run round-robin ``--repeats`` times after a warm-up and the median wall time is kept, so machine load
hits every method alike. The reference is the **base model with no adapters at all** (a separate copy
of the UNet without LoRA layers); ``base_disabled`` is the same model through the adapter-holding
UNet with every adapter disabled (PEFT's wrapper overhead). The floor is the number of UNet
evaluations per step and image the method needs (CFG pair = 1): base, single, DB-MPA-LS, soups 1; DB-KLA 2;
DB-MPA m; ``hybrid_late`` (run_DB.py's method: DB-MPA on the last half of the steps, the ΔW soup on the first)
1 + (m − 1)·(its DB-MPA fraction), 1.5 for m = 2 at an even number of steps (at ``--steps 1`` it has no DB-MPA
step, floor 1). The measured ``evals_per_step`` (counted by the samplers) is printed next to it.

The inference-time baselines run on the base model (``blend.baselines``, run_DB.py's code), with the objective
½ brightness + ½ colorfulness (weight-free, differentiable, negligible next to a UNet call, so the ratio shows
the sampler's cost) at run_DB.py's default sizes, or sized to DB-MPA m = 2's 2·T forward-equivalents per image
with ``--budget auto`` (or any number, as run_DB.py's ``--budget``). Their floors count forward-equivalents per
step and image (``blend.baselines.costs``): UNet forwards plus ``BACKWARD_COST`` = 2 per UNet backward (one
vector-Jacobian product; measured 1.86 forwards on the toy); VAE decodes and reward evaluations are not counted:

* ``bon``  best-of-N: N (default 4);
* ``code`` CoDe: 1 + N·S/T, S = ⌈(T − 1)/B⌉ branch steps (N = 20, B = 5; at T = 1 it never branches);
* ``rgg``  reward-gradient guidance: 1 forward + m backwards (m = 2 rewards) = 1 + 2·2 = 5 on each guided step
  (every step by default; the last G with ``--budget``: 1 + 4·G/T);
* ``smc``  SMC (DAS): K × RGG's (K = 4).

Peak memory is measured, not counted: each configuration runs once more in a fresh subprocess that
builds the model, loads only the adapters the method needs and samples; its peak RSS (``ru_maxrss``)
on CPU, or the CUDA allocator's peak on a GPU, is reported as a ratio to the base model's process.

Models:

* ``toy``  — the committed toy world (``builtin:toy``, pixel space 32², its two trained adapters plus
  random ones for m > 2);
* ``tiny`` — ``builtin:tiny`` (random, latent 16²);
* ``sd15`` — a UNet with Stable Diffusion v1.5's exact configuration (859.5 M parameters, every layer
  shape real) and random weights, at latent ``--latent`` (16 → 128 px instead of SD's 64 → 512 px),
  with a real-width (768) but 1-layer CLIP text encoder and a tiny VAE: the UNet is real-size, the
  text encoder and VAE are not (they run once per batch, identically for every method).

Adapters other than the toy's are random rank-4 LoRAs on every attention projection (DPOK's layout).

    python scripts/bench_blend.py --models tiny --steps 4 --repeats 3 --memory none   # a quick run
    python scripts/bench_blend.py --models toy,tiny,sd15 --repeats 3                  # the docs/performance.md table
    python scripts/bench_blend.py --models tiny --steps 4 --repeats 1 --memory none --budget auto  # sized baselines

**Many users in one batch** (``--users K``, default 8; 0 skips it): K users each with their own weight vector w_k
(DB-MPA, m = 2, w_k spread over [0.1, 0.9], one seed each) are served either in **one** sampling call with
per-image weights (one spec per image: each adapter runs once on all K rows per step), or **one by one** (K calls
of one image, what run_DB.py did before ``--mix_weights``). Both run round-robin ``--repeats`` times after a
warm-up; the throughput ratio (one by one ÷ batched, medians) and the largest difference between the two paths'
images (float rounding only) are printed.

    python scripts/bench_blend.py --models toy --methods base --memory none --users 8 --repeats 5   # the users row

The last printed line is a JSON object: ``{"time": {model: {method: ratio}}, "memory": {...}, "floor": {...},
"evals_per_step": {model: {method: measured}}, "sizes": {method: {option: value}}, "users": {model: {...}}, ...}``.
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
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blend.baselines.costs import forward_equivalents  # noqa: E402
from blend.baselines.options import add_baseline_args, baseline_specs  # noqa: E402
from blend.methods import lam_method, method_names, reference_method  # noqa: E402
from blend.methods.base import Base  # noqa: E402
from blend.methods.mpa_ls import MpaLS  # noqa: E402
from blend.methods.single import Single  # noqa: E402
from blend.sampler import SamplerConfig, sample  # noqa: E402
from blend.soup import ensure_soup_adapter  # noqa: E402
from blend.spec import BlendSpec  # noqa: E402
from diffusion.adapters import FoldedAdapter, activate, lora_layers  # noqa: E402
from diffusion.bundle import ModelBundle  # noqa: E402
from diffusion.loading import load_bundle  # noqa: E402
from diffusion.lora import LoraWeights, adapter_names, add_lora, random_lora, read_lora  # noqa: E402

TOY_ADAPTERS = Path(__file__).resolve().parents[1] / "toy" / "weights" / "adapters"
PROMPT = "a red circle on a blue background"


@dataclass(frozen=True)
class Bench:
    """One benchmarked configuration: a registered method (``blend.methods``) on its first ``m`` adapters with equal
    weights (λ = ``lam``), batched across models or not; ``clean``: the base model without LoRA layers at all."""

    method: str
    m: int = 0
    batched: bool = False
    clean: bool = False
    lam: float = 1.0


def _configs() -> dict[str, Bench]:
    """The benchmarked configurations by name, every name derived from the method registry: the base model (clean
    and through the adapter-holding UNet), one adapter, the reference blend at m = 2, 3, 4 (also batched), the
    per-step draw, the λ blend at λ = 0.5 (also batched), every soup, every hybrid, and the baselines on the base
    model."""
    base, ref, lam = Base.name, reference_method(), lam_method()
    out = {base: Bench(base, clean=True), f"{base}_disabled": Bench(base), Single.name: Bench(Single.name, 1)}
    for batched in (False, True):
        out |= {f"{ref}{m}" + "_batched" * batched: Bench(ref, m, batched) for m in (2, 3, 4)}
    out[MpaLS.name] = Bench(MpaLS.name, 2)
    out |= {lam + "_batched" * batched: Bench(lam, 1, batched, lam=0.5) for batched in (False, True)}
    out |= {n: Bench(n, 2) for n in method_names(lambda m: m.is_soup or m.hybrid_parts is not None)}
    out |= {n: Bench(n) for n in BASELINES}
    return out


BASELINES = method_names(lambda m: m.reward_guided)  # blend.baselines on the base model, objective below
CONFIGS = _configs()
METHODS = tuple(CONFIGS)
OBJECTIVE = (("brightness", "colorfulness"), (0.5, 0.5))  # the baselines' Σ w_i r_i: weight-free, differentiable

# SD v1.5's UNet configuration (runwayml/stable-diffusion-v1-5, unet/config.json), except sample_size
SD15_UNET = dict(in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
                 attention_head_dim=8, norm_num_groups=32)


# ------------------------------------------------------------------------------------------ models
def sd15_sized(latent: int = 16, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float32) -> ModelBundle:
    """SD v1.5's UNet (real configuration, random N(0, 0.02²) weights, norms at identity) + small text encoder/VAE."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from dbcore.clip_tokenizer import clip_tokenizer
    from diffusion.tiny import SD15_SCHEDULER

    with torch.device("meta"):
        unet = UNet2DConditionModel(sample_size=latent, **SD15_UNET)
    unet = unet.to_empty(device="cpu")
    gen = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():  # fast random init (diffusers' own init takes ≈ 20 s on a CPU core)
            if "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=gen)
        buffers = [name for name, _ in unet.named_buffers()]
        if buffers:
            raise RuntimeError(f"unexpected buffers {buffers} in the UNet (left uninitialised by to_empty)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=1, num_attention_heads=12,
            max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
        vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(16, 32), latent_channels=4,
                            layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=16, sample_size=2 * latent)
    bundle = ModelBundle(unet, text_encoder, clip_tokenizer(model_max_length=77), DDIMScheduler(**SD15_SCHEDULER), vae,
                         source=f"sd15-sized UNet (random), latent {latent}")
    for module in (unet, text_encoder, vae):
        module.eval().requires_grad_(False)
    return bundle.to(device, dtype)


def build_model(name: str, latent: int, device: str, dtype: torch.dtype) -> ModelBundle:
    if name == "sd15":
        return sd15_sized(latent, device=device, dtype=dtype)
    if name in ("toy", "tiny"):
        return load_bundle(f"builtin:{name}", device=device, dtype=dtype)
    raise ValueError(f"unknown --models entry {name!r}; choose from toy, tiny, sd15")


def adapter_weights(name: str, bundle: ModelBundle, m: int) -> dict[str, LoraWeights]:
    """m adapters: the toy's trained ones first (toy), then random rank-4 attention LoRAs."""
    out: dict[str, LoraWeights] = {}
    if name == "toy":
        for sub in sorted(p.name for p in TOY_ADAPTERS.iterdir())[:m]:
            out[sub[:5]] = read_lora(TOY_ADAPTERS / sub)
    i = 0
    while len(out) < m:
        out[f"r{i}"] = random_lora(bundle.unet, seed=i + 1)
        i += 1
    return out


# ------------------------------------------------------------------------------------------ methods
def needs(method: str) -> int:
    """Adapters a configuration loads."""
    return CONFIGS[method].m


def baseline_spec(method: str, steps: int, budget: str | None) -> BlendSpec:
    """run_DB.py's spec of a baseline at its default size, or sized to ``budget`` forward-equivalents per image."""
    parser = argparse.ArgumentParser()
    add_baseline_args(parser)
    ns = parser.parse_args(["--budget", budget] if budget else [])
    # 'auto' = DB-MPA's m·T with m = 2 (run_DB.py takes m from its adapters; the baselines here use none)
    return baseline_specs(method, ["a", "b"] if budget == "auto" else [], list(OBJECTIVE[0]), [OBJECTIVE[1]], ns,
                          steps)[0]


def bench_spec(method: str, names: list[str], steps: int, budget: str | None = None) -> BlendSpec:
    """The spec a configuration samples (adapters ``names``): a baseline's is run_DB.py's (``baseline_spec``)."""
    c = CONFIGS[method]
    if c.method in BASELINES:
        return baseline_spec(c.method, steps, budget)
    sub = tuple(names[:c.m])
    return BlendSpec(c.method, sub, tuple([1.0 / len(sub)] * len(sub)) if sub else (), lam=c.lam)


def floor(method: str, steps: int, budget: str | None = None) -> float:
    """UNet evaluations per step and image the method needs (``blend.methods``: its evaluations per step; a
    baseline's cost over the steps in forward-equivalents, ``blend.baselines.costs``)."""
    spec = bench_spec(method, ["a", "b", "c", "d"], steps, budget)
    if spec.info.is_baseline:  # 1 + the extra evaluations per step (rounded as 1 + N·S/T for CoDe)
        return 1 + (spec.info.cost(spec, steps) - steps) / steps
    return float(spec.unet_evals_per_step(steps))


def evals_per_step(result, steps: int) -> float:
    """Measured UNet evaluations per step and image, as the samplers count them (baselines: forward-equivalents)."""
    if result.costs:
        return sum(forward_equivalents(c) for c in result.costs) / len(result.costs) / steps
    return sum(result.unet_evals) / len(result.unet_evals) / steps


def runner(method: str, names: list[str], base_bundle: ModelBundle, bundle: ModelBundle, loras: dict,
           budget: str | None = None, size_steps: int | None = None):
    """A function (prompts, seeds, SamplerConfig) → SampleResult for ``method``; soups are merged here, once.
    A baseline is sized to ``budget`` at ``size_steps`` steps (the timed run's; a 1-step warm-up reuses its sizes,
    since a budget may not fit one step), or at each call's own steps when None."""
    if method not in CONFIGS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    c = CONFIGS[method]
    if c.method in BASELINES:  # the base model steered by the objective
        from blend.baselines.dispatch import reward_fn, sample_any

        fns = {r: reward_fn(r, base_bundle.device) for r in OBJECTIVE[0]}
        def run(prompts, seeds, cfg):
            spec = baseline_spec(c.method, size_steps or cfg.steps, budget)
            return sample_any(base_bundle, spec, prompts, seeds,
                              SamplerConfig(steps=cfg.steps, guidance=cfg.guidance, eta=cfg.eta), fns)

        return run
    spec, b, batched = bench_spec(method, names, 1), base_bundle if c.clean else bundle, c.batched
    if spec.soup_spec is not None:  # a soup, or a hybrid's soup range (run_DB.py's path): merged here, once
        ensure_soup_adapter(bundle.unet, spec.soup_spec, loras)
    return lambda prompts, seeds, cfg: sample(b, spec, prompts, seeds, SamplerConfig(
        steps=cfg.steps, guidance=cfg.guidance, eta=cfg.eta, batched=batched))


def setup(model: str, methods: list[str], latent: int, device: str, dtype: torch.dtype, copy_base: bool = True):
    """(clean base bundle, adapter-holding bundle, adapter names, LoRA weights) for these methods.

    The clean bundle is a copy made before any adapter is added (``copy_base``), else the same object.
    """
    bundle = build_model(model, latent, device, dtype)
    base_bundle = copy.deepcopy(bundle) if copy_base and Base.name in methods and len(methods) > 1 else bundle
    m = max(needs(x) for x in methods)
    loras = adapter_weights(model, bundle, m) if m else {}
    for n, lw in loras.items():
        add_lora(bundle.unet, n, lw)
    return base_bundle, bundle, list(loras), loras


# ------------------------------------------------------------------------------------------ memory
def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child(args: argparse.Namespace) -> None:
    """Run one configuration once in this (fresh) process and print its peak memory as JSON."""
    method, dtype = args.child, getattr(torch, args.dtype)
    cuda = args.device.startswith("cuda")
    base_bundle, bundle, names, loras = setup(args.models, [method], args.latent, args.device, dtype, copy_base=False)
    run = runner(method, names, base_bundle, bundle, loras, args.budget, args.steps)
    setup_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reset = _reset_peak_rss()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    prompts, seeds = [PROMPT] * args.batch, list(range(args.batch))
    run(prompts, seeds, SamplerConfig(steps=args.steps))
    out = {"method": method, "adapters": len(names), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
           / 1024, "setup_rss_mb": setup_mb, "sampling_peak_rss_mb": _vm_hwm_mb() if reset else None}
    if cuda:
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("CHILD " + json.dumps(out), flush=True)


def measure_memory(model: str, methods: list[str], args: argparse.Namespace) -> dict[str, dict]:
    out = {}
    for method in methods:
        cmd = [sys.executable, __file__, "--_child", method, "--models", model, "--latent", str(args.latent),
               "--steps", str(args.steps), "--batch", str(args.batch), "--device", args.device, "--dtype", args.dtype,
               *(["--budget", args.budget] if args.budget else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"memory child for {model}/{method} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        out[method] = json.loads(lines[-1][len("CHILD "):])
    return out


# ------------------------------------------------------------------------------------------ switching
def _legacy_activate(unet: torch.nn.Module, name: str) -> None:
    """The switch as it was before the index (every layer via nn.Module.__setattr__, membership scan)."""
    layers = lora_layers(unet)
    if not any(name in layer.lora_A for layer in layers):
        raise KeyError(name)
    for layer in layers:
        layer._disable_adapters = False
        layer._active_adapter = [name] if name in layer.lora_A else []


def switch_cost_us(unet: torch.nn.Module, names: list[str], n: int = 200) -> dict[str, float]:
    """µs per adapter switch: alternating two adapters (a real switch) and repeating one, old and new code."""
    a, b = names[0], names[1 % len(names)]
    out = {}
    for label, fn in (("legacy", _legacy_activate), ("indexed", activate)):
        t0 = time.perf_counter()
        for i in range(n):
            fn(unet, a if i % 2 else b)
        out[f"{label}_switch_us"] = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for _ in range(n):
            fn(unet, a)
        out[f"{label}_repeat_us"] = (time.perf_counter() - t0) / n * 1e6
    activate(unet, None)
    return out


# ------------------------------------------------------------------------------------------ timing
def time_methods(model: str, methods: list[str], args: argparse.Namespace) -> tuple[dict, dict]:
    dtype, cuda = getattr(torch, args.dtype), args.device.startswith("cuda")
    t0 = time.perf_counter()
    base_bundle, bundle, names, loras = setup(model, methods, args.latent, args.device, dtype)
    info = {"setup_s": time.perf_counter() - t0, "source": bundle.source,
            "unet_params_M": sum(p.numel() for p in (base_bundle or bundle).unet.parameters()) / 1e6}
    t0 = time.perf_counter()
    runs = {x: runner(x, names, base_bundle, bundle, loras, args.budget, args.steps) for x in methods}
    info["soup_merge_s"] = time.perf_counter() - t0
    soups = [a for a in adapter_names(bundle.unet) if a.startswith("soup_")]
    if soups:  # what every sampling call of a soup pays once: its ΔW folded into the base weights, and restored
        folded, t0 = FoldedAdapter(bundle.unet), time.perf_counter()
        folded.fold(soups[0])
        folded.restore()
        info["soup_fold_s"] = time.perf_counter() - t0
    if len(names) >= 2:
        info.update(switch_cost_us(bundle.unet, names))
    prompts, seeds = [PROMPT] * args.batch, list(range(args.batch))
    for x in methods:  # warm-up
        runs[x](prompts, seeds, SamplerConfig(steps=1))
    times: dict[str, list[float]] = {x: [] for x in methods}
    info["evals_per_step"] = {}
    for _ in range(args.repeats):
        for x in methods:
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            result = runs[x](prompts, seeds, SamplerConfig(steps=args.steps))
            if cuda:
                torch.cuda.synchronize()
            times[x].append(time.perf_counter() - t)
            info["evals_per_step"][x] = round(evals_per_step(result, args.steps), 4)
    return times, info


def user_specs(names: list[str], k: int) -> list[BlendSpec]:
    """K users' DB-MPA specs over the first two adapters, w_k spread evenly over [0.1, 0.9]."""
    ws = [0.1 + 0.8 * i / max(k - 1, 1) for i in range(k)]
    return [BlendSpec(reference_method(), tuple(names[:2]), (w, 1.0 - w)) for w in ws]


def time_users(model: str, k: int, args: argparse.Namespace) -> dict:
    """K users with different w: one call with per-image weights against K calls of one image, side by side
    (round-robin ``--repeats`` after a warm-up, medians); returns the times, the throughput ratio and the largest
    difference between the two paths' images."""
    dtype, cuda = getattr(torch, args.dtype), args.device.startswith("cuda")
    _, bundle, names, _ = setup(model, ["mpa2"], args.latent, args.device, dtype, copy_base=False)
    specs, seeds = user_specs(names, k), list(range(k))
    cfg = SamplerConfig(steps=args.steps)

    def batched():
        return sample(bundle, specs, [PROMPT] * k, seeds, cfg).images

    def one_by_one():
        return torch.cat([sample(bundle, spec, [PROMPT], [seed], cfg).images for spec, seed in zip(specs, seeds)])

    runs = {"batched": batched, "one_by_one": one_by_one}
    out = {name: fn() for name, fn in runs.items()}  # warm-up, and the images to compare
    diff = float((out["batched"] - out["one_by_one"]).abs().max())
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {"k": k, "steps": args.steps, "repeats": args.repeats, "median_s": med,
            "images_per_s": {name: k / v for name, v in med.items()},
            "throughput_ratio": med["one_by_one"] / med["batched"], "max_abs_image_diff": diff,
            "times_s": times}


def print_users(model: str, u: dict) -> None:
    print(f"\n#### {model}: {u['k']} users with different w (DB-MPA m = 2, {u['steps']} steps, median of "
          f"{u['repeats']} round-robin repeats)\n")
    print("| path | calls | s per K images | images / s |")
    print("|---|---|---|---|")
    for name, calls in (("batched (per-image weights, one call)", 1), ("one by one", u["k"])):
        key = "batched" if calls == 1 else "one_by_one"
        print(f"| {name} | {calls} | {u['median_s'][key]:.4f} | {u['images_per_s'][key]:.2f} |")
    print(f"\nthroughput ratio batched / one by one: {u['throughput_ratio']:.2f}×; largest image difference "
          f"between the paths {u['max_abs_image_diff']:.1e} (float rounding of the batch size)")


def print_table(model: str, methods: list[str], times: dict, mem: dict, result: dict, info: dict,
                args: argparse.Namespace, load: float) -> None:
    """One markdown table per model: time ratios next to the floor and the counted evaluations, and memory."""
    timed = not args.memory_only
    what = (f"{args.steps} steps, batch {args.batch}, median of {args.repeats} round-robin repeats" if timed
            else f"memory only: {args.steps} steps, batch {args.batch}, one fresh process per method")
    print(f"\n### {model}: {info['source']}" + (f", {info['unet_params_M']:.1f} M UNet parameters" if timed else "")
          + f"; device {args.device} {args.dtype}, {what}, {torch.get_num_threads()} thread(s), load average {load:.1f}\n")
    head = ["method", "floor (UNet evals / step)"]
    if timed:
        head += ["counted evals / step", "s / image", "ratio to base (median)", "ratio (min)"]
    if mem:
        head += ["peak memory (process / sampling)", "memory ratio"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    counted = result["evals_per_step"].get(model, {})
    for m in methods + [m for m in mem if m not in methods]:  # --memory may name methods that were not timed
        if not timed and m not in mem:
            continue
        size = ", ".join(f"{k}={v}" for k, v in result["sizes"].get(m, {}).items() if k in ("N", "B", "K"))
        name = f"{m} ({size})" if size else m
        cells = [name, f"{floor(m, args.steps, args.budget):g}"]
        if timed and m in times:
            cells += [f"{counted.get(m, float('nan')):g}", f"{statistics.median(times[m]) / args.batch:.4f}",
                      f"{result['time'][model][m]:.3f}", f"{result['time_min'][model][m]:.3f}"]
        elif timed:
            cells += ["–"] * 4
        if mem:
            mm = mem.get(m)
            cells += [(f"{mm['cuda_peak_mb']:.0f} MB (CUDA)" if "cuda_peak_mb" in mm else
                       f"{mm['peak_rss_mb']:.0f} / {mm.get('sampling_peak_rss_mb') or float('nan'):.0f} MB") if mm
                      else "–", f"{result['memory'][model][m]:.3f}" if mm else "–"]
        print("| " + " | ".join(cells) + " |")
    sw = {k: round(v, 1) for k, v in info.items() if k.endswith("_us")}
    if sw and timed:
        print(f"\nadapter switch (µs): {sw}; one-off soup merges {info['soup_merge_s']:.2f} s")
    if "soup_fold_s" in info and timed:
        print(f"a soup's fold into the base weights and its restore, paid once per sampling call (in its time): "
              f"{info['soup_fold_s']:.3f} s")
    if any(m in BASELINES for m in methods):
        print(f"\nbaselines: objective {OBJECTIVE[1][0]:g}·{OBJECTIVE[0][0]} + {OBJECTIVE[1][1]:g}·{OBJECTIVE[0][1]} on "
              f"the base model; sizes {'for --budget ' + args.budget if args.budget else 'run_DB.py defaults'}; their "
              "floor counts forward-equivalents (a UNet backward = 2 forwards)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="toy,tiny,sd15", help="comma-separated: toy, tiny, sd15")
    p.add_argument("--methods", default=",".join(m for m in METHODS if not m.endswith("_batched")),
                   help=f"comma-separated, from {', '.join(METHODS)} (base is always run: it is the reference)")
    p.add_argument("--latent", type=int, default=16, help="latent size of the sd15-sized model (64 = SD's 512 px)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=2, help="images per sampling call")
    p.add_argument("--repeats", type=int, default=3, help="round-robin repeats; the median is kept")
    p.add_argument("--memory", default="all", help="'all', 'none' or comma-separated methods to measure memory of")
    p.add_argument("--memory_only", action="store_true", help="skip the timing; measure memory only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    p.add_argument("--budget", default=None, metavar="auto|N",
                   help="size the baselines bon, code, rgg, smc to N forward-equivalents per image ('auto' = DB-MPA "
                        "m = 2's 2·T), as run_DB.py's --budget [default: run_DB.py's default sizes]")
    p.add_argument("--users", type=int, default=8,
                   help="K users with different w: one call with per-image weights vs K calls (0: skip)")
    p.add_argument("--_child", dest="child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        p.error(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    base = Base.name  # the reference of every ratio
    methods = [base] + [m for m in methods if m != base]
    mem_methods = [] if args.memory == "none" else methods if args.memory == "all" else \
        [base] + [m.strip() for m in args.memory.split(",") if m.strip() and m.strip() != base]
    result = {"time": {}, "time_min": {}, "memory": {}, "floor": {m: floor(m, args.steps, args.budget) for m in methods},
              "evals_per_step": {}, "info": {},
              "sizes": {m: dict(baseline_spec(m, args.steps, args.budget).options) for m in methods if m in BASELINES}}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        if args.memory_only:
            times, info = {m: [1.0] for m in methods}, {"source": model, "unet_params_M": 0.0}
        else:
            times, info = time_methods(model, methods, args)
        mem = measure_memory(model, mem_methods, args) if mem_methods else {}
        ref, ref_min = statistics.median(times[base]), min(times[base])
        if not args.memory_only:
            result["time"][model] = {m: round(statistics.median(ts) / ref, 4) for m, ts in times.items()}
            result["time_min"][model] = {m: round(min(ts) / ref_min, 4) for m, ts in times.items()}
        if mem:
            # GPU: the allocator's peak; CPU: the peak RSS while sampling (model, adapters and activations resident;
            # the one-off peak of building the model is excluded: it is the same for every method)
            key = "cuda_peak_mb" if "cuda_peak_mb" in mem[base] else \
                "sampling_peak_rss_mb" if mem[base].get("sampling_peak_rss_mb") else "peak_rss_mb"
            result["memory"][model] = {m: round(v[key] / mem[base][key], 4) for m, v in mem.items()}
            result["memory_mb"] = {**result.get("memory_mb", {}), model: {m: {k: v[k] for k in v if k.endswith("_mb")}
                                                                          for m, v in mem.items()}}
            info["memory_measure"] = key
        info.update(load_1min=load, threads=torch.get_num_threads())
        if "evals_per_step" in info:
            result["evals_per_step"][model] = info.pop("evals_per_step")
        result["info"][model] = info
        print_table(model, methods, times, mem, result, info, args, load)
        if args.users > 0 and not args.memory_only:
            u = time_users(model, args.users, args)
            result.setdefault("users", {})[model] = {k: v for k, v in u.items() if k != "times_s"}
            print_users(model, u)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
