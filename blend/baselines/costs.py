"""Cost of one image, counted by what the sampler actually ran, and equal-cost sizing (``--budget``).

One unit, the **forward-equivalent** (fe): a UNet forward counts 1, a UNet backward (a vector-Jacobian product
w.r.t. x_t) counts ``BACKWARD_COST``. VAE decodes and reward evaluations are not counted: on the toy world
(``builtin:toy``, pixel space, analytic rewards) they cost < 0.001 forward each (``scripts/bench_backward.py``);
on latent-diffusion models the decode is not free and this unit understates the guided baselines' cost.
``--budget`` is in fe per image (docs/baselines.md).

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
rgg        T                           m·G                    G + 1                   m·G / m·G
smc        K·T                         K·m·G                  K·(T + 1)               K·m·(T + 1) / K·m·G
=========  ==========================  =====================  ======================  ====================

S = #{i < T − 1 : i mod B = 0} = ⌈(T − 1)/B⌉: CoDe branches every B-th step except the last. G = guided steps
(RGG / SMC guide the last G steps only; G = T, every step, unless ``--rgg_guided_steps`` or ``--budget`` sets it).
In fe: RGG T + b·m·G, SMC K·(T + b·m·G) with b = ``BACKWARD_COST``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

COST_FIELDS = ("unet_forwards", "unet_backwards", "vae_decodes", "reward_evals", "reward_grads")

# A UNet backward w.r.t. its input, in UNet forwards. Measured 1.86 on the toy UNet (builtin:toy, batch 16, fp32,
# CPU, one thread, CFG pair; median of 20): (t(forward with autograd + backward to x) − t(forward, no_grad)) /
# t(forward, no_grad), by
#   OMP_NUM_THREADS=1 python scripts/bench_backward.py --base_model builtin:toy --batch 16 --repeats 20
# Counted as 2.0 (the usual "a backward costs two forwards"; 1.86 rounded up, so guided baselines are not favoured).
BACKWARD_COST = 2.0
BUDGET_SLACK = 1e-9  # float slack when comparing a cost in fe with a budget


def forward_equivalents(costs: dict[str, float]) -> float:
    """A cost dict (``COST_FIELDS``, per image) in forward-equivalents: forwards + BACKWARD_COST · backwards."""
    return float(costs.get("unet_forwards", 0)) + BACKWARD_COST * float(costs.get("unet_backwards", 0))


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


class BudgetTooSmall(ValueError):
    """The budget is below a method's cost at its smallest size (the message names both)."""


def size_for_budget(method: str, budget: float, steps: int, evals_per_step: int = 1, block: int = 5,
                    n_rewards: int = 1) -> int:
    """The largest size (N, N, G, K) that keeps a method's forward-equivalents per image at or under ``budget``.

    best-of-N: N·e·T ≤ budget;  CoDe: T + N·S ≤ budget;  RGG: T + b·m·G ≤ budget (G ≤ T guided steps);
    SMC: K·(T + b·m·T) ≤ budget (K particles, every step guided; ``guided_steps_for_budget`` when one such particle
    is too dear). Raises :class:`BudgetTooSmall` when even the smallest size (1) costs more. Each method sizes
    itself (``Method.fit_budget`` in ``blend.methods``).
    """
    if budget <= 0 or not math.isfinite(budget):
        raise ValueError(f"--budget must be a positive number of forward-equivalents per image, got {budget}")
    from blend.methods import REGISTRY

    if method not in REGISTRY or not REGISTRY[method].is_baseline:
        raise ValueError(f"method {method!r} has no size to fit to a budget")
    # blend.methods: bon.py, code.py, guided.py
    return REGISTRY[method].fit_budget(budget, steps, evals_per_step, block, n_rewards)


def largest_size(method: str, cost, budget: float, upper: int | None = None) -> int:
    """The largest n ≥ 1 (≤ ``upper``) with cost(n) ≤ budget, for a cost increasing in n; BudgetTooSmall if none."""
    if cost(1) > budget + BUDGET_SLACK:
        raise BudgetTooSmall(f"--budget {budget:g} forward-equivalents per image is below {method}'s smallest cost, "
                             f"{cost(1):g} fe per image (size 1); raise --budget or leave {method} out of --methods")
    fits = lambda n: (upper is None or n <= upper) and cost(n) <= budget + BUDGET_SLACK  # noqa: E731
    lo, hi = 1, 2
    while fits(hi):  # exponential then binary search: fits(lo), not fits(hi)
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
