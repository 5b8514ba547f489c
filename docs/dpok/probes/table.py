"""Markdown table of the issue-13 probes (``probe.py`` outputs), flags shown as changes from a reference probe:

    python docs/dpok/probes/table.py docs/dpok/probes/p7_kl15.json docs/dpok/probes/p*.json
"""

import json
import sys
from pathlib import Path


def flags(args: list[str]) -> dict[str, str]:
    out, key = {}, None
    for a in args:
        if a.startswith("--"):
            key = a
            out[key] = ""
        elif key is not None:
            out[key] = a
    return out


ref_path, paths = sys.argv[1], sys.argv[2:]
ref = flags(json.loads(Path(ref_path).read_text())["args"])
print(f"| probe | flags changed from `{Path(ref_path).stem}` | samples | KL (last 3 iterations) | mean grad norm | "
      "Δ jpeg (−kB) ± s.e. (z) | Δ align (nats) ± s.e. (z) |")
print("|---|---|---|---|---|---|---|")
for f in paths:
    d = json.loads(Path(f).read_text())
    rows, h, fl = d["rows"], d["heldout"], flags(d["args"])
    diff = [f"{k} {fl.get(k, '(unset)')}".strip() for k in sorted(set(fl) | set(ref)) if fl.get(k) != ref.get(k)]
    diff = [x if not x.endswith("(unset)") else x.replace("(unset)", "unset") for x in diff]
    kl = " ".join(f"{r['kl']:.1e}" for r in rows[-3:])
    g = f"{sum(r['grad_norm'] for r in rows) / len(rows):.3g}"
    cell = {k: f"{v['delta']:+.3f} ± {v['se_prompt']:.3f} ({v['delta'] / v['se_prompt']:+.1f})" for k, v in h.items()}
    print(f"| {Path(f).stem} | {', '.join(f'`{x}`' for x in diff) or '—'} | {rows[-1]['samples']} | {kl} | {g} | "
          f"{cell['jpeg_compressibility']} | {cell['toy_alignment']} |")
