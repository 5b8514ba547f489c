"""Training observability: a captioned grid of samples every N iterations, to TensorBoard and W&B.

The grid shows a fixed set of training prompts (rows) × fixed seeds (columns), sampled with the current
LoRA from noise drawn by a private generator, so that grids of different iterations differ only by the
training (the training's own random streams are not touched). Each row is captioned with its prompt and
the rewards of its images. Written with ``dbcore.figures.image_grid`` (DejaVu font).

Also: ``check_trackers`` turns a ``--report_to`` tracker that is not installed into an error (accelerate
itself only warns and runs on without it).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from dbcore.figures import image_grid
from dbcore.images import to_pil
from dbcore.logging import get_logger
from dbcore.seeding import observe_generator
from diffusion.adapters import activate
from dpok.rollout import draw_noise, sample_trajectories

log = get_logger("observe")

# accelerate tracker name -> the module(s) it needs (any one of them)
TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "comet_ml": ("comet_ml",),
                   "mlflow": ("mlflow",), "aim": ("aim",), "clearml": ("clearml",), "dvclive": ("dvclive",)}


def trackers_of(report_to: str) -> list[str]:
    """``"tensorboard,wandb"`` → ["tensorboard", "wandb"]; "none"/"" → []; "all" stays ["all"]."""
    names = [t.strip() for t in (report_to or "").split(",") if t.strip()]
    return [] if names in ([], ["none"]) else names


def check_trackers(report_to: str) -> None:
    """Raise ValueError naming the fix when a requested tracker is unknown or its package is not installed."""
    for name in trackers_of(report_to):
        if name == "all":
            continue
        if name not in TRACKER_MODULES:
            raise ValueError(f"--report_to {name!r} is not a tracker; use one of {', '.join(TRACKER_MODULES)}, "
                             "all or none")
        if not any(importlib.util.find_spec(m) is not None for m in TRACKER_MODULES[name]):
            raise ValueError(f"--report_to {name}: the package {TRACKER_MODULES[name][0]!r} is not installed; "
                             f"install it (pip install {TRACKER_MODULES[name][0]}) or pass --report_to tensorboard "
                             "or --report_to none")


class SampleGridLogger:
    """``trainer.after_iteration`` callback: every ``every`` iterations, sample ``n_prompts`` × ``n_seeds`` images
    with the current adapter and log the captioned grid to the accelerate trackers (main process only)."""

    def __init__(self, trainer, every: int, n_prompts: int = 4, n_seeds: int = 2, seed: int = 0,
                 tile_px: int = 96) -> None:
        if every < 1:
            raise ValueError(f"sample grid interval must be ≥ 1, got {every}")
        self.every, self.tile_px = every, tile_px
        prompts = list(dict.fromkeys(trainer.prompts))[:max(1, n_prompts)]
        self.row_prompts = prompts
        self.n_seeds = max(1, n_seeds)
        self.prompts = [p for p in prompts for _ in range(self.n_seeds)]
        gen = observe_generator(seed)  # a private stream
        self.x_t, self.z = draw_noise(gen, len(self.prompts), trainer.bundle.sample_shape,
                                      trainer.cfg.num_inference_steps)

    @torch.no_grad()
    def grid(self, trainer, iteration: int):
        """(PIL grid, rewards (n_prompts, n_seeds)) of the current adapter."""
        unet = trainer.acc.unwrap_model(trainer.unet)
        activate(unet, "dpok")
        traj = sample_trajectories(trainer.bundle, unet, self.prompts, trainer.cache, self.x_t, self.z,
                                   trainer.cfg.guidance_scale, trainer.cfg.eta)
        decoded = trainer.bundle.decode(traj.final)
        total, _ = trainer.reward(decoded, self.prompts)
        images = decoded.float().cpu()
        rewards = total.float().cpu().numpy().reshape(len(self.row_prompts), self.n_seeds)
        pils = to_pil(images)
        tiles = [[pils[i * self.n_seeds + j] for j in range(self.n_seeds)] for i in range(len(self.row_prompts))]
        rows = [f"{p}\nreward " + ", ".join(f"{r:.3g}" for r in rewards[i]) for i, p in enumerate(self.row_prompts)]
        grid, _ = image_grid(tiles, rows, [f"sample {j}" for j in range(self.n_seeds)],
                             f"iteration {iteration}: {trainer.cfg.reward}", tile_px=self.tile_px,
                             what="training sample grid")
        return grid, rewards

    def __call__(self, trainer, metrics: dict) -> None:
        it = trainer.counters.iteration
        if it % self.every or not trainer.acc.is_main_process:
            return
        grid, rewards = self.grid(trainer, it)
        caption = f"iteration {it}; mean reward of the grid {float(np.mean(rewards)):.4g}"
        for tracker in trainer.acc.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("samples", np.asarray(grid), it, dataformats="HWC")
                tracker.writer.add_text("samples/caption", caption + "\n\n" + "\n\n".join(self.row_prompts), it)
                tracker.writer.flush()
            elif tracker.name == "wandb":
                import wandb

                tracker.log({"samples": wandb.Image(grid, caption=caption)}, step=it)
        log.info("logged a sample grid at iteration %d (%s)", it, caption)


__all__ = ["SampleGridLogger", "check_trackers", "trackers_of", "TRACKER_MODULES"]
