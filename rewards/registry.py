"""The reward registry: every reward by name, one signature, lazy loading.

A reward is built by ``get_reward(name, device=..., dtype=..., cache_dir=...)`` and called as
``reward(images, prompts) -> torch.Tensor`` with

* ``images``: float tensor (N, 3, H, W) with values in [0, 1] (any H, W; each reward resizes),
* ``prompts``: a list of N strings,
* result: float tensor (N,), higher is better.

Registering a reward stores only its factory and a description, so importing this module (or
``rewards``) loads no model; the weights are read the first time the factory is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


class Reward(Protocol):
    name: str

    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor: ...


@dataclass(frozen=True)
class RewardInfo:
    """What a user needs to read a reward's numbers."""

    name: str
    scale: str  # range / units and the convention, e.g. "−kB at JPEG q95; ~[−200, 0] at 512²"
    description: str
    differentiable: bool = False
    needs: str = "nothing (weight-free)"  # which checkpoint or package it loads
    factory: Callable[..., Reward] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


REGISTRY: dict[str, RewardInfo] = {}


def register(name: str, *, scale: str, description: str, differentiable: bool = False,
             needs: str = "nothing (weight-free)") -> Callable[[Callable[..., Reward]], Callable[..., Reward]]:
    """Decorator that registers a reward factory under ``name``."""

    def deco(factory: Callable[..., Reward]) -> Callable[..., Reward]:
        if name in REGISTRY:
            raise ValueError(f"reward {name!r} is registered twice")
        REGISTRY[name] = RewardInfo(name, scale, description, differentiable, needs, factory)
        return factory

    return deco


def list_rewards() -> list[RewardInfo]:
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def get_reward(name: str, **kwargs: Any) -> Reward:
    """Build the reward ``name``. Keyword arguments (device, dtype, cache_dir, paths) go to its factory."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise KeyError(f"unknown reward {name!r}; known rewards: {known} (see `python run_DB.py --list_rewards`)")
    return REGISTRY[name].factory(**kwargs)


def check_images(images: torch.Tensor, prompts: Sequence[str] | None = None) -> None:
    """Validate the shared input contract; raise ValueError naming what is wrong."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"rewards take images as a (N, 3, H, W) tensor in [0, 1], got {shape}")
    if prompts is not None and len(prompts) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(prompts)} prompts")
