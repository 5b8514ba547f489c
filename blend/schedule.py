"""Per-step weight schedules w(t) for the blended sampler.

A schedule maps the sampling progress p ∈ [0, 1] (p = 0 at the first step, t = T; p = 1 at the
last step) to one weight vector over the blend's adapters. The sampler evaluates it once per step
and blends with w(p_i) at step i (DB-MPA with a time-varying w, docs/method.md §2.5: each step's rule is a
valid blend as long as the weights of that step sum to 1).

* :class:`WeightSchedule` — a start and an end vector with linear or cosine interpolation
  (what ``run_DB.py --weights_end W --schedule cosine`` builds);
* :class:`FunctionSchedule` — any Python callable ``p -> weights``.

A schedule is attached to a :class:`~blend.spec.BlendSpec` through ``extra={"schedule": ...}``;
its ``label`` becomes part of the spec's label and its ``to_dict()`` part of every result row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SCHEDULE_KINDS = ("linear", "cosine")


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class WeightSchedule:
    """w(p) = start + s(p)·(end − start), s(p) = p (linear) or (1 − cos πp)/2 (cosine)."""

    start: tuple[float, ...]
    end: tuple[float, ...]
    kind: str = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", tuple(float(w) for w in self.start))
        object.__setattr__(self, "end", tuple(float(w) for w in self.end))
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"unknown schedule {self.kind!r}; choose from {', '.join(SCHEDULE_KINDS)}")
        if len(self.start) != len(self.end):
            raise ValueError(f"schedule start {list(self.start)} and end {list(self.end)} differ in length")

    def __call__(self, p: float) -> tuple[float, ...]:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"schedule progress must lie in [0, 1], got {p}")
        s = p if self.kind == "linear" else (1.0 - math.cos(math.pi * p)) / 2.0
        # start + s·(end − start): a constant schedule (end = start) returns start bit for bit
        return tuple(a + s * (b - a) for a, b in zip(self.start, self.end))

    @property
    def label(self) -> str:
        return f"{self.kind}-to-" + "_".join(_fmt(w) for w in self.end)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "start": list(self.start), "end": list(self.end)}


@dataclass(frozen=True)
class FunctionSchedule:
    """Any callable ``p -> weights`` (one weight per adapter), with a name for labels and rows."""

    fn: Callable[[float], Sequence[float]]
    name: str = "custom"

    def __call__(self, p: float) -> tuple[float, ...]:
        return tuple(float(w) for w in self.fn(p))

    @property
    def label(self) -> str:
        return f"sched-{self.name}"

    def to_dict(self) -> dict:
        return {"kind": "function", "name": self.name}


def step_progress(i: int, n: int) -> float:
    """p of step i of n: 0 at the first step, 1 at the last (0 when n = 1)."""
    return i / (n - 1) if n > 1 else 0.0


def as_schedule(obj) -> WeightSchedule | FunctionSchedule:
    """A schedule object from a schedule or a plain callable."""
    if isinstance(obj, WeightSchedule | FunctionSchedule):
        return obj
    if callable(obj):
        return FunctionSchedule(obj, getattr(obj, "__name__", "custom").replace("<lambda>", "lambda"))
    raise TypeError(f"a weight schedule must be callable p -> weights, got {type(obj).__name__}")
