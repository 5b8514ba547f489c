"""Guided noise predictions of several models of one UNet at (x_t, t).

A "model" is an adapter name or ``BASE`` (all adapters disabled). Classifier-free guidance is
applied per model, before blending, as the paper's code does (docs/method.md §3). Two executions give
the same numbers up to float rounding:

* looped (default): one UNet call per model on its CFG batch, switching adapters in between; m calls
  cost m× where the UNet is compute-bound (large latents on a CPU);
* batched: one UNet call on the concatenation of every model's CFG batch, each row routed to its
  adapter by PEFT's mixed-batch path; cheaper where a call is bound by reading the weights (small
  batches: the SD-sized UNet at latent 16 on a CPU, DB-KLA 1.57× instead of 1.95× the base;
  docs/performance.md), and on a GPU.

Models named in ``fold`` (the merged adapters of soups) run with their ΔW folded into the base
weights and every adapter disabled (``diffusion.adapters.FoldedAdapter``): the base model's cost instead
of a rank-Σr LoRA's; equal to the LoRA path up to float rounding. The weights are restored exactly when
another model runs and by :meth:`NoisePredictor.restore_weights`, which callers must reach (``finally``).

A model may also be a whole fine-tuned UNet (``bundle.extra["unets"][name]``, a blend member added
with ``--model NAME=DIR``); such models always run looped. ``cond``/``uncond`` may be one tensor or a
``{model: tensor}`` mapping when models encode the prompt differently (text-encoder LoRA parts).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from blend.eps import BASE, classifier_free_guidance
from diffusion.adapters import FoldedAdapter, activate, mixed_batch_ok, routed
from diffusion.bundle import ModelBundle
from diffusion.conditioning import Cond, cat_conditioning, run_denoiser


@dataclass(frozen=True)
class CallOptions:
    """What a diffusers pipeline call adds to the plain sampler; the defaults are the sampler's own behaviour
    (``run_DB.py``), so its numbers do not depend on this class.

    * ``unet_kwargs``: extra keyword arguments of every denoiser call (``cross_attention_kwargs`` with its LoRA
      ``scale``, ``timestep_cond``; SD3's ``joint_attention_kwargs``), given to each member's call;
    * ``guidance_rescale``: φ of diffusers' ``rescale_noise_cfg``, applied to each member's guided ε (0 = off);
    * ``cfg``: False runs the conditional pass only (diffusers at ``guidance_scale`` ≤ 1);
    * ``base_as_is``: ``BASE`` runs the denoiser with its adapter flags as they are (a diffusers pipeline's
      ``set_adapters`` / ``disable_lora`` state) instead of with every adapter disabled.
    """

    unet_kwargs: Mapping = field(default_factory=dict)
    guidance_rescale: float = 0.0
    cfg: bool = True
    base_as_is: bool = False

    @property
    def routable(self) -> bool:
        """Can rows of different adapters share one routed call? Not under a LoRA ``scale`` (diffusers scales the
        active adapters' layers for the whole call, which a routed call does not see)."""
        return not any("scale" in (v or {}) for k, v in self.unet_kwargs.items() if k.endswith("attention_kwargs"))


class NoisePredictor:
    """Callable: ``predictor(x, t, cond, uncond, rows_by_model) -> {model: guided ε of its rows}``.

    Args:
        bundle: the model; its UNet holds every adapter that will be named.
        guidance_scale: g of classifier-free guidance (7.5 in the paper).
        batched: run all models in one UNet call (see module docstring).
        fold: adapters to run folded into the base weights (the soups' merged adapters).
        options: a diffusers pipeline call's extras (:class:`CallOptions`; default: none).
    """

    def __init__(self, bundle: ModelBundle, guidance_scale: float, batched: bool = False,
                 fold: Collection[str] = (), options: CallOptions | None = None) -> None:
        self.bundle, self.guidance_scale, self.batched = bundle, float(guidance_scale), batched
        self.fold = frozenset(fold)
        self.options = options or CallOptions()
        self._folded = FoldedAdapter(bundle.unet)
        self.unet_calls = 0  # UNet forward invocations (a CFG pair, or a whole routed batch, is one call)

    def _unet(self, x: torch.Tensor, t: int | torch.Tensor, emb: Cond, model: str | None = None) -> torch.Tensor:
        self.unet_calls += 1
        unet = self.bundle.extra.get("unets", {}).get(model, self.bundle.unet)
        return run_denoiser(unet, self.bundle.family, x, t, emb, **self.options.unet_kwargs)

    def _guided(self, xs: torch.Tensor, t, u, c, model: str | None = None) -> torch.Tensor:
        """One model's guided ε on its rows: CFG (and diffusers' rescale when asked), or the conditional pass."""
        if not self.options.cfg:
            return self._unet(xs, t, c, model)
        eps_u, eps_c = self._unet(torch.cat([xs, xs]), t, cat_conditioning([u, c]), model).chunk(2)
        return self._rescaled(classifier_free_guidance(eps_u, eps_c, self.guidance_scale), eps_c)

    def _rescaled(self, eps: torch.Tensor, eps_c: torch.Tensor) -> torch.Tensor:
        if self.options.guidance_rescale <= 0:
            return eps
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

        return rescale_noise_cfg(eps, eps_c, guidance_rescale=self.options.guidance_rescale)

    def __call__(self, x: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                 rows_by_model: Mapping[str, Sequence[int] | None], route: bool = False) -> dict[str, torch.Tensor]:
        """Guided ε for each model on its rows (``None`` = every row), each (len(rows), C, H, W).

        ``route=True`` forces one routed UNet call even when ``batched`` is off: DB-MPA-LS uses it so
        that images that drew different adapters at a step still cost one call of the batch size.
        """
        plan = []
        full = self.bundle.extra.get("unets", {})
        for model, rows in rows_by_model.items():
            idx = None if rows is None or len(rows) == x.shape[0] and list(rows) == list(range(x.shape[0])) \
                else torch.as_tensor(list(rows), dtype=torch.long, device=x.device)
            xs = x if idx is None else x[idx]
            u = uncond[model] if isinstance(uncond, Mapping) else uncond
            c = cond[model] if isinstance(cond, Mapping) else cond
            plan.append((model, xs, u if idx is None else u[idx], c if idx is None else c[idx]))
        if (self.batched or route) and len(plan) > 1 and not any(p[0] in full for p in plan) \
                and self.options.routable and self.options.cfg and mixed_batch_ok(self.bundle.unet):
            self._folded.restore()
            return self._batched(plan, t)
        out = {}
        for model, xs, u, c in plan:
            if model in self.fold:
                self._folded.fold(model)
            elif model not in full:
                self._folded.restore()
                if not (self.options.base_as_is and model == BASE):
                    activate(self.bundle.unet, model)
            out[model] = self._guided(xs, t, u, c, model)
        return out

    def restore_weights(self) -> None:
        """Undo a folded adapter (exactly); call once the predictor is done."""
        self._folded.restore()

    def _batched(self, plan, t) -> dict[str, torch.Tensor]:
        xs = torch.cat([torch.cat([p[1], p[1]]) for p in plan])
        emb = cat_conditioning([part for p in plan for part in (p[2], p[3])])
        row_adapters = [name for name, rows, _, _ in plan for _ in range(2 * rows.shape[0])]
        with routed(self.bundle.unet, row_adapters):
            eps = self._unet(xs, t, emb)
        out, start = {}, 0
        for model, rows, _, _ in plan:
            n = rows.shape[0]
            eps_u, eps_c = eps[start:start + n], eps[start + n:start + 2 * n]
            out[model] = self._rescaled(classifier_free_guidance(eps_u, eps_c, self.guidance_scale), eps_c)
            start += 2 * n
        return out
