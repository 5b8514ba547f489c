"""Run a grid of sampling methods over (prompt, seed) pairs, score every image, keep every result row.

Work is split into fixed units: for each method configuration, the (prompt, seed) pairs in
prompt-major order cut into batches of ``batch_size``. A unit is skipped when all of its rows (keyed by
everything that determines their numbers, :mod:`blend.store`) are stored and their images are on disk,
so re-running a command resumes it; a unit is always sampled whole, so batch composition does not depend
on where a run stopped. With ``--mix_weights`` the weight vectors of one method and adapter set share units
(per-image weights in one UNet batch, :meth:`Experiment.units`); the rows keep their keys. Rewards score the images as saved (uint8), so a reward added later is scored
from the PNGs without resampling. Each process appends its rows to its own part file; at the end
``results.jsonl`` is exported from all of them. Images are written atomically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from blend.baselines.costs import plain_costs
from blend.baselines.dispatch import sample_any
from blend.sampler import PromptEmbeddings, SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec
from blend.store import ResultStore, digest, finite_or_none, reward_key
from dbcore.images import to_pil
from dbcore.io import append_jsonl, atomic_path, write_json_atomic
from dbcore.logging import get_logger
from diffusion.bundle import ModelBundle
from diffusion.lora import LoraWeights

log = get_logger("experiment")


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

    def __call__(self, scores: dict[str, float | None]) -> float | None:
        """The weighted reward; None when a score is missing or non-finite (never averaged in)."""
        scales = self.scales or (1.0,) * len(self.rewards)
        if any(scores.get(r) is None for r in self.rewards):
            return None
        value, _ = finite_or_none(sum(w * scores[r] / s for w, r, s in zip(self.weights, self.rewards, scales)))
        return value


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
    dtype: str = "float32"
    reward_options: dict[str, dict[str, str]] = field(default_factory=dict)  # reward -> its loader options
    scales: tuple[float, ...] | None = None  # per reward, as in Objective.scales
    scheduler: str = "ddim"  # diffusion.schedulers name of the scheduler whose step the blended ε drives
    mix_weights: bool = False  # one UNet batch may hold several weight vectors of one method and adapter set

    def units(self) -> list[list[tuple[BlendSpec, tuple[int, int]]]]:
        """The batches of (spec, (prompt index, seed)) cells, each sampled in one call of at most ``batch_size``.

        By default a unit holds one spec: its (prompt, seed) pairs in prompt-major order cut into batches. With
        ``mix_weights``, the specs of one mixing group (:func:`mix_key`: same method, adapters and role; ε blends
        only) share units: their cells, pair-major (every weight vector of a pair next to each other), cut into
        batches, so K users with K weight vectors cost one call instead of K. A cell's keys and image do not
        depend on its unit (the images equal those of separate calls up to float rounding of the batch size, as
        for any ``--batch_size``)."""
        pairs = [(p, s) for p in range(len(self.prompts)) for s in self.seeds]
        groups: dict[object, list[BlendSpec]] = {}
        for i, spec in enumerate(self.specs):
            key = mix_key(spec) if self.mix_weights else None
            groups.setdefault(key if key is not None else ("alone", i), []).append(spec)
        out = []
        for specs in groups.values():
            cells = [(spec, ps) for ps in pairs for spec in specs]
            out += [cells[i:i + self.batch_size] for i in range(0, len(cells), self.batch_size)]
        return out


def mix_key(spec: BlendSpec) -> tuple | None:
    """Which specs may share a UNet batch with per-image weights (``--mix_weights``): ε blends of one method over
    the same adapters and role; None for soups (one merged ΔW per call), hybrids (a soup part) and the
    inference-time baselines (their own samplers)."""
    if spec.is_soup or spec.is_baseline or spec.hybrid_parts is not None:
        return None
    return (spec.method, tuple(spec.adapters), spec.role)


def slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:n] or "prompt"


def image_relpath(spec: BlendSpec, prompt: str, seed: int, sample_key: str) -> str:
    """Where the image of a sample lives; the sample key in the name keeps samples of other settings apart."""
    return f"images/{spec.label}/{slug(prompt)}_{digest(prompt)[:8]}/seed{seed}_{sample_key[:12]}.png"


class RowKeys:
    """The sample key and row key of every (config, prompt, seed) of an experiment (see :mod:`blend.store`)."""

    def __init__(self, exp: Experiment, loras: dict[str, LoraWeights]) -> None:
        self.exp = exp
        self.adapter_ids = {name: lw.sha256 for name, lw in loras.items()}
        base = exp.base_model
        if not base.startswith("builtin:") and Path(base).expanduser().exists():
            base = str(Path(base).expanduser().resolve())
        self.base = base
        # a base rebuilt at the same name (the toy's, which records its UNet's hash) must not reuse the old base's
        # rows; bases without such a record keep the key they always had
        from diffusion.sources import base_unet_sha256

        weights = base_unet_sha256(exp.base_model)
        self.base_weights = {"base_unet_sha256": weights} if weights else {}
        self.evaluation = {"rewards": {name: exp.reward_options.get(name, {}) for name in exp.rewards},
                           "scales": dict(zip(exp.rewards, exp.scales or (1.0,) * len(exp.rewards)))}

    def sample(self, spec: BlendSpec, prompt: str, seed: int) -> str:
        return digest({"base_model": self.base, **self.base_weights, "method": spec.method, "role": spec.role,
                       "adapters": [[a, self.adapter_ids[a]] for a in spec.adapters], "weights": list(spec.weights),
                       "lam": spec.lam if spec.info.takes_lam else None, "prompt": prompt, "seed": seed,
                       "sampler": asdict(self.exp.sampler), "dtype": self.exp.dtype, "scheduler": self.exp.scheduler,
                       **_spec_extras(spec)})

    def row(self, sample_key: str) -> str:
        return digest({"sample": sample_key, "evaluation": self.evaluation})


def _spec_extras(spec: BlendSpec) -> dict:
    """What else determines a spec's numbers: a weight schedule, a baseline's rewards and options (only when
    present, so that the keys of plain methods are those of earlier runs)."""
    out = {}
    if spec.schedule is not None:
        out["schedule"] = spec.schedule.to_dict()
    if spec.is_baseline:
        out.update(objective_rewards=list(spec.rewards), options=dict(spec.options))
    if spec.hybrid_parts is not None:
        out["hybrid"] = list(spec.hybrid_parts)
    return out


def quantize(images: torch.Tensor) -> torch.Tensor:
    """The images as saved (uint8 PNG) and read back, in [0, 1]: rewards score exactly what is on disk, so a
    reward added later (scored from the PNG) gives the number it would have given at sampling time."""
    return ((images.detach().float().clamp(0, 1) * 255).round() / 255).contiguous()


PNG_START = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of every complete PNG


def image_ok(path: Path) -> bool:
    """Is ``path`` a complete PNG? Cheap (16 bytes read): the signature and the final IEND chunk, which an empty or
    truncated file lacks. Damage inside a file is caught when it is read (:func:`run_units` samples it again)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != PNG_START:
                return False
            fh.seek(-8, 2)
            return fh.read(8) == PNG_END
    except OSError:
        return False


