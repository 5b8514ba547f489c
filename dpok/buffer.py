"""DPOK's replay buffer of sampling transitions, kept on the CPU; the newest ``capacity`` are kept.

One transition is (x_t, x_{t−1}, step index k, final reward R of its trajectory, old log-prob,
prompt). Prompt embeddings are not stored per transition (DPOK stored two 77×768 tensors each);
the trainer keeps one embedding per distinct prompt instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

FIELDS = ("state", "next_state", "step", "reward", "log_prob")


@dataclass
class Batch:
    state: torch.Tensor  # (B, C, H, W) x_t
    next_state: torch.Tensor  # (B, C, H, W) x_{t−1}
    step: torch.Tensor  # (B,) long, index in the inference grid (0 = first, noisiest step)
    reward: torch.Tensor  # (B,) final reward of the trajectory (or its advantage target)
    log_prob: torch.Tensor  # (B,) log π_old(x_{t−1} | x_t)
    prompts: list[str]


@dataclass
class ReplayBuffer:
    capacity: int
    data: dict[str, torch.Tensor] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompts)

    def add(self, state: torch.Tensor, next_state: torch.Tensor, step: torch.Tensor, reward: torch.Tensor,
            log_prob: torch.Tensor, prompts: list[str]) -> None:
        n = state.shape[0]
        new = {"state": state, "next_state": next_state, "step": step.long(), "reward": reward.float(),
               "log_prob": log_prob.float()}
        for k, v in new.items():
            if v.shape[0] != n:
                raise ValueError(f"buffer.add: {k} has {v.shape[0]} rows, state has {n}")
            v = v.detach().cpu()
            self.data[k] = torch.cat([self.data[k], v]) if k in self.data else v.clone()
        self.prompts.extend(prompts)
        if len(self.prompts) > self.capacity:
            for k in FIELDS:
                self.data[k] = self.data[k][-self.capacity:]
            self.prompts = self.prompts[-self.capacity:]

    def sample(self, size: int, rng: np.random.Generator) -> Batch:
        """``size`` distinct transitions, uniformly (DPOK's ``np.random.choice(replace=False)``)."""
        if len(self) == 0:
            raise ValueError("the replay buffer is empty")
        idx = rng.choice(len(self), size=min(size, len(self)), replace=False)
        return self.gather(idx)

    def gather(self, idx) -> Batch:
        """The transitions at positions ``idx`` (0 = oldest kept; negative counts from the newest)."""
        t = torch.as_tensor(idx, dtype=torch.long)
        return Batch(**{k: self.data[k][t] for k in FIELDS}, prompts=[self.prompts[int(i)] for i in idx])

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "data": dict(self.data), "prompts": list(self.prompts)}

    def load_state_dict(self, sd: dict) -> None:
        self.capacity = int(sd["capacity"])
        self.data = dict(sd["data"])
        self.prompts = list(sd["prompts"])
