"""Reward-gradient guidance on the base model (``blend.baselines.guided``): RGG (one chain) and DAS-style SMC
(K particles, resampled on the twist). Cost per image: K·T UNet forwards and K·m·T backwards (K = 1 for RGG)."""

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

    def options(self, args, budget, steps, w):
        opts = {"kl": args.kl_coeff, "gamma": args.rgg_gamma}
        if self.resamples:
            opts["K"] = self.sized(budget, steps) if budget else args.smc_k
            opts["ess"] = args.smc_ess
        if args.guidance_surrogate:
            opts["surrogate"] = args.guidance_surrogate
        return opts

    def cost(self, spec: BlendSpec, steps: int) -> float:
        return float((1 + len(spec.rewards)) * self.particles(spec) * steps)

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


@register_method
class SMC(_Guided):
    name = "smc"
    display_name = "SMC (DAS)"
    style = ("#AA4499", "v", "-.")
    resamples = True

    def fit_budget(self, budget: float, steps: int, evals_per_step: int = 1, block: int = 5) -> int:
        return max(1, int(budget // steps))
