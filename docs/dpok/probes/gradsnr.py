# ruff: noqa  -- kept as it was run for the issue-13 probes (docs/dpok/probes/probes.md), not library code
"""Gradient SNR per DDIM step at the base (LoRA B = 0): cos between the policy gradients of independent halves."""
import sys
import time

sys.path.insert(0, '.'); sys.path.insert(0, 'scripts')
import torch

torch.set_num_threads(1)
from dpok_toy import TOY_PRESET

from dpok.buffer import Batch
from dpok.config import parse_args
from dpok.trainer import Trainer

reward = sys.argv[1] if len(sys.argv) > 1 else 'jpeg_compressibility'
nrol = int(sys.argv[2]) if len(sys.argv) > 2 else 2
cfg, _ = parse_args(TOY_PRESET + ['--output_dir', 'outputs/probe/gs', '--overwrite_output_dir', 'True', '--reward', reward,
                                  '--num_samples', '4', '--g_batch_size', '8', '--advantage_norm', 'prompt', '--v_flag', '0',
                                  '--reward_weight', '1', '--kl_weight', '0', '--ratio_clip', '0.2'])
tr = Trainer(cfg)
t0 = time.time()
grads = {}  # (rollout, half, step) -> flat grad
for g in range(nrol):
    ro = tr.rollout(g, 0)
    n0 = len(tr.buffer)
    tr.add_to_buffer(ro, g, 0)
    n = len(tr.buffer) - n0
    idx = torch.arange(n0, n0 + n)
    b = tr.buffer.gather(idx.tolist())
    for k in sorted(set(b.step.tolist())):
        sel = (b.step == k).nonzero().reshape(-1)
        for half in (0, 1):
            # halves: by prompt group (samples 0-1 vs 2-3 of each prompt) -> independent noise
            sample_i = sel  # transitions in order sample-major: sample i has steps contiguous
            hs = [j for j in sel.tolist() if ((j // 9) % 4 < 2) == (half == 0)]
            sub = Batch(b.state[hs], b.next_state[hs], b.step[hs], b.reward[hs], b.log_prob[hs], [b.prompts[j] for j in hs])
            tr.optimizer.zero_grad()
            out = tr.policy_microbatch(sub, use_kl=False)
            (out['loss'] * len(hs)).backward()
            grads[(g, half, k)] = torch.cat([p.grad.reshape(-1).clone() for p in tr.lora_params])
print('seconds', round(time.time() - t0), 'stds', [round(s, 4) for s in tr.step_std])
def cos(a, b): return float(a @ b / (a.norm() * b.norm() + 1e-30))
steps = sorted({k for (_, _, k) in grads})
def tot(g, h, ks): return sum(grads[(g, h, k)] for k in ks)
res = {}
for name, ks in [('all', steps), ('no_last', [k for k in steps if k != 8]), ('0-5', [k for k in steps if k <= 5]), ('6-7', [6, 7])] + [(f's{k}', [k]) for k in steps]:
    cs = []
    for g in range(nrol):
        for g2 in range(nrol):
            for h in (0, 1):
                for h2 in (0, 1):
                    if (g, h) < (g2, h2):
                        cs.append(cos(tot(g, h, ks), tot(g2, h2, ks)))
    norm = sum(tot(g, h, ks).norm().item() for g in range(nrol) for h in (0, 1)) / (2 * nrol)
    res[name] = (round(sum(cs) / len(cs), 4), round(norm, 5))
    print(name, 'mean cos', res[name][0], 'mean |g|', res[name][1], flush=True)
