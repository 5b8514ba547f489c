"""Train one toy-world adapter with train_online_pg.py's trainer and record its learning curve.

The curve is the reward on the held-out prompts (dataset/toy_test_prompts.json × fixed seeds, the
same noise at every evaluation) against the samples drawn in training, paired with the base model
image by image; every line also has the wall time of the iteration split into rollout, reward,
value and policy update. Evaluation time is not counted as training time.

    OMP_NUM_THREADS=1 python scripts/dpok_toy.py --out runs/toy_dpok/jpeg --minutes 15 --eval_every 5 -- \\
        --reward jpeg_compressibility --advantage_norm prompt_running --policy_epochs 1 --ratio_clip 0.2

Everything after ``--`` is passed to the trainer (train_online_pg.py's flags) on top of the toy
preset below (``TOY_PRESET``; printed with ``--print_preset``). Writes ``<out>/curve.jsonl`` (one
line per evaluation), ``<out>/summary.json`` (the run's config, the final paired gains with their
standard errors) and the trainer's checkpoints under ``<out>/train/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from toy.model import SAMPLE_ETA, SAMPLE_GUIDANCE, SAMPLE_STEPS  # noqa: E402

# The toy world's sampler (toy/model.py: 10 DDIM steps, eta 1, guidance 2) and sizes that fit one CPU
# thread; the rest are the trainer's (DPOK's) defaults unless overridden after "--".
TOY_PRESET = [
    "--base_model", "toy/weights/base", "--single_flag", "0", "--prompt_path", "dataset/toy_train_prompts.json",
    "--num_inference_steps", str(SAMPLE_STEPS), "--guidance_scale", f"{SAMPLE_GUIDANCE:g}", "--eta", f"{SAMPLE_ETA:g}",
    "--g_batch_size", "16",
    "--mixed_precision", "no", "--gradient_checkpointing", "False", "--report_to", "none", "--progress", "False",
    "--lora_rank", "8", "--lora_alpha", "8", "--iterations", "100000", "--save_interval", "25",
    "--checkpoints_total_limit", "1", "--seed", "0",
]
# what the curve scores (toy world v2: the held-out judge and the true JPEG size, in base-model σ; the training judge
# and the ground truth beside). Toy world v1's curves (dpok/README.md): --eval_rewards toy_alignment,jpeg_compressibility
# and, after "--", --guidance_scale 5.
EVAL_REWARDS = ("toy_align_heldout_z", "toy_jpeg_z", "toy_align_z", "toy_truth")


class HeldOut:
    """Fixed (held-out prompt, seed) pairs; scores the trainer's adapter (or the base) on them."""

    def __init__(self, prompts: list[str], n_seeds: int, rewards: tuple[str, ...] = EVAL_REWARDS,
                 seed_offset: int = 1000) -> None:
        from rewards import get_reward

        self.pairs = [(p, seed_offset + s) for p in prompts for s in range(n_seeds)]
        self.rewards = {n: get_reward(n) for n in rewards}

    @torch.no_grad()
    def score(self, trainer, adapter: str | None) -> dict[str, torch.Tensor]:
        from blend.methods.base import Base
        from blend.methods.single import Single
        from blend.sampler import SamplerConfig, sample
        from blend.spec import BlendSpec
        from diffusion.adapters import activate
        from dpok.trainer import ADAPTER

        cfg = trainer.cfg
        sc = SamplerConfig(steps=cfg.num_inference_steps, guidance=cfg.guidance_scale, eta=cfg.eta)
        spec = BlendSpec(Base.name) if adapter is None else BlendSpec(Single.name, (adapter,))
        prompts, seeds = [p for p, _ in self.pairs], [s for _, s in self.pairs]
        images = torch.cat([sample(trainer.bundle, spec, prompts[i:i + 32], seeds[i:i + 32], sc).images
                            for i in range(0, len(prompts), 32)])
        trainer.bundle.scheduler.set_timesteps(cfg.num_inference_steps, device="cpu")
        activate(trainer.unet, ADAPTER)
        return {n: fn(images, prompts).float().cpu() for n, fn in self.rewards.items()}


