"""Run a grid of sampling methods over (prompt, seed) pairs, score every image, write resumable results.

Work is split into fixed units: for each method configuration, the (prompt, seed) pairs in
prompt-major order cut into batches of ``batch_size``. A unit is skipped when all of its images
already have result rows, so re-running a command resumes it; a unit is always recomputed whole,
so batch composition, and therefore every number, does not depend on where a run stopped. Each
process appends its rows to ``parts/results.rank{r}.jsonl`` (one fsync'd write per unit); the main
process merges them into ``results.jsonl`` (atomically) at the end. Images are written atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from blend.baselines.costs import plain_costs
from blend.baselines.dispatch import sample_any
from blend.sampler import SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec
from diffusion.bundle import ModelBundle
from diffusion.lora import LoraWeights
from diffusion_blend.images import to_pil
from diffusion_blend.io import append_jsonl, atomic_path, read_jsonl, write_json_atomic
from diffusion_blend.logging import get_logger

log = get_logger("experiment")

RESULTS = "results.jsonl"
PARTS_DIR = "parts"


@dataclass(frozen=True)
class Objective:
    """A weighted reward Σ_i w_i r_i / s_i over named rewards (the paper's WR; s_i = 1 unless given).

    The scales s_i put rewards of different units on one footing (e.g. each reward's standard deviation
    under the base model), so that w means the same for every reward.
    """

    weights: tuple[float, ...]
    rewards: tuple[str, ...]
    scales: tuple[float, ...] | None = None

    @property
    def label(self) -> str:
        return "w=(" + ",".join(f"{w:g}" for w in self.weights) + ")"

    def __call__(self, scores: dict[str, float]) -> float:
        scales = self.scales or (1.0,) * len(self.rewards)
        return float(sum(w * scores[r] / s for w, r, s in zip(self.weights, self.rewards, scales)))


@dataclass
class AdapterRecord:
    name: str
    path: str
    sha256: str | None
    fmt: str

    @classmethod
    def of(cls, name: str, lw: LoraWeights) -> AdapterRecord:
        return cls(name, lw.extra.get("file", lw.source), lw.sha256, lw.fmt)


@dataclass
class Experiment:
    """Everything that defines the numbers of a run (saved as ``config.json``)."""

    base_model: str
    specs: list[BlendSpec]
    prompts: list[str]
    seeds: list[int]
    sampler: SamplerConfig
    rewards: list[str]
    objectives: list[Objective] = field(default_factory=list)
    batch_size: int = 8
    spec_objective: dict[str, str] = field(default_factory=dict)  # config label -> objective label it targets

    def units(self) -> list[tuple[BlendSpec, list[tuple[int, int]]]]:
        pairs = [(p, s) for p in range(len(self.prompts)) for s in self.seeds]
        return [(spec, pairs[i:i + self.batch_size]) for spec in self.specs
                for i in range(0, len(pairs), self.batch_size)]


def slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:n] or "prompt"


def image_relpath(spec: BlendSpec, prompt_index: int, prompt: str, seed: int) -> str:
    return f"images/{spec.label}/{prompt_index:04d}_{slug(prompt)}/seed{seed}.png"


def row_key(row: dict) -> tuple[str, int, int]:
    return (row["config"], int(row["prompt_index"]), int(row["seed"]))


def load_rows(out_dir: Path) -> dict[tuple[str, int, int], dict]:
    """Every result row already written (merged file and per-process parts), keyed by (config, prompt, seed)."""
    rows = {}
    for path in [out_dir / RESULTS, *sorted((out_dir / PARTS_DIR).glob("results.rank*.jsonl"))]:
        for row in read_jsonl(path):
            rows[row_key(row)] = row
    return rows


def merge_results(out_dir: Path, exp: Experiment) -> list[dict]:
    """Write ``results.jsonl`` with the rows of this experiment in a fixed order; return them."""
    rows = load_rows(out_dir)
    order = {spec.label: i for i, spec in enumerate(exp.specs)}
    merged = sorted((r for r in rows.values() if r["config"] in order),
                    key=lambda r: (order[r["config"]], r["prompt_index"], r["seed"]))
    with atomic_path(out_dir / RESULTS) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in merged))
    for part in (out_dir / PARTS_DIR).glob("results.rank*.jsonl"):
        part.unlink()
    return merged


def score_images(reward_fns: dict, images: torch.Tensor, prompts: Sequence[str]) -> dict[str, list[float]]:
    out = {}
    with torch.no_grad():
        for name, fn in reward_fns.items():
            out[name] = [float(v) for v in fn(images, list(prompts)).detach().float().cpu()]
    return out


def run_units(exp: Experiment, bundle: ModelBundle, loras: dict[str, LoraWeights], reward_fns: dict,
              out_dir: Path, rank: int = 0, world_size: int = 1, base_record: dict | None = None) -> int:
    """Sample and score the units of this process (unit i goes to process i mod world_size)."""
    done = load_rows(out_dir)
    mine = [u for i, u in enumerate(exp.units()) if i % world_size == rank]
    todo = [(spec, pairs) for spec, pairs in mine
            if any((spec.label, p, s) not in done for p, s in pairs)]
    log.info("process %d/%d: %d of its %d units to run (%d already done)", rank, world_size, len(todo), len(mine),
             len(mine) - len(todo))
    part = out_dir / PARTS_DIR / f"results.rank{rank}.jsonl"
    records = {name: asdict(AdapterRecord.of(name, lw)) for name, lw in loras.items()}
    n_images = 0
    for spec, pairs in tqdm(todo, desc=f"sampling (rank {rank})", disable=rank != 0 or not todo):
        if spec.is_soup:
            ensure_soup_adapter(bundle.unet, spec, loras)
        prompts = [exp.prompts[p] for p, _ in pairs]
        seeds = [s for _, s in pairs]
        if spec.is_baseline:  # blend.baselines: best-of-N, CoDe, RGG, SMC; each counts its own costs
            result = sample_any(bundle, spec, prompts, seeds, exp.sampler, reward_fns)
        else:
            result = sample(bundle, spec, prompts, seeds, exp.sampler)
        scores = score_images(reward_fns, result.images, prompts)
        pils = to_pil(result.images)
        rows = []
        for j, (p, s) in enumerate(pairs):
            if (spec.label, p, s) in done:
                continue
            rel = image_relpath(spec, p, exp.prompts[p], s)
            with atomic_path(out_dir / rel) as tmp:
                pils[j].save(tmp, format="PNG")
            r = {name: vals[j] for name, vals in scores.items()}
            rows.append({
                "config": spec.label, "method": spec.method, "display": spec.display_name, "role": spec.role,
                "weights": list(spec.weights), "lam": spec.lam if spec.method == "kla" else None,
                "adapters": [records[a] for a in spec.adapters],
                "targets": exp.spec_objective.get(spec.label),
                "prompt_index": p, "prompt": exp.prompts[p], "seed": s, "image": rel,
                "rewards": r, "weighted_reward": {o.label: o(r) for o in exp.objectives},
                "seconds": result.seconds / len(pairs), "unet_evals": result.unet_evals[j],
                "steps": exp.sampler.steps, "guidance": exp.sampler.guidance, "eta": exp.sampler.eta,
                "scheduler": type(bundle.scheduler).__name__,
                "schedule": spec.schedule.to_dict() if spec.schedule is not None else None,
                "noise": exp.sampler.noise, "ls_draw": exp.sampler.ls_draw,
                "base_model": (base_record or {}).get("source", exp.base_model),
                "choices": result.choices[j] if result.choices else None,
                "costs": result.costs[j] if result.costs else plain_costs(result.unet_evals[j]),
                "rewards_objective": list(spec.rewards) or None,
                "options": dict(spec.options) or None,
            })
        append_jsonl(part, rows)
        n_images += len(rows)
    return n_images


def save_config(out_dir: Path, exp: Experiment, extra: dict) -> None:
    cfg = {"base_model": exp.base_model, "configs": [s.to_dict() for s in exp.specs], "prompts": exp.prompts,
           "seeds": exp.seeds, "sampler": asdict(exp.sampler), "rewards": exp.rewards,
           "objectives": [o.label for o in exp.objectives],
           "reward_scales": dict(zip(exp.rewards, exp.objectives[0].scales)) if exp.objectives and
           exp.objectives[0].scales else None, "batch_size": exp.batch_size, **extra}
    write_json_atomic(out_dir / "config.json", cfg)
