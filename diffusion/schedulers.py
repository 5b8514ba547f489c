"""Diffusers schedulers by short name, built from a model's scheduler config (``run_DB.py --scheduler``).

The blended ε is scheduler-agnostic (``blend.sampler``); each name below is one diffusers class and
its options. Every name is checked against the stock ``StableDiffusionPipeline`` (w = (1, 0) gives its image with
that adapter; DB-MPA equals a hand blend): ddim, dpm++, euler, euler_a, pndm and unipc in ``tests/test_pipeline.py``,
the stochastic dpm++_sde and ddpm (same generators, same step noise) in ``tests/test_schedulers.py``.
"""

from __future__ import annotations

SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),  # the paper's, with η = 1
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpm++_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
}


def make_scheduler(name: str, config):
    """A fresh scheduler ``name`` (a key of :data:`SCHEDULERS`) from a scheduler ``config``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")
    import diffusers

    cls_name, options = SCHEDULERS[name]
    return getattr(diffusers, cls_name).from_config(config, **options)
