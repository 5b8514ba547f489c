# ruff: noqa  -- kept as it was run for the issue-13 probes (docs/dpok/probes/probes.md), not library code
"""JPEG variance decomposition on the toy base: between prompts, within prompt, and the share of late-step noise."""
import sys
import time

import numpy as np
import torch

sys.path.insert(0, '.')
torch.set_num_threads(1)
from diffusion.ddim import ddim_step
from diffusion.loading import load_bundle
from dbcore.prompts import load_prompts
from dpok.rollout import PromptCache, sample_trajectories
from rewards import get_reward

t0 = time.time()
b = load_bundle('toy/weights/base')
b.scheduler.set_timesteps(10, device='cpu')
print('sched', b.scheduler.timesteps.tolist())
sched = b.scheduler
# per-step std
for t in sched.timesteps.tolist():
    x = torch.zeros(1, 3, 32, 32)
    st = ddim_step(sched, torch.zeros_like(x), t, x, 1.0, noise=torch.zeros_like(x))
    print('t', t, 'std', float(st.std.reshape(-1)[0]))
jpeg = get_reward('jpeg_compressibility')
cache = PromptCache(b)
prompts = load_prompts('dataset/toy_train_prompts.json')
rng = torch.Generator().manual_seed(0)
P, S = 8, 8
ps = [prompts[i] for i in np.random.default_rng(0).permutation(len(prompts))[:P]]
allp = [p for p in ps for _ in range(S)]
n = len(allp)
xT = torch.randn(n, 3, 32, 32, generator=rng); z = torch.randn(10, n, 3, 32, 32, generator=rng)
with torch.no_grad():
    tr = sample_trajectories(b, b.unet, allp, cache, xT, z, 5.0, 1.0)
    r = jpeg(b.decode(tr.final), allp).reshape(P, S).double()
print('mean', r.mean().item(), 'total sd', r.std().item(), 'within-prompt sd', r.std(1).mean().item(),
      'between prompt-mean sd', r.mean(1).std().item())
print('per-prompt sd', [round(v, 3) for v in r.std(1).tolist()])
# late noise: keep x_T and noises of steps < k, resample steps >= k (4 draws)
base_lat = tr.latents
for k in (3, 6, 8):
    rs = []
    for d in range(4):
        z2 = z.clone(); z2[k:] = torch.randn(10 - k, n, 3, 32, 32, generator=rng)
        with torch.no_grad():
            t2 = sample_trajectories(b, b.unet, allp, cache, xT, z2, 5.0, 1.0)
            rs.append(jpeg(b.decode(t2.final), allp).double())
    rs = torch.stack(rs)  # (4, n)
    print(f'resample steps >= {k}: within-trajectory sd {rs.std(0).mean().item():.4f}  (vs within-prompt {r.std(1).mean().item():.4f})')
print('seconds', time.time() - t0)
