"""Diffusers schedulers by short name, built from a model's scheduler config (``run_DB.py --scheduler``).

The blended ε is scheduler-agnostic (``blend.sampler``); each name below is one diffusers class and
its options. ``tests/test_pipeline.py`` checks ddim, dpm++, euler, euler_a, pndm and unipc against the
stock ``StableDiffusionPipeline``; the others run through the same ``step`` call.
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
