"""Reward-gradient guidance on the base model (``blend.baselines.guided``): RGG (one chain) and DAS-style SMC
(K particles, resampled on the twist), guided on the last G steps (option ``G``; every step when absent).
Cost per image: K·T UNet forwards and K·m·G backwards (K = 1 for RGG), K·(T + b·m·G) forward-equivalents
(b = ``blend.baselines.costs.BACKWARD_COST``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blend.methods.baseline import Baseline
from blend.methods.registry import register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec


class _Guided(Baseline):
    reward_guided = True
    gradient_guided = True
    resamples = False  # SMC: particles weighted and resampled

    def particles(self, spec: BlendSpec) -> int:
        return int(spec.option("K", 4)) if self.resamples else 1

    def guided_steps(self, spec: BlendSpec, steps: int) -> int:
        """G: the last G of the ``steps`` steps are guided (all of them when the option is absent)."""
        g = spec.option("G", None)
        return steps if g is None else min(int(g), steps)

    @staticmethod
    def chain_cost(steps: int, guided: int, n_rewards: int) -> float:
        """Forward-equivalents of one chain: T forwards and m backwards on each of the G guided steps."""
        from blend.baselines.costs import BACKWARD_COST

        return steps + BACKWARD_COST * n_rewards * guided

    def options(self, args, budget, steps, w):
        opts = {"kl": args.kl_coeff, "gamma": args.rgg_gamma}
        g = getattr(args, "rgg_guided_steps", None)
        if budget:
            m = len(w)  # one weight per reward
            if self.resamples:
                opts["K"] = self.sized(budget, steps, n_rewards=m)
                if opts["K"] == 1 and self.chain_cost(steps, steps, m) > budget:
                    g = RGG.fit_budget(self, budget, steps, n_rewards=m)  # one particle, the last G steps guided
                else:
                    g = None
            else:
                g = self.sized(budget, steps, n_rewards=m)
                g = None if g >= steps else g
        elif self.resamples:
            opts["K"] = args.smc_k
        if self.resamples:
            opts["ess"] = args.smc_ess
        if g is not None:
            if g < 1:
                raise ValueError(f"--rgg_guided_steps must be ≥ 1, got {g}")
            opts["G"] = int(g)
        if args.guidance_surrogate:
            opts["surrogate"] = args.guidance_surrogate
        return opts

    def validate(self, spec: BlendSpec) -> None:
        super().validate(spec)
        g = spec.option("G", None)
        if g is not None and (int(g) != g or g < 1):
            raise ValueError(f"{self.display_name}: guided steps G must be an integer ≥ 1, got {g}")

    def cost(self, spec: BlendSpec, steps: int) -> float:
        """Forward-equivalents per image: K·(T + b·m·G)."""
        return float(self.particles(spec) * self.chain_cost(steps, self.guided_steps(spec, steps), len(spec.rewards)))

    def run(self, bundle, spec, prompts, seeds, config, reward_fns, max_rows, progress):
        from blend.baselines.dispatch import objectives
        from blend.baselines.guided import guided_sample

        return guided_sample(bundle, spec, prompts, seeds, config, objectives(spec, bundle.device, reward_fns, True),
                             max_rows, progress=progress)


@register_method
class RGG(_Guided):
    name = "rgg"
    display_name = "RGG"
    style = ("#DDCC77", "D", "--")

    def fit_budget(self, budget: float, steps: int, evals_per_step: int = 1, block: int = 5,
                   n_rewards: int = 1) -> int:
        """G guided steps (≤ T) of one chain: T + b·m·G ≤ budget."""
        from blend.baselines.costs import largest_size

        return largest_size(self.name, lambda g: self.chain_cost(steps, g, n_rewards), budget, upper=steps)


@register_method
class SMC(_Guided):
    name = "smc"
    display_name = "SMC (DAS)"
    style = ("#AA4499", "v", "-.")
    resamples = True

    def fit_budget(self, budget: float, steps: int, evals_per_step: int = 1, block: int = 5,
                   n_rewards: int = 1) -> int:
        """K particles guided on every step: K·(T + b·m·T) ≤ budget; 1 when one such particle is too dear (then
        ``options`` fits its guided steps G as RGG's; the error names the smallest cost, one particle with G = 1)."""
        from blend.baselines.costs import BudgetTooSmall, largest_size

        try:
            return largest_size(self.name, lambda k: k * self.chain_cost(steps, steps, n_rewards), budget)
        except BudgetTooSmall:
            largest_size(self.name, lambda g: self.chain_cost(steps, g, n_rewards), budget, upper=steps)
            return 1