def _image_usable(path: Path) -> bool:
    """:func:`image_ok`, with a warning for a file that exists but is not a complete PNG (it is sampled again)."""
    if image_ok(path):
        return True
    if path.exists():
        log.warning("image %s is empty or truncated (%d bytes); sampling it again", path, path.stat().st_size)
    return False


def read_images(out_dir: Path, rels: Sequence[str]) -> torch.Tensor:
    arrays = [np.asarray(Image.open(out_dir / rel).convert("RGB"), dtype=np.float32) / 255 for rel in rels]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def score_images(reward_fns: dict, images: torch.Tensor, prompts: Sequence[str]) -> dict[str, list[float]]:
    out = {}
    with torch.no_grad():
        for name, fn in reward_fns.items():
            out[name] = [float(v) for v in fn(images, list(prompts)).detach().float().cpu()]
    return out


def _cached_scores(rows: dict[str, dict]) -> tuple[dict[tuple[str, str], float], dict[str, dict]]:
    """({(sample key, reward key): score}, {sample key: a row of it}) from stored rows."""
    scores, samples = {}, {}
    for row in rows.values():
        sk = row.get("sample_key")
        if sk is None:
            continue
        samples.setdefault(sk, row)
        for name, value in row["rewards"].items():
            if value is not None:  # a non-finite score is computed again
                scores[(sk, reward_key(name, row.get("reward_options", {}).get(name, {})))] = value
    return scores, samples


