"""Reward registry. Importing it registers every reward but loads no model (see ``registry``).

Every reward module imports only torch/PIL at module level; transformers, the checkpoints and
TensorFlow are loaded inside the factories, the first time ``get_reward(name)`` is called.
"""

from rewards import aesthetic, clip_score, hps, image_reward, jpeg, pickscore, pixel_stats, toy, vila  # noqa: F401
from rewards.checkpoints import CheckpointMismatchError, MissingCheckpointError
from rewards.registry import REGISTRY, Reward, RewardInfo, get_reward, list_rewards, register

__all__ = ["REGISTRY", "CheckpointMismatchError", "MissingCheckpointError", "Reward", "RewardInfo", "get_reward",
           "list_rewards", "register"]
