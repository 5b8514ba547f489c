"""Reward registry. Importing it registers every reward but loads no model (see ``registry``)."""

from rewards import image_reward, jpeg, pixel_stats  # noqa: F401  (registration side effects)
from rewards.registry import REGISTRY, Reward, RewardInfo, get_reward, list_rewards, register

__all__ = ["REGISTRY", "Reward", "RewardInfo", "get_reward", "list_rewards", "register"]
