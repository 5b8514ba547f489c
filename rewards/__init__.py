"""Reward registry. Importing the package is cheap: the reward modules (and torch) are imported the first
time a registry name is used (``from rewards import get_reward``), which registers every reward but
loads no model (see ``registry``). ``rewards.catalog`` lists the rewards without importing torch.

Every reward module imports only torch/PIL at module level; transformers, the checkpoints and
TensorFlow are loaded inside the factories, the first time ``get_reward(name)`` is called.
"""

from __future__ import annotations

import importlib

from rewards.catalog import REWARD_MODULES

_REGISTRY_NAMES = ("REGISTRY", "Reward", "RewardInfo", "get_reward", "list_rewards", "register")
_CHECKPOINT_NAMES = ("CheckpointMismatchError", "MissingCheckpointError")

__all__ = ["REGISTRY", "CheckpointMismatchError", "MissingCheckpointError", "Reward", "RewardInfo", "get_reward",
           "list_rewards", "register"]


def load_all() -> None:
    """Import every reward module (registers them all)."""
    for mod in REWARD_MODULES:
        importlib.import_module(f"rewards.{mod}")


def __getattr__(name: str):
    if name in _REGISTRY_NAMES:
        load_all()
        return getattr(importlib.import_module("rewards.registry"), name)
    if name in _CHECKPOINT_NAMES:
        return getattr(importlib.import_module("rewards.checkpoints"), name)
    raise AttributeError(f"module 'rewards' has no attribute {name!r}")
