"""Markdown table of the issue-13 probes (``probe.py`` outputs): python docs/dpok/probes/table.py docs/dpok/probes/*.json"""

import json
import sys
from pathlib import Path

print("| probe | changed vs the reference (`p7_kl15`) | samples | KL (last 3 it.) | grad norm | "
      "Δ jpeg (−kB) ± s.e. (z) | Δ align (nats) ± s.e. (z) |")
print("|---|---|---|---|---|---|---|")
for f in sys.argv[1:]:
    d = json.loads(Path(f).read_text())
    rows, h = d["rows"], d["heldout"]
    kl = " ".join(f"{r['kl']:.1e}" for r in rows[-3:])
    g = f"{sum(r['grad_norm'] for r in rows) / len(rows):.3g}"
    cell = {k: f"{v['delta']:+.3f} ± {v['se_prompt']:.3f} ({v['delta'] / v['se_prompt']:+.1f})" for k, v in h.items()}
    print(f"| {Path(f).stem} | `{' '.join(d['args'])}` | {rows[-1]['samples']} | {kl} | {g} | "
          f"{cell['jpeg_compressibility']} | {cell['toy_alignment']} |")
