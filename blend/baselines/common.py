"""What every baseline shares: the noise of a chain, the objective Σ_i w_i r_i / s_i and its gradients.

Noise. Chain 0 of a (prompt, seed) is the plain sampler's chain: its x_T and step noises come from
``dbcore.seeding.initial_noise`` for that seed, so a baseline that keeps one chain and never branches
reproduces plain sampling bit for bit. Extra chains (best-of-N candidates, SMC particles) and CoDe's
extra branches use seeds derived from (seed, index) and offset by 2³² so they never coincide with a
user seed's noise (``dbcore.seeding.derive_seed``, ``branch_noise``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch

from rewards.registry import REGISTRY


def tempering(i: int, gamma: float) -> float:
    """DAS's exponential tempering λ_i = min((1 + γ)^i − 1, 1), i = 0 at the first step."""
    return min((1.0 + gamma) ** i - 1.0, 1.0)


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module | None) -> Iterator[None]:
    """Parameters do not require grad inside (gradients flow to the inputs only); restored afterwards."""
    saved = []
    for m in modules:
        if m is not None:
            for p in m.parameters():
                saved.append((p, p.requires_grad))
                p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


class WeightedReward:
    """Σ_i w_i r_i / s_i over named rewards (the paper's WR), evaluated on images in [0, 1].

    ``fns`` maps each name in ``names`` to a reward callable (rewards.registry contract).
    """

    def __init__(self, names: Sequence[str], weights: Sequence[float], fns: Mapping[str, object],
                 scales: Mapping[str, float] | None = None) -> None:
        missing = [n for n in names if n not in fns]
        if missing:
            raise KeyError(f"no reward function for {missing}")
        self.names, self.weights = list(names), [float(w) for w in weights]
        self.fns = {n: fns[n] for n in names}
        self.scales = [float((scales or {}).get(n, 1.0)) for n in names]

    @property
    def m(self) -> int:
        return len(self.names)

    def values(self, images: torch.Tensor, prompts: Sequence[str]) -> list[torch.Tensor]:
        """Each reward r_i / s_i, (N,) float32 on the images' device."""
        return [self.fns[n](images, list(prompts)).float().to(images.device) / s for n, s in zip(self.names, self.scales)]

    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        vals = self.values(images, prompts)
        return sum(w * v for w, v in zip(self.weights, vals))


def check_differentiable(names: Sequence[str], method: str, surrogates: Mapping[str, str]) -> list[str]:
    """The reward names to take gradients of (surrogates substituted); raises if any is not differentiable."""
    out = []
    for n in names:
        g = surrogates.get(n, n)
        info = REGISTRY.get(g)
        if info is None:
            raise KeyError(f"unknown reward {g!r} (see `python run_DB.py --list_rewards`)")
        if not info.differentiable:
            diff = ", ".join(sorted(k for k, v in REGISTRY.items() if v.differentiable))
            raise ValueError(f"{method} takes gradients of its rewards, but {g!r} is not differentiable. "
                             f"Differentiable rewards: {diff}. Use one of them, or name a differentiable surrogate "
                             f"for the guidance with --guidance_surrogate {n}=OTHER (e.g. on the toy world "
                             f"jpeg_compressibility → toy_smoothness, toy_jpeg_capped_z → toy_smoothness_capped_z); "
                             f"the table still scores {n}.")
        out.append(g)
    return out


def parse_surrogates(text: str | None) -> dict[str, tuple[str, float]]:
    """'a=b[:s],c=d' → {a: (b, s)}: guide with reward b divided by s instead of a (s = 1 if not given)."""
    out: dict[str, tuple[str, float]] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"surrogate {item!r} must look like REWARD=SURROGATE[:SCALE]")
        name, rest = item.split("=", 1)
        sur, _, scale = rest.partition(":")
        value = float(scale) if scale else 1.0
        if not value > 0:
            raise ValueError(f"surrogate scale of {name} must be > 0, got {scale}")
        out[name.strip()] = (sur.strip(), value)
    return out
