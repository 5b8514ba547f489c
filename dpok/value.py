"""DPOK's value function ``ValueMulti`` (docs/method.md §4), with the text feature taken from the base model.

V(x_t, c, k): the flattened latent x_t concatenated with a text feature of the prompt, through three
``ConditionalLinear`` layers (Linear(x) ⊙ Embedding(k), ReLU after each) and a final Linear → 1.
DPOK's text feature is CLIP-L/14's text projection (768); here it is the base model's own pooled
text embedding (768 for SD 1.5), so no second text model is loaded.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConditionalLinear(nn.Module):
    """out = Linear(x) ⊙ Embedding(step); the embedding is initialised uniform in [0, 1) (DPOK)."""

    def __init__(self, num_in: int, num_out: int, n_steps: int) -> None:
        super().__init__()
        self.num_out = num_out
        self.lin = nn.Linear(num_in, num_out)
        self.embed = nn.Embedding(n_steps, num_out)
        self.embed.weight.data.uniform_()
        nn.init.xavier_normal_(self.lin.weight)

    def forward(self, x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return self.embed(step).view(-1, self.num_out) * self.lin(x)


class ValueMulti(nn.Module):
    """Value net. ``forward(latents (B,C,H,W), text (B,D), step (B,) long in [0, n_steps)) -> (B, 1)``."""

    def __init__(self, n_steps: int, sample_shape: tuple[int, ...], text_dim: int, hidden: int = 256) -> None:
        super().__init__()
        n_in = 1
        for s in sample_shape:
            n_in *= int(s)
        self.n_steps, self.sample_shape, self.text_dim = n_steps, tuple(sample_shape), text_dim
        self.lin1 = ConditionalLinear(n_in + text_dim, hidden, n_steps)
        self.lin2 = ConditionalLinear(hidden, hidden, n_steps)
        self.lin3 = ConditionalLinear(hidden, hidden, n_steps)
        self.lin4 = nn.Linear(hidden, 1)
        nn.init.xavier_normal_(self.lin4.weight)

    def forward(self, latents: torch.Tensor, text: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        x = torch.cat([latents.reshape(latents.shape[0], -1).float(), text.float()], dim=1)
        x = F.relu(self.lin1(x, step))
        x = F.relu(self.lin2(x, step))
        x = F.relu(self.lin3(x, step))
        return self.lin4(x)
