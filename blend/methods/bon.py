"""Best-of-N (``blend.baselines.bon``): N chains per (prompt, seed) from a proposal, the best by Σ_i w_i r_i.

``bon``: the base model as the proposal (weights over the rewards); ``bon_mpa`` / ``bon_ls``: DB-MPA / DB-MPA-LS
with the adapters' weights (one reward per adapter). Cost per image: N·e·T UNet forwards (e: the proposal's
evaluations per step), N decodes, N·m reward evaluations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blend.methods.base import Base
from blend.methods.baseline import Baseline
from blend.methods.mpa import Mpa
from blend.methods.mpa_ls import MpaLS
from blend.methods.registry import register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec


class _BestOfN(Baseline):
    needs_ddim = False
    proposal = ""

    def proposal_spec(self, spec: BlendSpec) -> BlendSpec:
        """The plain method whose samples best-of-N selects from."""
        from blend.spec import BlendSpec

        if self.reward_guided:
            return BlendSpec(self.proposal)
        return BlendSpec(self.proposal, spec.adapters, spec.weights)

    def options(self, args, budget, steps, w):
        e = len([x for x in w if x != 0]) if self.proposal == Mpa.name else 1
        return {"N": self.sized(budget, steps, e) if budget else args.bon_n}

    def fit_budget(self, budget: float, steps: int, evals_per_step: int = 1, block: int = 5,
                   n_rewards: int = 1) -> int:
        from blend.baselines.costs import largest_size

        return largest_size(self.name, lambda n: n * evals_per_step * steps, budget)

    def cost(self, spec: BlendSpec, steps: int) -> float:
        return float(spec.option("N", 1)) * self.proposal_spec(spec).unet_evals_per_step(steps) * steps

    def run(self, bundle, spec, prompts, seeds, config, reward_fns, max_rows, progress):
        from blend.baselines.bon import best_of_n
        from blend.baselines.dispatch import objectives

        return best_of_n(bundle, spec, prompts, seeds, config, objectives(spec, bundle.device, reward_fns), max_rows)


@register_method
class BestOfN(_BestOfN):
    name = "bon"
    display_name = "Best-of-N"
    style = ("#44AA99", "h", ":")
    reward_guided = True
    proposal = Base.name


@register_method
class BestOfNMpa(_BestOfN):
    name = "bon_mpa"
    display_name = "Best-of-N over DB-MPA"
    style = ("#332288", "<", "-")
    proposal = Mpa.name


@register_method
class BestOfNLS(_BestOfN):
    name = "bon_ls"
    display_name = "Best-of-N over DB-MPA-LS"
    style = ("#88CCEE", ">", "--")
    allows_negative = False
    proposal = MpaLS.name

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        raise ValueError(f"{MpaLS.display_name} draws one model per step; it has no fixed coefficients")

    def unet_evals_per_step(self, spec: BlendSpec, steps: int | None = None) -> float:
        return 1
