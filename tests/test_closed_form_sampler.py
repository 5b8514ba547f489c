"""The whole sampler (adapters, CFG, blending, DDIM) on a model whose ε is exact for Gaussian data.

Data x0 ~ N(μ, σ² I). At time t, p_t = N(√ᾱ μ, v_t I) with v_t = ᾱσ² + 1 − ᾱ, so the exact noise
predictor is ε(x, t) = √(1−ᾱ)(x − √ᾱ μ)/v_t. Tilting the data by r(x) = aᵀx with KL strength α
gives N(μ + σ² a/α, σ² I), whose ε differs from the base one by −√(1−ᾱ)√ᾱ/v_t · σ² a/α. The test
model adds that term through a Linear(1 → d) layer that is zero in the base and carries σ² a_i/α
as a rank-1 LoRA per reward i: a real PEFT adapter, switched by the real sampler.

Blending ε's with weights w must then sample N(μ + σ² Σ w_i a_i/α, σ² I), and DB-KLA with λ
must sample the tilt by λ a/α (docs/method.md §2.3: exact for a single Gaussian and linear rewards).
"""

from __future__ import annotations

import types

import pytest
import torch
from diffusers import DDIMScheduler

from blend.sampler import SamplerConfig, sample
from blend.spec import BlendSpec
from diffusion.bundle import ModelBundle
from diffusion.lora import LoraWeights, add_lora

D, SIGMA, ALPHA = 2, 0.7, 2.0
MU = torch.tensor([0.5, -0.3])
A = {"r1": torch.tensor([1.0, 0.0]), "r2": torch.tensor([0.0, 1.5])}
N, STEPS = 4000, 100


class GaussianEps(torch.nn.Module):
    def __init__(self, scheduler: DDIMScheduler) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.shift = torch.nn.Linear(1, D, bias=False)
        torch.nn.init.zeros_(self.shift.weight)
        self.config = types.SimpleNamespace(sample_size=1, in_channels=D)

    def forward(self, x, t, encoder_hidden_states=None):
        abar = self.scheduler.alphas_cumprod[int(t)]
        v = abar * SIGMA**2 + 1 - abar
        x2 = x.flatten(1)
        eps = (1 - abar) ** 0.5 * (x2 - abar**0.5 * MU) / v
        eps = eps - (1 - abar) ** 0.5 * abar**0.5 / v * self.shift(torch.ones(x2.shape[0], 1))
        return types.SimpleNamespace(sample=eps.view_as(x))


class IdentityBundle(ModelBundle):
    def encode_prompts(self, prompts):
        return torch.zeros(len(prompts), 1, 1)

    def decode(self, samples):
        return samples.float()


@pytest.fixture(scope="module")
def gaussian_bundle():
    sched = DDIMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, clip_sample=False,
                          set_alpha_to_one=True, steps_offset=0)
    unet = GaussianEps(sched)
    bundle = IdentityBundle(unet, None, None, sched, None, source="gaussian")
    for name, a in A.items():
        lw = LoraWeights(A={"shift": torch.ones(1, 1)}, B={"shift": (SIGMA**2 * a / ALPHA).view(D, 1)},
                         alpha={"shift": 1.0})
        add_lora(unet, name, lw)
    return bundle


def draw(bundle, spec):
    return sample(bundle, spec, [""] * N, list(range(N)), SamplerConfig(steps=STEPS, guidance=7.5, eta=1.0))


def check_gaussian(x, mean, std=SIGMA, n_se=5.0):
    """Sample mean within 5 standard errors (+0.02 for step discretisation), std within 5 %."""
    x = x.flatten(1)
    se = std / N**0.5
    assert torch.all((x.mean(0) - mean).abs() < n_se * se + 0.02), (x.mean(0), mean)
    assert torch.all((x.std(0) / std - 1).abs() < 0.05), x.std(0)


def test_base_and_single_tilts(gaussian_bundle):
    check_gaussian(draw(gaussian_bundle, BlendSpec("base")).images, MU)
    check_gaussian(draw(gaussian_bundle, BlendSpec("single", ("r1",))).images, MU + SIGMA**2 * A["r1"] / ALPHA)


@pytest.mark.parametrize("w", [0.25, 0.5, 0.8])
def test_mpa_samples_the_weighted_tilt(gaussian_bundle, w):
    x = draw(gaussian_bundle, BlendSpec("mpa", ("r1", "r2"), (w, 1 - w))).images
    check_gaussian(x, MU + SIGMA**2 * (w * A["r1"] + (1 - w) * A["r2"]) / ALPHA)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_kla_samples_the_alpha_over_lambda_tilt(gaussian_bundle, lam):
    x = draw(gaussian_bundle, BlendSpec("kla", ("r2",), (1.0,), lam=lam)).images
    check_gaussian(x, MU + SIGMA**2 * lam * A["r2"] / ALPHA)


def test_ls_matches_mpa_marginal(gaussian_bundle):
    """Prop. 2: per-step random choice has the blend's marginals (here the means agree)."""
    x = draw(gaussian_bundle, BlendSpec("mpa_ls", ("r1", "r2"), (0.5, 0.5))).images
    check_gaussian(x, MU + SIGMA**2 * (0.5 * A["r1"] + 0.5 * A["r2"]) / ALPHA, n_se=6.0)
