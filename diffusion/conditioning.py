"""Text conditioning of a batch, for every supported model family, and the one call that runs the denoiser on it.

* ``sd`` (SD 1.x / 2.x): the text encoder's hidden states (N, L, D) → ``unet(x, t, encoder_hidden_states)``.
* ``sdxl``: hidden states of both CLIP encoders concatenated (N, 77, 2048 at full size), the pooled projection
  of the second (N, 1280) and the size/crop time ids (N, 6) → ``unet(..., added_cond_kwargs=...)``.
* ``sd3``: CLIP-L + CLIP-G hidden states padded to the T5 width and joined with T5's along the sequence
  (N, 77 + 256, 4096), pooled CLIP projections (N, 2048) → ``transformer(x, encoder_hidden_states,
  pooled_projections, timestep)``; the transformer predicts a flow-matching velocity, not ε.

A :class:`Conditioning` behaves like a batch: it can be indexed by rows and concatenated, so the sampler's
classifier-free-guidance batches and per-row routing treat every family alike. For the SD family a plain
tensor of hidden states is accepted wherever a conditioning is expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

FAMILIES = ("sd", "sdxl", "sd3")
PIPELINE_CLASS = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
                  "sd3": "StableDiffusion3Pipeline"}
"""The stock diffusers pipeline of each family (``model_index.json``'s ``_class_name``)."""


@dataclass(frozen=True)
class Conditioning:
    """Per-row text conditioning: ``hidden`` (N, L, D), ``pooled`` (N, P) or None, ``time_ids`` (N, 6) or None."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def __getitem__(self, rows) -> Conditioning:
        pick = (lambda t: None if t is None else t[rows])  # noqa: E731
        return Conditioning(self.hidden[rows], pick(self.pooled), pick(self.time_ids))

    @property
    def shape(self) -> torch.Size:
        return self.hidden.shape

    @property
    def device(self) -> torch.device:
        return self.hidden.device

    def to(self, *args, **kwargs) -> Conditioning:
        move = (lambda t: None if t is None else t.to(*args, **kwargs))  # noqa: E731
        return Conditioning(self.hidden.to(*args, **kwargs), move(self.pooled), move(self.time_ids))

    def repeat_rows(self, n: int) -> Conditioning:
        """Each row repeated ``n`` times in place (row-major), e.g. for num_images_per_prompt."""
        rep = (lambda t: None if t is None else t.repeat_interleave(n, dim=0))  # noqa: E731
        return Conditioning(rep(self.hidden), rep(self.pooled), rep(self.time_ids))


Cond = torch.Tensor | Conditioning


def cat_conditioning(items: Sequence[Cond]) -> Cond:
    """Concatenate conditionings (or plain hidden-state tensors) along the batch."""
    if all(isinstance(c, torch.Tensor) for c in items):
        return torch.cat(list(items))
    if not all(isinstance(c, Conditioning) for c in items):
        raise TypeError("cannot concatenate a Conditioning with a plain tensor: encode every part with the same bundle")

    def cat(field: str) -> torch.Tensor | None:
        parts = [getattr(c, field) for c in items]
        if all(p is None for p in parts):
            return None
        if any(p is None for p in parts):
            raise ValueError(f"some conditionings have {field} and some do not")
        return torch.cat(parts)

    return Conditioning(cat("hidden"), cat("pooled"), cat("time_ids"))


def family_of(cond: Cond) -> str:
    """The family a conditioning was made for: hidden states alone (SD), with time ids (SDXL), pooled only (SD3)."""
    if isinstance(cond, torch.Tensor):
        return "sd"
    return "sdxl" if cond.time_ids is not None else "sd3"


def run_denoiser(denoiser: torch.nn.Module, family: str | None, x: torch.Tensor, t: int | float | torch.Tensor,
                 cond: Cond, **kwargs) -> torch.Tensor:
    """The network's raw prediction at (x (N, C, H, W), t) — ε for ``sd``/``sdxl``, velocity for ``sd3``.

    ``family`` None infers it from the conditioning (:func:`family_of`). ``kwargs`` go to the network as they are
    (a diffusers pipeline's ``cross_attention_kwargs``, ``timestep_cond``, SD3's ``joint_attention_kwargs``).
    """
    family = family or family_of(cond)
    if family == "sd":
        hidden = cond.hidden if isinstance(cond, Conditioning) else cond
        return denoiser(x, t, encoder_hidden_states=hidden, **kwargs).sample
    if not isinstance(cond, Conditioning):
        raise TypeError(f"a {family} model needs a Conditioning (pooled embeddings), not a plain tensor")
    if family == "sdxl":
        return denoiser(x, t, encoder_hidden_states=cond.hidden,
                        added_cond_kwargs={"text_embeds": cond.pooled, "time_ids": cond.time_ids}, **kwargs).sample
    if family == "sd3":
        timestep = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        return denoiser(hidden_states=x, encoder_hidden_states=cond.hidden, pooled_projections=cond.pooled,
                        timestep=timestep, **kwargs).sample
    raise ValueError(f"unknown model family {family!r}; supported: {', '.join(FAMILIES)}")
