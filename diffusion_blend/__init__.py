"""Diffusion Blend: the public package, on top of every layer (docs/design.md); the ground floor it used to hold
(atomic I/O, logging, prompts, provenance, images, figures) is ``dbcore`` (its old module names here still work).

Importing it is cheap (no torch); the method lives in the design card's top-level packages
``diffusion`` (one model), ``blend`` (sampling-time methods), ``dpok`` (training) and ``rewards``.
The public diffusers pipeline is exported lazily: ``from diffusion_blend import DiffusionBlendPipeline`` (and ``DiffusionBlendXLPipeline`` for SDXL)
imports torch and diffusers only then.
"""

__all__ = ["DiffusionBlendPipeline", "DiffusionBlendXLPipeline"]


def __getattr__(name: str):
    if name in __all__:
        import blend.pipeline

        return getattr(blend.pipeline, name)
    raise AttributeError(f"module 'diffusion_blend' has no attribute {name!r}")
