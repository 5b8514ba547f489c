"""CoDe (``blend.baselines.code``): blockwise best-of-N on the base model, N candidates every B-th step.
Cost per image: T + N·S UNet forwards with S = ⌈(T − 1)/B⌉ branch steps (``blend.baselines.costs``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blend.methods.baseline import Baseline
from blend.methods.registry import register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec


@register_method
class CoDe(Baseline):
    name = "code"
    display_name = "CoDe"
    style = ("#117733", "s", "-")
    reward_guided = True

    def options(self, args, budget, steps, w):
        return {"B": args.code_block,
                "N": self.sized(budget, steps, block=args.code_block) if budget else args.code_n}

    def fit_budget(self, budget: float, steps: int, evals_per_step: int = 1, block: int = 5,
                   n_rewards: int = 1) -> int:
        from blend.baselines.costs import code_branch_steps, largest_size

        s = code_branch_steps(steps, block)
        return largest_size(self.name, lambda n: steps + n * s, budget, upper=None if s else 1)

    def cost(self, spec: BlendSpec, steps: int) -> float:
        from blend.baselines.costs import code_branch_steps

        return steps + float(spec.option("N")) * code_branch_steps(steps, int(spec.option("B")))

    def run(self, bundle, spec, prompts, seeds, config, reward_fns, max_rows, progress):
        from blend.baselines.code import code_sample
        from blend.baselines.dispatch import objectives

        return code_sample(bundle, spec, prompts, seeds, config, objectives(spec, bundle.device, reward_fns),
                           max_rows, progress=progress)
