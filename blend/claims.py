"""A family of paired comparisons, decided together: intervals, raw and Holm-adjusted p-values.

A conclusion such as "DB-MPA beats both single adapters at w = 0.5" rests on several tests; reading each at
α = 0.05 overstates it. Every comparison here is a paired difference (the same prompt and seed, image by image,
:func:`blend.stats.paired`); the family is fixed before the rows are read (the caller lists it), and each row
reports the estimate, its 95% interval, the raw p, Holm's adjusted p over the whole family and a simultaneous
(Bonferroni) interval that holds for all rows together.

A comparison against models trained several times (the MORL oracle with training seeds 0, 1, 2) pairs each
image with the mean over those models and adds the spread between them to the variance
(:func:`blend.stats.with_training_seeds`), so its interval covers "another training run" as well as "other
prompts and noise".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from blend import stats

Rows = Sequence[dict]


@dataclass(frozen=True)
class Comparison:
    """``a − b`` of ``value(row)``; ``b`` is one set of rows, or one per training seed of the same model."""

    label: str
    a: Rows
    b: Rows | Sequence[Rows]
    value: Callable[[dict], float]

    def estimate(self, unit: str) -> stats.Estimate | None:
        groups = self.b if self.b and not isinstance(self.b[0], dict) else [self.b]
        if len(groups) == 1:
            return stats.paired(self.a, groups[0], self.value, unit=unit)
        per_seed = [stats.paired(self.a, g, self.value, unit=unit) for g in groups]
        if any(e is None for e in per_seed):
            return None
        keyed = [{(r["prompt_index"], r["seed"]): self.value(r) for r in g} for g in groups]
        common = set.intersection(*(set(k) for k in keyed))
        mean_b = [{"prompt_index": p, "seed": s, "v": sum(k[(p, s)] for k in keyed) / len(keyed)}
                  for p, s in sorted(common)]
        pooled = stats.paired(self.a, mean_b, self.value, lambda r: r["v"], unit=unit)
        return None if pooled is None else stats.with_training_seeds(per_seed, pooled)


def decide(family: Sequence[Comparison], unit: str, level: float = 0.95) -> list[dict]:
    """One record per comparison: label, mean, se, df, ci (at ``level``), p, p_holm, ci_simultaneous, holds
    (the simultaneous interval excludes 0, i.e. the claim survives the whole family's correction)."""
    ests = [c.estimate(unit) for c in family]
    kept = [(c, e) for c, e in zip(family, ests) if e is not None]
    holm = stats.holm([e.p_value for _, e in kept])
    sim = stats.simultaneous_level(len(kept), level)
    out = []
    for (c, e), ph in zip(kept, holm):
        lo, hi = e.ci(sim)
        out.append({"label": c.label, "mean": e.mean, "se": e.se, "df": e.df, "unit": e.unit, "n": e.n,
                    "ci": list(e.ci(level)), "p": e.p_value, "p_holm": ph, "ci_simultaneous": [lo, hi],
                    "simultaneous_level": sim, "holds": bool(lo > 0 or hi < 0)})
    return out


def markdown(records: Sequence[dict], digits: int = 3) -> str:
    """The family as a markdown table (Δ, 95% interval, simultaneous interval, p, Holm p)."""
    if not records:
        return "(no comparison could be paired)\n"
    sim = records[0]["simultaneous_level"]
    lines = [f"| comparison (paired Δ) | Δ | s.e. | 95% interval | {sim:.1%} simultaneous interval | p | Holm p |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['label']} | {r['mean']:+.{digits}f} | {r['se']:.{digits}f} "
                     f"| [{r['ci'][0]:+.{digits}f}, {r['ci'][1]:+.{digits}f}] "
                     f"| [{r['ci_simultaneous'][0]:+.{digits}f}, {r['ci_simultaneous'][1]:+.{digits}f}] "
                     f"| {stats.fmt_p(r['p'])} | {stats.fmt_p(r['p_holm'])} |")
    return "\n".join(lines) + "\n"


__all__ = ["Comparison", "decide", "markdown"]
