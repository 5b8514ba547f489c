# ruff: noqa  -- kept as it was run for the issue-13 probes (docs/dpok/probes/probes.md), not library code
import sys
import time

import numpy as np
import torch

sys.path.insert(0, '.')
torch.set_num_threads(1)
from diffusion.loading import load_bundle
from dbcore.prompts import load_prompts
from dpok.rollout import PromptCache, sample_trajectories
from rewards import get_reward

t0 = time.time()
b = load_bundle('toy/weights/base'); b.scheduler.set_timesteps(10, device='cpu')
jpeg = get_reward('jpeg_compressibility'); cache = PromptCache(b)
prompts = load_prompts('dataset/toy_train_prompts.json')
rng = torch.Generator().manual_seed(0)
P, S = 8, 4
ps = [prompts[i] for i in np.random.default_rng(0).permutation(len(prompts))[:P]]
allp = [p for p in ps for _ in range(S)]; n = len(allp)
xT = torch.randn(n, 3, 32, 32, generator=rng); z = torch.randn(10, n, 3, 32, 32, generator=rng)
for k in (8, 7):
    rs = []
    for d in range(4):
        z2 = z.clone(); z2[k:] = torch.randn(10 - k, n, 3, 32, 32, generator=rng)
        with torch.no_grad():
            t2 = sample_trajectories(b, b.unet, allp, cache, xT, z2, 5.0, 1.0)
            rs.append(jpeg(b.decode(t2.final), allp).double())
    rs = torch.stack(rs)
    print(f'resample steps >= {k}: within-trajectory sd {rs.std(0).mean().item():.4f}', flush=True)
print('seconds', time.time() - t0)
