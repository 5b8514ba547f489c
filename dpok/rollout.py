"""Rollouts: DDIM sampling (η > 0, classifier-free guidance) that records every transition and its
log-probability, with the step and log-probability of ``diffusion.ddim`` (docs/method.md §4,
``forward_collect_traj_ddim``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion.bundle import ModelBundle
from diffusion.conditioning import Conditioning, cat_conditioning, run_denoiser
from diffusion.ddim import ddim_step, gaussian_logprob
from diffusion.guidance import classifier_free_guidance


class PromptCache:
    """Text-encoder outputs per distinct prompt: the denoiser's conditioning (hidden states (L, D) for SD, a
    :class:`~diffusion.conditioning.Conditioning` row for SDXL) and the first encoder's pooled output (D,) for V."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self._hidden: dict[str, torch.Tensor | Conditioning] = {}
        self._pooled: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> None:
        new = [p for p in dict.fromkeys(prompts) if p not in self._hidden]
        if not new:
            return
        tok = self.bundle.tokenizer(new, padding="max_length", truncation=True,
                                    max_length=self.bundle.tokenizer.model_max_length, return_tensors="pt")
        out = self.bundle.text_encoder(tok.input_ids.to(self.bundle.text_encoder.device))
        family_cond = self.bundle.encode_prompts(new) if self.bundle.family != "sd" else None
        for i, p in enumerate(new):
            self._hidden[p] = out[0][i].to(self.bundle.dtype) if family_cond is None else family_cond[[i]]
            self._pooled[p] = out.pooler_output[i].float()

    def hidden(self, prompts: list[str]) -> torch.Tensor | Conditioning:
        """(N, L, D) on the model's device and dtype (a Conditioning of N rows for SDXL)."""
        self._encode(prompts)
        if self.bundle.family != "sd":
            return cat_conditioning([self._hidden[p] for p in prompts])
        return torch.stack([self._hidden[p] for p in prompts])

    def pooled(self, prompts: list[str]) -> torch.Tensor:
        """(N, D) float32 on the model's device."""
        self._encode(prompts)
        return torch.stack([self._pooled[p] for p in prompts])

    @property
    def text_dim(self) -> int:
        return int(self.bundle.text_encoder.config.hidden_size)


def guided_eps(unet: torch.nn.Module, x: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor | Conditioning,
               uncond: torch.Tensor | Conditioning, guidance: float) -> torch.Tensor:
    """ε̂ = ε_u + g (ε_c − ε_u), one UNet call on the CFG batch [x, x]. ``t`` may be per row (B,).

    The model family (SD or SDXL) follows from the conditioning (``diffusion.conditioning.family_of``).
    """
    tt = torch.cat([t, t]) if isinstance(t, torch.Tensor) and t.ndim > 0 else t
    eps_u, eps_c = run_denoiser(unet, None, torch.cat([x, x]), tt, cat_conditioning([uncond, cond])).chunk(2)
    return classifier_free_guidance(eps_u, eps_c, guidance)


def draw_noise(generator: torch.Generator, n: int, shape: tuple[int, ...], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_T (n, C, H, W) and the step noises z (steps, n, C, H, W), float32 on the CPU."""
    x_t = torch.randn((n, *shape), generator=generator)
    z = torch.randn((steps, n, *shape), generator=generator)
    return x_t, z


@dataclass
class Trajectories:
    latents: torch.Tensor  # (T+1, N, C, H, W): x_T … x_0, float32, CPU
    log_probs: torch.Tensor  # (T, N) log π(x_{k+1} | x_k) under the sampling policy, CPU; NaN at deterministic steps
    final: torch.Tensor  # (N, C, H, W) x_0 on the model's device (for decoding)
    prompts: list[str]


@torch.no_grad()
def sample_trajectories(bundle: ModelBundle, unet: torch.nn.Module, prompts: list[str], cache: PromptCache,
                        x_t: torch.Tensor, z: torch.Tensor, guidance: float, eta: float) -> Trajectories:
    """Sample one image per prompt from x_T with the given step noises, recording every transition.

    A step whose std is 0 (the last one of a scheduler with ``set_alpha_to_one``, as the toy's) has no
    density: its log-probability is recorded as NaN and the trainer does not train on it.

    ``bundle.scheduler.set_timesteps`` must have been called with ``z.shape[0]`` steps.
    """
    sched, device, dtype = bundle.scheduler, bundle.device, bundle.dtype
    timesteps = sched.timesteps.tolist()
    if len(timesteps) != z.shape[0]:
        raise ValueError(f"{z.shape[0]} step noises for {len(timesteps)} timesteps")
    cond, uncond = cache.hidden(prompts), cache.hidden([""] * len(prompts))
    x = x_t.to(device, dtype) * sched.init_noise_sigma
    latents, log_probs = [x.float().cpu()], []
    for i, t in enumerate(timesteps):
        eps = guided_eps(unet, x, t, cond, uncond, guidance)
        step = ddim_step(sched, eps.float(), t, x.float(), eta, noise=z[i].to(device))
        if bool((step.std > 0).all()):
            lp = gaussian_logprob(step.prev_sample, step.mean, step.std)
        else:  # a deterministic step (e.g. the last one when set_alpha_to_one): no density, not trained on
            lp = torch.full((x.shape[0],), float("nan"))
        x = step.prev_sample.to(dtype)
        latents.append(step.prev_sample.float().cpu())
        log_probs.append(lp.float().cpu())
    return Trajectories(torch.stack(latents), torch.stack(log_probs), x, list(prompts))