def _make_row(exp: Experiment, spec: BlendSpec, p: int, s: int, keys: RowKeys, sk: str, rel: str,
              scores: dict[str, float], info: dict, records: dict, image_flag: str | None,
              base_source: str) -> dict:
    rewards, flags = {}, {}
    for name in exp.rewards:
        value, flag = finite_or_none(scores[name]) if image_flag is None else (None, "image " + image_flag)
        rewards[name] = value
        if flag:
            flags[name] = flag
    if flags:
        log.warning("non-finite %s for config %s, prompt %d, seed %d: stored as null, left out of the means",
                    ", ".join(f"{k}={v}" for k, v in flags.items()), spec.label, p, s)
    row = {
        "config": spec.label, "method": spec.method, "display": spec.display_name, "role": spec.role,
        "weights": list(spec.weights), "lam": spec.lam if spec.info.takes_lam else None,
        "adapters": [records[a] for a in spec.adapters],
        "targets": exp.spec_objective.get(spec.label),
        "prompt_index": p, "prompt": exp.prompts[p], "seed": s, "image": rel,
        "rewards": rewards, "weighted_reward": {o.label: o(rewards) for o in exp.objectives},
        "seconds": info["seconds"], "unet_evals": info["unet_evals"],
        "steps": exp.sampler.steps, "guidance": exp.sampler.guidance, "eta": exp.sampler.eta,
        "batched": exp.sampler.batched, "dtype": exp.dtype, "base_model": base_source,
        "choices": info["choices"], "reward_options": {n: exp.reward_options.get(n, {}) for n in exp.rewards},
        "scheduler": exp.scheduler, "schedule": spec.schedule.to_dict() if spec.schedule is not None else None,
        "noise": exp.sampler.noise, "ls_draw": exp.sampler.ls_draw,
        "costs": info.get("costs") or plain_costs(info["unet_evals"]),
        "rewards_objective": list(spec.rewards) or None, "options": dict(spec.options) or None,
        "reward_scales": keys.evaluation["scales"], "sample_key": sk, "row_key": keys.row(sk),
    }
    if flags:
        row["nonfinite"] = flags
    return row


def run_units(exp: Experiment, bundle: ModelBundle, loras: dict[str, LoraWeights], reward_fns: dict,
              out_dir: Path, rank: int = 0, world_size: int = 1, base_record: dict | None = None) -> int:
    """Sample and score the units of this process (unit i goes to process i mod world_size).

    A (config, prompt, seed) is done when its row key is stored and its image is on disk. A unit with an
    undone pair whose image is missing is sampled whole (fixed batch composition); one whose images all
    exist (e.g. only a reward was added) is scored from the PNGs without sampling. Returns the rows written.
    """
    store = ResultStore(out_dir)
    rows, _ = store.load()
    keys = RowKeys(exp, loras)
    cached, samples = _cached_scores(rows)
    records = {name: asdict(AdapterRecord.of(name, lw)) for name, lw in loras.items()}
    base_source = (base_record or {}).get("source", exp.base_model)
    plan = []
    for i, cells in enumerate(exp.units()):
        if i % world_size != rank:
            continue
        sks = [keys.sample(spec, exp.prompts[p], s) for spec, (p, s) in cells]
        rels = [image_relpath(spec, exp.prompts[p], s, sk) for (spec, (p, s)), sk in zip(cells, sks)]
        ok = [_image_usable(out_dir / rel) for rel in rels]
        need = [j for j in range(len(cells)) if not (keys.row(sks[j]) in rows and ok[j])]
        if need:
            resample = any(not ok[j] or sks[j] not in samples for j in need)
            plan.append((cells, need, sks, rels, resample))
    # batch-major: every method of a batch of (prompt, seed) pairs in a row, so that the prompt embeddings of the
    # batch are encoded once and reused (PromptEmbeddings; the images are the same bit for bit; the first method of
    # a batch pays the encoding in its ``seconds``, a text-encoder pass, well under one UNet evaluation)
    plan.sort(key=lambda unit: [ps for _, ps in unit[0]])
    prompt_cache = PromptEmbeddings()
    n_sample = sum(1 for u in plan if u[-1])
    log.info("process %d/%d: %d units to sample, %d to score from saved images", rank, world_size, n_sample,
             len(plan) - n_sample)
    n_rows = 0
    for cells, need, sks, rels, resample in tqdm(plan, desc=f"sampling (rank {rank})",
                                                 disable=rank != 0 or not plan):
        specs = [spec for spec, _ in cells]
        spec = specs[0]  # the unit's only spec, or the first of a mixing group (which shares its kind)
        names = ", ".join(dict.fromkeys(sp.label for sp in specs))
        damaged: set[str] = set()
        if not resample:
            try:
                images = read_images(out_dir, [rels[j] for j in need])
            except (OSError, ValueError, SyntaxError) as exc:  # PIL.UnidentifiedImageError is an OSError
                log.warning("an image of config %s cannot be read (%s); sampling its unit again", names, exc)
                damaged = {rels[j] for j in need}
                resample = True
        if resample:
            if spec.soup_spec is not None:  # a soup, or a hybrid's soup steps: merge once (never mixed)
                ensure_soup_adapter(bundle.unet, spec.soup_spec, loras)
            prompts, seeds = [exp.prompts[p] for _, (p, _s) in cells], [s for _, (_p, s) in cells]
            one = spec if all(sp is spec for sp in specs) else specs  # one spec: the call of an unmixed run
            if spec.is_baseline:  # blend.baselines: best-of-N, CoDe, RGG, SMC; each counts its own costs
                result = sample_any(bundle, spec, prompts, seeds, exp.sampler, reward_fns)
            else:
                result = sample(bundle, one, prompts, seeds, exp.sampler, prompt_cache=prompt_cache)
            images = quantize(result.images)
            finite = torch.isfinite(result.images.flatten(1)).all(dim=1).tolist()
            pils = to_pil(result.images)
            for j, rel in enumerate(rels):
                if rel in damaged or not image_ok(out_dir / rel):
                    with atomic_path(out_dir / rel) as tmp:
                        pils[j].save(tmp, format="PNG")
            infos = {j: {"seconds": result.seconds / len(cells), "unet_evals": result.unet_evals[j],
                         "choices": result.choices[j] if result.choices else None,
                         "costs": result.costs[j] if result.costs else plain_costs(result.unet_evals[j]),
                         "image_flag": None if finite[j] else "nan"} for j in need}
            images = images[need]
        else:
            infos = {j: {k: samples[sks[j]].get(k) for k in ("seconds", "unet_evals", "choices", "costs")} | {
                "image_flag": (samples[sks[j]].get("nonfinite") or {}).get("image")} for j in need}
        prompts = [exp.prompts[cells[j][1][0]] for j in need]
        scores: dict[str, list[float]] = {}
        for name, fn in reward_fns.items():
            rk = reward_key(name, exp.reward_options.get(name, {}))
            hits = [cached.get((sks[j], rk)) for j in need]
            if all(h is not None for h in hits) and not resample:
                scores[name] = hits
            else:
                scores.update(score_images({name: fn}, images, prompts))
        new_rows = []
        for k, j in enumerate(need):
            info, (spec_j, (p, s)) = infos[j], cells[j]
            row = _make_row(exp, spec_j, p, s, keys, sks[j], rels[j],
                            {name: vals[k] for name, vals in scores.items()}, info, records, info["image_flag"],
                            base_source)
            if info["image_flag"]:
                row.setdefault("nonfinite", {})["image"] = info["image_flag"]
            new_rows.append(row)
        store.append(new_rows)
        n_rows += len(new_rows)
    return n_rows


