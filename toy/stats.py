"""Reward statistics of the toy base model, used to put the two rewards on one scale.

Samples the base model (the toy sampler of toy/model.py: 10 DDIM steps, η 1, guidance 2, that of every toy table) on the training
prompts and writes the mean and std of each reward below to ``toy/weights/reward_stats.json``. These
constants define what a weight w means, so they are fixed on that one sampler; the same statistics at
50 steps are written beside them (``at_steps``) to show how far the scale moves with the sampler (the
JPEG size of base samples shrinks by several σ at 50 steps), never used to re-normalise. The
fine-tuning scripts divide each reward by its base std, so a weight w means the same trade-off for
the single adapters, the MORL oracles and the blends: the MORL oracle for w trains on
``w·r_align/σ_align + (1−w)·r_smooth/σ_smooth``.

    python -m toy.stats --base_model toy/weights/base --out toy/weights/reward_stats.json
    python -m toy.stats --rewards colorfulness,brightness --other_steps "" \
        --out toy/weights/adapters/extra_reward_stats.json      # the m = 3 / 4 sweeps' extra rewards
"""

from __future__ import annotations

import argparse
import json

import torch

from blend.methods.base import Base
from blend.sampler import SamplerConfig, sample
from blend.spec import BlendSpec
from dbcore.io import write_text_atomic
from dbcore.prompts import load_prompts
from diffusion.loading import load_bundle
from rewards import get_reward
from toy.model import SAMPLE_ETA, SAMPLE_GUIDANCE, SAMPLE_STEPS

REWARDS = ("toy_alignment", "toy_smoothness", "jpeg_compressibility", "toy_align", "toy_align_heldout", "toy_truth")
OTHER_STEPS = (50,)


def reward_stats(bundle, prompts: list[str], rewards: tuple[str, ...], steps: int, n: int = 128, seed: int = 0
                 ) -> dict[str, dict[str, float]]:
    """Mean and std (rounded to 6 digits) of each reward over ``n`` base-model samples on the toy sampler with
    ``steps`` DDIM steps; the prompts and seeds are fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    picks = [prompts[i] for i in torch.randint(0, len(prompts), (n,), generator=g).tolist()]
    seeds = [100_000 + seed * n + i for i in range(n)]
    cfg = SamplerConfig(steps=steps, guidance=SAMPLE_GUIDANCE, eta=SAMPLE_ETA)
    images = torch.cat([sample(bundle, BlendSpec(Base.name), picks[i : i + 32], seeds[i : i + 32], cfg).images
                        for i in range(0, n, 32)])
    out = {}
    for name in rewards:
        r = get_reward(name)(images, picks).double()
        out[name] = {"mean": round(float(r.mean()), 6), "std": round(float(r.std()), 6)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base_model", default="toy/weights/base")
    ap.add_argument("--prompt_file", default="dataset/toy_train_prompts.json")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rewards", default=",".join(REWARDS),
                    help="comma-separated reward names (default: the toy's own; the m = 3 / 4 sweeps' extra rewards "
                         "are measured with --rewards colorfulness,brightness --other_steps '')")
    ap.add_argument("--other_steps", default=",".join(map(str, OTHER_STEPS)),
                    help="step counts measured beside the toy sampler's (never used to normalise); '' for none")
    ap.add_argument("--out", default="toy/weights/reward_stats.json")
    args = ap.parse_args()
    rewards = tuple(r.strip() for r in args.rewards.split(",") if r.strip())
    if not rewards:
        raise SystemExit("error: --rewards is empty; name at least one reward (python -m rewards --list)")
    try:
        other = [int(s) for s in args.other_steps.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"error: --other_steps {args.other_steps!r}: give step counts separated by commas (e.g. 50), "
                         "or '' for none") from None
    bundle = load_bundle(args.base_model)
    prompts = load_prompts(args.prompt_file)
    out = {"base_model": args.base_model, "prompt_file": args.prompt_file, "n": args.n, "seed": args.seed,
           "sampler": {"steps": SAMPLE_STEPS, "guidance": SAMPLE_GUIDANCE, "eta": SAMPLE_ETA}}
    out.update(reward_stats(bundle, prompts, rewards, SAMPLE_STEPS, args.n, args.seed))
    if other:
        out["at_steps"] = {str(s): reward_stats(bundle, prompts, rewards, s, args.n, args.seed) for s in other}
    write_text_atomic(args.out, json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
