"""Command-line options of the baselines and the specs they make (used by ``blend.cli``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # blend.spec imports torch; add_baseline_args must stay light for `run_DB.py --help`
    from blend.spec import BlendSpec


def add_baseline_args(p: argparse.ArgumentParser) -> None:
    from blend.methods import baseline_names

    g = p.add_argument_group(f"baselines (--methods {','.join(baseline_names())}; docs/method.md §6)")
    g.add_argument("--budget", default=None, metavar="auto|N",
                   help="equal-cost comparison in forward-equivalents (fe: a UNet forward = 1, a UNet backward = 2; "
                        "docs/baselines.md): size best-of-N's N, CoDe's N, RGG's guided steps G and SMC's K (and G "
                        "when one particle is too dear) so that each spends at most N fe per image ('auto' = DB-MPA's "
                        "m·T forwards); overrides --bon_n, --code_n, --smc_k, --rgg_guided_steps")
    g.add_argument("--bon_n", type=int, default=4, help="best-of-N: samples per image")
    g.add_argument("--code_n", type=int, default=20, help="CoDe: candidates per branch step (the paper's 20)")
    g.add_argument("--code_block", type=int, default=5, help="CoDe: block size B (branch every B steps; paper 5)")
    g.add_argument("--smc_k", type=int, default=4, help="SMC: particles per image (DAS's default 4)")
    g.add_argument("--smc_ess", type=float, default=0.5, help="SMC: resample when ESS < this · K (0 = never)")
    g.add_argument("--rgg_guided_steps", type=int, default=None, metavar="G",
                   help="RGG/SMC: guide the last G steps only (each costs m UNet backwards); default every step")
    g.add_argument("--kl_coeff", type=float, default=0.1, help="RGG/SMC: α of the twist r/α (the paper's 0.1)")
    g.add_argument("--rgg_gamma", type=float, default=0.024,
                   help="RGG/SMC: tempering λ_i = min((1+γ)^i − 1, 1) (the paper's 0.024 at 50 steps)")
    g.add_argument("--guidance_surrogate", default=None, metavar="REWARD=OTHER[:SCALE],...",
                   help="RGG/SMC: guide with the differentiable OTHER (divided by SCALE) in place of a black-box reward "
                        "(e.g. toy_jpeg_capped_z=toy_smoothness_capped_z on the toy); the tables still score REWARD")


def parse_budget(text: str | None, n_adapters: int, steps: int) -> float | None:
    """Forward-equivalents per image allowed to each sized baseline (``blend.baselines.costs``); 'auto' = DB-MPA's
    m·T UNet forwards."""
    if text is None:
        return None
    if text == "auto":
        if n_adapters < 1:
            raise SystemExit("error: --budget auto matches DB-MPA's m·T UNet evaluations and needs the adapters "
                             "(--lora); or give a number, e.g. --budget 100")
        return float(n_adapters * steps)
    try:
        value = float(text)
    except ValueError as exc:
        raise SystemExit(f"error: --budget {text!r} must be 'auto' or a number of forward-equivalents per image") from exc
    if not value > 0:
        raise SystemExit(f"error: --budget must be > 0, got {text}")
    return value


def baseline_specs(method: str, adapters: Sequence[str], rewards: Sequence[str], vectors: Sequence[tuple[float, ...]],
                   args: argparse.Namespace, steps: int, scales: dict[str, float] | None = None) -> list[BlendSpec]:
    """The specs of one baseline method, one per weight vector, sized by ``args.budget`` when given."""
    from blend.methods import get_method

    info = get_method(method)
    budget = parse_budget(getattr(args, "budget", None), len(adapters), steps)
    if not info.reward_guided and len(rewards) != len(adapters):
        raise SystemExit(f"error: {method} selects with the weights of its adapters over the rewards, so it needs one "
                         f"reward per adapter; got rewards {list(rewards)} and adapters {list(adapters)}")
    out = []
    for w in vectors:
        try:
            opts = info.options(args, budget, steps, w)  # blend.methods: bon.py, code.py, guided.py
        except ValueError as exc:  # blend.baselines.costs.BudgetTooSmall names the method and its smallest cost
            raise SystemExit(f"error: {exc}") from exc
        extra = {"scales": dict(scales)} if scales else {}
        try:
            out.append(info.make_spec(adapters, rewards, w, opts, extra))
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from exc
    return out
