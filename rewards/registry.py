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

import inspect
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


class RewardOptionError(ValueError):
    """A ``--reward_option`` the reward does not take, or a value of the wrong type."""


_PASSED_BY_CALLER = {"device", "dtype", "cache_dir"}
_KEYWORDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _takes(fn: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], inspect.Parameter | None]:
    params = inspect.signature(fn).parameters
    named = {k: p for k, p in params.items() if p.kind in _KEYWORDS and k not in _PASSED_BY_CALLER}
    return named, next((p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)


def reward_options(name: str) -> dict[str, inspect.Parameter] | None:
    """The options (loader keyword arguments) reward ``name`` takes, or None when they cannot be told.

    A factory's ``**_`` swallows unknown keys (so they are refused here); a factory's ``**kwargs`` is followed
    to the ``load_*`` function it passes them on to."""
    factory = REGISTRY[name].factory
    named, var = _takes(factory)
    if var is None or var.name.startswith("_"):
        return named
    loaders = [factory.__globals__.get(n) for n in factory.__code__.co_names if n.startswith("load")]
    loaders = [fn for fn in loaders if callable(fn)]
    if len(loaders) != 1:
        return None
    inner, inner_var = _takes(loaders[0])
    if inner_var is not None and not inner_var.name.startswith("_"):
        return None
    return {**inner, **named}


def _convert(name: str, key: str, value: Any, param: inspect.Parameter) -> Any:
    default = param.default
    if not isinstance(value, str) or default is inspect.Parameter.empty or default is None \
            or isinstance(default, str):
        return value
    kind = type(default)
    try:
        if kind is bool:
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
        if kind in (int, float):
            return kind(value)
    except ValueError:
        raise RewardOptionError(f"--reward_option {name}.{key}={value!r}: {key} takes a {kind.__name__} "
                                f"(default {default!r})") from None
    return value


def check_reward_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for reward ``name``, converted to the types its loader takes; raises
    :class:`RewardOptionError` (unknown key, wrong type) or KeyError (unknown reward) before anything loads."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise KeyError(f"unknown reward {name!r}; known rewards: {known} (see `python run_DB.py --list_rewards`)")
    takes = reward_options(name)
    if takes is None:
        return dict(options)
    out = {}
    for key, value in options.items():
        if key not in takes:
            accepted = ", ".join(sorted(takes)) or "no options"
            raise RewardOptionError(f"--reward_option {name}.{key}: reward {name!r} takes no option {key!r} "
                                    f"(it takes: {accepted})")
        out[key] = _convert(name, key, value, takes[key])
    return out


def check_images(images: torch.Tensor, prompts: Sequence[str] | None = None) -> None:
    """Validate the shared input contract; raise ValueError naming what is wrong."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"rewards take images as a (N, 3, H, W) tensor in [0, 1], got {shape}")
    if prompts is not None and len(prompts) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(prompts)} prompts")
