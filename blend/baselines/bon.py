"""Best-of-N over full samples: N chains per (prompt, seed) from a proposal, keep the best by Σ_i w_i r_i.

Proposals: the base model (``bon``), DB-MPA (``bon_mpa``) and DB-MPA-LS (``bon_ls``) with the spec's
adapter weights. Candidate 0 is the plain sampler's chain for the seed, so N = 1 is plain sampling.
The chains run through ``blend.sampler.sample`` (same loop, noise and LS draws as every other method),
with candidate k ≥ 1 seeded by ``derive_seed(seed, k)``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from blend.baselines.common import WeightedReward
from blend.baselines.costs import Costs
from blend.sampler import SamplerConfig, SampleResult, sample
from blend.spec import BlendSpec
from dbcore.seeding import derive_seed
from diffusion.bundle import ModelBundle


def proposal_spec(spec: BlendSpec) -> BlendSpec:
    """The plain method whose samples best-of-N selects from (``blend.methods.bon``)."""
    return spec.info.proposal_spec(spec)


@torch.no_grad()
def best_of_n(bundle: ModelBundle, spec: BlendSpec, prompts: Sequence[str], seeds: Sequence[int],
              config: SamplerConfig, objective: WeightedReward, max_rows: int = 64) -> SampleResult:
    """One image per (prompt, seed): the best of ``spec.option('N')`` proposal samples."""
    start = time.perf_counter()
    n_cand = int(spec.option("N", 1))
    if n_cand < 1:
        raise ValueError(f"best-of-N needs N ≥ 1, got {n_cand}")
    prop = proposal_spec(spec)
    rows = [(j, k) for j in range(len(prompts)) for k in range(n_cand)]  # image-major
    images, evals = [], []
    per = max(1, max_rows)
    for c in range(0, len(rows), per):
        chunk = rows[c:c + per]
        res = sample(bundle, prop, [prompts[j] for j, _ in chunk], [derive_seed(seeds[j], k) for j, k in chunk],
                     config)
        images.append(res.images)
        evals += res.unet_evals
    images = torch.cat(images)
    all_prompts = [prompts[j] for j, _ in rows]
    score = objective(images, all_prompts).view(len(prompts), n_cand)
    best = score.argmax(dim=1)
    idx = torch.arange(len(prompts)) * n_cand + best.cpu()
    costs = []
    for j in range(len(prompts)):
        costs.append(Costs(unet_forwards=sum(evals[j * n_cand:(j + 1) * n_cand]), vae_decodes=n_cand,
                           reward_evals=n_cand * objective.m).to_dict())
    return SampleResult(images=images[idx], unet_evals=[c["unet_forwards"] for c in costs],
                        seconds=time.perf_counter() - start, costs=costs)