def paired(scores: dict, base: dict, n_prompts: int) -> dict:
    """Mean and paired s.e. of adapter − base per reward: over the images (naive), and cluster-robust by prompt
    (``blend.stats.clustered``, CR1, df = prompts − 1): the held-out images have their own noise
    (``noise per_image``) and share only their prompt, so the prompt is the unit. ``z_prompt`` = Δ / s.e. by prompt."""
    from blend.stats import clustered, mean_se

    out = {}
    for n in scores:
        d = scores[n] - base[n]
        mu, se = mean_se(d)
        est = clustered(d.double().tolist(), [i // (len(d) // n_prompts) for i in range(len(d))], "prompt")
        out[n] = {"mean": mean_se(scores[n])[0], "delta": mu, "se": se, "se_prompt": est.se,
                  "z": mu / se if se else 0.0, "z_prompt": est.t, "p_prompt": est.p_value, "df_prompt": est.df}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="run directory")
    ap.add_argument("--minutes", type=float, default=15.0, help="training wall-time budget (evaluation excluded)")
    ap.add_argument("--max_samples", type=int, default=None, help="stop after this many training samples")
    ap.add_argument("--stop_at_unix", type=float, default=None, help="also stop at this wall-clock time (Unix s)")
    ap.add_argument("--eval_every", type=int, default=5, help="evaluate every N iterations")
    ap.add_argument("--eval_seeds", type=int, default=4, help="seeds per held-out prompt in the curve")
    ap.add_argument("--final_seeds", type=int, default=8, help="seeds per held-out prompt at the end (0: none)")
    ap.add_argument("--test_prompts", default="dataset/toy_test_prompts.json")
    ap.add_argument("--eval_rewards", default=",".join(EVAL_REWARDS),
                    help="comma-separated rewards the curve scores, paired with the base model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--print_preset", action="store_true")
    args = ap.parse_args(ours)
    if args.print_preset:
        print(shlex.join(TOY_PRESET))
        return 0
    torch.set_num_threads(args.threads)

    from dbcore.logging import get_logger, setup_logging
    from dbcore.prompts import load_prompts
    from dpok.config import parse_args
    from dpok.trainer import ADAPTER, Trainer

    setup_logging()
    log = get_logger("dpok_toy")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, ignored = parse_args(TOY_PRESET + ["--output_dir", str(out / "train")] + rest)
    for msg in ignored:
        log.warning(msg)
    trainer = Trainer(cfg)
    test_prompts = load_prompts(args.test_prompts)
    eval_rewards = tuple(r.strip() for r in args.eval_rewards.split(",") if r.strip())
    if not eval_rewards:
        raise SystemExit("error: --eval_rewards is empty; name the rewards the curve scores (python -m rewards --list)")
    curve_set = HeldOut(test_prompts, args.eval_seeds, eval_rewards)
    base = curve_set.score(trainer, None)
    curve_path = out / "curve.jsonl"
    state = {"train_seconds": 0.0, "split": {}}
    if trainer.counters.iteration and curve_path.is_file() and curve_path.read_text().strip():
        # resumed: continue the curve; iterations after its last line are counted at that line's mean cost
        last_line = json.loads(curve_path.read_text().strip().splitlines()[-1])
        it0 = trainer.counters.iteration
        state["train_seconds"] = last_line["train_seconds"] * it0 / last_line["iteration"]
        state["split"] = {k: v * it0 for k, v in last_line["seconds_per_iteration"].items()}
    else:
        curve_path.write_text("")
    t_start = time.perf_counter()

    def record(tr, metrics: dict) -> None:
        state["train_seconds"] += metrics.get("iteration_seconds", 0.0)
        for k in ("rollout_seconds", "reward_seconds", "value_seconds", "policy_seconds", "iteration_seconds"):
            state["split"][k] = state["split"].get(k, 0.0) + metrics.get(k, 0.0)
        it = tr.counters.iteration
        over = state["train_seconds"] > args.minutes * 60 or (
            args.max_samples is not None and tr.counters.samples_seen >= args.max_samples) or (
            args.stop_at_unix is not None and time.time() > args.stop_at_unix)
        over = over or tr._stop  # Ctrl-C: the trainer stops after this iteration; record it first
        if it % args.eval_every and not over:
            return
        line = {"iteration": it, "samples": tr.counters.samples_seen, "train_seconds": state["train_seconds"],
                "wall_seconds": time.perf_counter() - t_start, "train_reward": metrics.get("reward/mean"),
                "kl": metrics.get("kl"), "ratio_clipped_frac": metrics.get("ratio_clipped_frac"),
                "seconds_per_iteration": {k: v / it for k, v in state["split"].items()},
                "heldout": paired(curve_set.score(tr, ADAPTER), base, len(test_prompts))}
        with curve_path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        h = line["heldout"]
        log.info("it %d, %d samples, %.0f s, kl %.2g: held-out prompts, Δ vs base (s.e. by prompt): %s", it,
                 line["samples"], state["train_seconds"], line["kl"] or 0.0,
                 ", ".join(f"{n} {v['delta']:+.4f} ± {v['se_prompt']:.4f}" for n, v in h.items()))
        if over:
            tr._stop = True  # the trainer saves a checkpoint after this iteration and stops

    trainer.after_iteration.append(record)
    try:
        last = trainer.train()
    except KeyboardInterrupt:
        last = None
    if args.final_seeds == 0:
        return 0
    final_set = HeldOut(test_prompts, args.final_seeds, eval_rewards)
    final = paired(final_set.score(trainer, ADAPTER), final_set.score(trainer, None), len(test_prompts))
    summary = {"trainer_args": TOY_PRESET + rest, "minutes": args.minutes, "iterations": trainer.counters.iteration,
               "samples": trainer.counters.samples_seen, "train_seconds": state["train_seconds"],
               "seconds_per_iteration": {k: v / max(trainer.counters.iteration, 1)
                                         for k, v in state["split"].items()},
               "final_heldout": final, "final_eval": {"prompts": len(test_prompts), "seeds": args.final_seeds},
               "checkpoint": str(last or sorted((out / "train").glob("checkpoint-*"))[-1])}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log.info("final held-out (%d prompts × %d seeds; s.e. clustered by prompt): %s", len(test_prompts),
             args.final_seeds, {n: f"{v['delta']:+.4f} ± {v['se_prompt']:.4f} (z {v['z_prompt']:+.1f})"
                                for n, v in final.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
