"""Cost of one image, counted by what the sampler actually ran, and equal-cost sizing (``--budget``).

Fields, per image (docs/method.md §6 notation: T steps, m rewards, N candidates, B CoDe block, K particles):

* ``unet_forwards``  — UNet evaluations; a classifier-free-guidance pair counts once, as in the DB tables;
* ``unet_backwards`` — vector-Jacobian products through the UNet (one per reward gradient at x_t);
* ``vae_decodes``    — images decoded from latents (x̂0 look-aheads and final samples);
* ``reward_evals``   — (image, reward) evaluations made *inside* the sampler (selection, twists); the scoring
  of the final image for the table is not counted, it is the same for every method;
* ``reward_grads``   — (image, reward) gradients (backward passes through a reward model).

What each method costs (e = UNet evaluations per step of its proposal: 1 for the base model, m for DB-MPA):

=========  ==========================  =====================  ======================  ====================
method     UNet forwards               UNet backwards         VAE decodes             reward evals / grads
=========  ==========================  =====================  ======================  ====================
plain      e·T                         0                      1                       0 / 0
bon*       N·e·T                       0                      N                       N·m / 0
code       T + N·S  (S = block steps)  0                      N·S + 1                 N·S·m / 0
rgg        T                           m·T                    T + 1                   m·T / m·T
smc        K·T                         K·m·T                  K·(T + 1)               K·m·(T + 1) / K·m·T
=========  ==========================  =====================  ======================  ====================

S = #{i < T − 1 : i mod B = 0} = ⌈(T − 1)/B⌉: CoDe branches every B-th step except the last.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

COST_FIELDS = ("unet_forwards", "unet_backwards", "vae_decodes", "reward_evals", "reward_grads")


@dataclass
class Costs:
    """Counters of one image (see the module docstring)."""

    unet_forwards: int = 0
    unet_backwards: int = 0
    vae_decodes: int = 0
    reward_evals: int = 0
    reward_grads: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def __iadd__(self, other: Costs) -> Costs:
        for f in COST_FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        return self


def plain_costs(unet_evals: int) -> dict[str, int]:
    """Cost of one image of a plain (non-searching) sampler: its UNet evaluations and one decode."""
    return Costs(unet_forwards=int(unet_evals), vae_decodes=1).to_dict()


def code_branch_steps(steps: int, block: int) -> int:
    """S: the steps at which CoDe draws candidates (i mod B = 0, i < T − 1)."""
    return len([i for i in range(steps - 1) if i % block == 0])


def size_for_budget(method: str, budget: float, steps: int, evals_per_step: int = 1, block: int = 5) -> int:
    """The free size (N, N, K) that keeps a method's UNet forwards per image at or under ``budget`` (≥ 1).

    best-of-N: N·e·T ≤ budget;  CoDe: T + N·S ≤ budget;  SMC: K·T ≤ budget. RGG has no free size. Each method
    sizes itself (``Method.fit_budget`` in ``blend.methods``).
    """
    if budget <= 0 or not math.isfinite(budget):
        raise ValueError(f"--budget must be a positive number of UNet evaluations per image, got {budget}")
    from blend.methods import REGISTRY

    if method not in REGISTRY or not REGISTRY[method].is_baseline:
        raise ValueError(f"method {method!r} has no size to fit to a budget")
    return REGISTRY[method].fit_budget(budget, steps, evals_per_step, block)  # blend.methods: bon.py, code.py, guided.py
