"""Measure BACKWARD_COST (blend.baselines.costs): a UNet backward pass in UNet forwards, on the toy UNet.

One guided step of RGG / SMC runs the UNet forward with autograd on and takes the gradient w.r.t. its input x_t;
a plain step runs it forward under ``no_grad``. The cost of the backward, in forwards, is
(t(forward with grad) + t(backward) − t(forward, no_grad)) / t(forward, no_grad). Also times the decode and one
reward evaluation (the toy is pixel space: decode is a rescale). Classifier-free guidance as the sampler runs it
(a CFG pair = one forward). Median of ``--repeats`` timings after a warm-up.

    OMP_NUM_THREADS=1 python scripts/bench_backward.py --base_model builtin:toy --batch 16 --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base_model", default="builtin:toy")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--reward", default="toy_smoothness")
    args = p.parse_args(argv)

    from blend.baselines.common import frozen
    from blend.eps import BASE
    from blend.predictor import NoisePredictor
    from diffusion.loading import load_bundle
    from rewards import get_reward

    torch.manual_seed(0)
    bundle = load_bundle(args.base_model)
    bundle.scheduler.set_timesteps(10)
    t = int(bundle.scheduler.timesteps[3])
    prompts = ["a red circle on a blue background"] * args.batch
    cond, uncond = bundle.encode_prompts(prompts), bundle.encode_prompts([""] * args.batch)
    predictor = NoisePredictor(bundle, 5.0)
    x = torch.randn(args.batch, *bundle.sample_shape)
    reward = get_reward(args.reward)

    def forward() -> None:
        with torch.no_grad():
            predictor(x, t, cond, uncond, {BASE: None})

    def forward_backward() -> None:
        with torch.enable_grad(), frozen(bundle.unet, bundle.vae, bundle.text_encoder):
            xg = x.detach().requires_grad_(True)
            eps = predictor(xg, t, cond, uncond, {BASE: None})[BASE]
            torch.autograd.grad(eps.square().sum(), xg)

    images = bundle.decode(x).detach()
    f = _median_seconds(forward, args.repeats)
    fb = _median_seconds(forward_backward, args.repeats)
    with torch.no_grad():
        dec = _median_seconds(lambda: bundle.decode(x), args.repeats)
        rew = _median_seconds(lambda: reward(images, prompts), args.repeats)
    print(f"model {args.base_model}, batch {args.batch}, threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"forward (no_grad)          {f * 1e3:8.2f} ms")
    print(f"forward + backward (to x)  {fb * 1e3:8.2f} ms")
    print(f"backward / forward         {(fb - f) / f:8.2f}")
    print(f"decode / forward           {dec / f:8.3f}")
    print(f"reward {args.reward} / forward {rew / f:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
