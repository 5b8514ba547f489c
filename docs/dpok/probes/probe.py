# ruff: noqa  -- kept as it was run for the issue-13 probes (docs/dpok/probes/probes.md), not library code
"""Short DPOK probe on the toy: per-iteration train reward / kl / grad_norm, then held-out paired eval (12 x 4)."""
import json
import sys
import time

sys.path.insert(0, '.'); sys.path.insert(0, 'scripts')
import torch

torch.set_num_threads(1)
from dpok_toy import TOY_PRESET, HeldOut, paired

from dbcore.prompts import load_prompts
from dpok.config import parse_args
from dpok.trainer import ADAPTER, Trainer

name, minutes, rest = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
out = f'outputs/probe/{name}'
cfg, _ = parse_args(TOY_PRESET + ['--output_dir', out, '--overwrite_output_dir', 'True', '--save_interval', '100000'] + rest)
tr = Trainer(cfg)
t0 = time.time(); rows = []
def cb(t, m):
    r = {k: m.get(k) for k in ('reward/mean', 'kl', 'grad_norm', 'ratio_clipped_frac', 'policy_loss', 'rollout_seconds', 'policy_seconds')}
    r['it'] = t.counters.iteration; r['samples'] = t.counters.samples_seen
    rows.append(r)
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    if time.time() - t0 > minutes * 60:
        t._stop = True
tr.after_iteration.append(cb)
tr.save = lambda *a, **k: None
try:
    tr.train()
except KeyboardInterrupt:
    pass
print('train s', time.time() - t0, flush=True)
test = load_prompts('dataset/toy_test_prompts.json')
ho = HeldOut(test, 4)
res = paired(ho.score(tr, ADAPTER), ho.score(tr, None), len(test))
print('HELDOUT', json.dumps({n: {k: round(v, 4) for k, v in d.items()} for n, d in res.items()}))
json.dump({'rows': rows, 'heldout': res, 'args': rest}, open(out + '.json', 'w'))