def select_rows(out_dir: Path, exp: Experiment, loras: dict[str, LoraWeights]) -> tuple[list[dict], int]:
    """The rows this command asked for (its configs × prompts × seeds, its rewards and scales), in table
    order, with the weighted rewards of its objectives; and how many it asked for (missing ones are absent)."""
    rows, _ = ResultStore(out_dir).load()
    keys = RowKeys(exp, loras)
    out, wanted = [], 0
    for spec in exp.specs:
        for p, prompt in enumerate(exp.prompts):
            for s in exp.seeds:
                wanted += 1
                row = rows.get(keys.row(keys.sample(spec, prompt, s)))
                if row is None:
                    continue
                row = {**row, "prompt_index": p, "targets": exp.spec_objective.get(spec.label)}
                row["weighted_reward"] = {o.label: o(row["rewards"]) for o in exp.objectives}
                out.append(row)
    return out, wanted


def merge_results(out_dir: Path, exp: Experiment, loras: dict[str, LoraWeights]) -> tuple[list[dict], int]:
    """Export every stored row to ``results.jsonl``; return (this command's rows, the rows in the export)."""
    total = ResultStore(out_dir).export()
    rows, _ = select_rows(out_dir, exp, loras)
    return rows, total


def save_config(out_dir: Path, exp: Experiment, extra: dict) -> None:
    """Write this command's settings to ``config.json`` and append them to ``commands.jsonl``."""
    cfg = {"base_model": exp.base_model, "configs": [s.to_dict() for s in exp.specs], "prompts": exp.prompts,
           "seeds": exp.seeds, "sampler": asdict(exp.sampler), "rewards": exp.rewards,
           "objectives": [o.label for o in exp.objectives],
           "reward_scales": dict(zip(exp.rewards, exp.objectives[0].scales)) if exp.objectives and
           exp.objectives[0].scales else None, "batch_size": exp.batch_size, "dtype": exp.dtype,
           "reward_options": exp.reward_options, **extra}
    write_json_atomic(out_dir / "config.json", cfg)
    append_jsonl(out_dir / "commands.jsonl", [cfg])  # config.json is the latest command; this keeps them all
