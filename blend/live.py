"""The engine behind the live web page (``blend.ui``): one loaded model, cached samples, a Pareto front.

Gradio-free, so it is tested without the optional extra. A :class:`LiveSession` holds the base model
with its adapters on **one** UNet, the reward functions and a cache of scored images keyed by
(model, method, weights, λ, prompt, seed, steps, guidance, η); a lock lets one request at a time
switch adapters on the shared UNet. Sampling is ``blend.sampler.sample`` with a ``blend.spec.BlendSpec``
(soups through ``blend.soup.ensure_soup_adapter``) and scoring is ``blend.experiment.score_images``:
a setting shown on the page gives the same numbers as ``run_DB.py`` for the same batch of seeds.

The Pareto front is a finished ``run_DB.py`` run (``results.jsonl`` or ``summary.json``), or, for the
built-in models, a small sweep computed at start-up with the same runner and kept on disk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from blend.experiment import Experiment, Objective, merge_results, run_units, save_config, score_images
from blend.report import summarise, write_summary
from blend.sampler import SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import PAPER_NAMES, BlendSpec
from diffusion_blend.images import to_pil
from diffusion_blend.logging import get_logger
from diffusion_blend.prompts import load_prompts

log = get_logger("live")

FRONT_WEIGHTS = (0.1, 0.3, 0.5, 0.7, 0.9)  # weight on adapter 1 in the start-up sweep (ends: the single adapters)
FRONT_METHODS = ("mpa", "soup")
MAX_FRONT_PROMPTS = 8
CACHE_SIZE = 4096  # scored images kept in memory (a toy image with its scores is a few kB)
MAX_SEEDS = 16


@dataclass
class ImageResult:
    """One scored image of the cache."""

    image: Image.Image
    rewards: dict[str, float]
    unet_evals: int
    seconds: float  # this image's share of its batch's wall time


@dataclass
class Generation:
    """What one request returns: one image per seed, with its scores and cost."""

    spec: BlendSpec
    prompt: str
    seeds: list[int]
    items: list[ImageResult]
    weights: tuple[float, ...]  # the trade-off w of the weighted reward (the sliders)
    reward_names: list[str]
    weighted: list[float | None]
    n_cached: int
    wall_seconds: float  # of this request (≈ 0 when everything came from the cache)
    settings: dict = field(default_factory=dict)

    def mean(self, name: str) -> float:
        return sum(it.rewards[name] for it in self.items) / len(self.items)

    @property
    def mean_weighted(self) -> float | None:
        vals = [w for w in self.weighted if w is not None]
        return sum(vals) / len(vals) if vals else None

    @property
    def unet_evals_per_image(self) -> float:
        return sum(it.unet_evals for it in self.items) / len(self.items)

    @property
    def seconds_per_image(self) -> float:
        return sum(it.seconds for it in self.items) / len(self.items)


def parse_seeds(text: str | int | float) -> list[int]:
    """'0, 1, 5' or '0-3' (inclusive) → [0, 1, 5] / [0, 1, 2, 3]; at most MAX_SEEDS distinct seeds ≥ 0."""
    if isinstance(text, (int, float)):
        text = str(int(text))
    seeds: list[int] = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                seeds += list(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError as exc:
            raise ValueError(f"seeds {text!r}: {part!r} is not a whole number or a range like 0-3") from exc
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        raise ValueError("give at least one seed, e.g. 0 or 0,1 or 0-3")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be ≥ 0, got {seeds}")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{len(seeds)} seeds requested; at most {MAX_SEEDS} per request")
    return seeds


def model_key(source: str, loras: dict) -> str:
    """A short id of the base model and the exact adapter files (part of every cache key)."""
    text = json.dumps([source, sorted((n, lw.sha256 or lw.source) for n, lw in loras.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class LiveSession:
    """A loaded model with its adapters and rewards; generates, scores and caches images one request at a time."""

    def __init__(self, bundle, loras: dict, adapters: Sequence[str], reward_fns: dict, *,
                 oracles: dict[str, str] | None = None, prompts: Sequence[str] = (), seeds: Sequence[int] = (0,),
                 sampler: SamplerConfig | None = None, weights: Sequence[float] | None = None,
                 lam: float = 1.0, reward_scales: Sequence[float] | None = None, model_name: str = "",
                 cache_size: int = CACHE_SIZE) -> None:
        self.bundle, self.loras = bundle, loras
        self.adapters = list(adapters)
        self.oracles = dict(oracles or {})  # adapter name in the UNet -> its target w, e.g. "w=(0.5,0.5)"
        self.reward_fns = reward_fns
        self.reward_names = list(reward_fns)
        self.reward_scales = tuple(reward_scales) if reward_scales else None
        self.prompts = list(prompts) or ["a red circle on a blue background"]
        self.seeds = list(seeds)
        self.sampler = sampler or SamplerConfig(steps=10, guidance=5.0)
        m = len(self.adapters)
        self.weights = tuple(weights) if weights else tuple([1.0 / m] * m if m else [])
        self.lam = lam
        self.model_name = model_name or bundle.source
        self.key = model_key(bundle.source, loras)
        self.lock = threading.Lock()  # adapters are switched on one shared UNet: one sampling call at a time
        self.cache_lock = threading.Lock()  # guards only the cache dict (held for microseconds)
        self.cache: OrderedDict[tuple, ImageResult] = OrderedDict()
        self.cache_size = cache_size
        self.visited: list[tuple[float, float]] = []  # mean rewards of settings shown so far (for the plot)
        self.front: dict[str, dict] | None = None
        self.front_note = "no front loaded"
        self.current: Generation | None = None  # the last setting shown (drawn as the current point)

    # ------------------------------------------------------------------ methods

    def method_choices(self) -> list[tuple[str, str]]:
        """(label shown, value) of every method the adapters allow, in table order."""
        m = len(self.adapters)
        out = [(PAPER_NAMES["base"], "base")]
        out += [(f"Single adapter: {a}", f"single:{a}") for a in self.adapters]
        if m > 1:
            out += [(PAPER_NAMES[k], k) for k in ("mpa", "mpa_ls", "soup", "soup_factors")]
        if m:
            out.append((PAPER_NAMES["kla"] + (" (base ↔ blend)" if m > 1 else " (base ↔ adapter)"), "kla"))
        out += [(f"MORL oracle {target}", f"oracle:{name}") for name, target in self.oracles.items()]
        return out

    def weights_from_sliders(self, values: Sequence[float]) -> tuple[float, ...]:
        """The slider values as a weight vector on the simplex.

        With two adapters the page shows one slider w (on adapter 1) and the weights are (w, 1 − w);
        with more, one slider per adapter, divided by their sum (shown on the page).
        """
        m = len(self.adapters)
        vals = [float(v) for v in values]
        if m == 0:
            return ()
        if m == 2 and len(vals) == 1:
            w = round(vals[0], 6)
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"w must lie in [0, 1], got {w}")
            return (w, round(1.0 - w, 6))
        if len(vals) != m:
            raise ValueError(f"{len(vals)} weights for {m} adapters {self.adapters}")
        if any(v < 0 for v in vals) or sum(vals) <= 0:
            raise ValueError(f"weights must be ≥ 0 with at least one > 0, got {vals}")
        total = sum(vals)
        w = [round(v / total, 6) for v in vals]
        w[-1] = round(1.0 - sum(w[:-1]), 6)
        return tuple(w)

    def spec_for(self, method: str, weights: Sequence[float], lam: float) -> BlendSpec:
        """The BlendSpec of a method value from :meth:`method_choices`."""
        weights = tuple(weights)
        if method == "base":
            return BlendSpec("base")
        if method.startswith("single:"):
            return BlendSpec("single", (method.split(":", 1)[1],))
        if method.startswith("oracle:"):
            name = method.split(":", 1)[1]
            return BlendSpec("single", (name,), role="oracle", extra={"target": self.oracles.get(name, name)})
        if len(self.adapters) == 1:
            weights = (1.0,)
        if method == "kla":
            return BlendSpec("kla", tuple(self.adapters), weights, lam=float(lam))
        return BlendSpec(method, tuple(self.adapters), weights)

    def objective(self, weights: Sequence[float]) -> Objective | None:
        """The weighted reward WR = Σ w_i r_i / s_i when there is one reward per adapter (as in run_DB.py)."""
        if len(self.reward_names) != len(self.adapters) or not self.adapters:
            return None
        return Objective(tuple(weights), tuple(self.reward_names), self.reward_scales)

    # ------------------------------------------------------------------ sampling

    def cache_key(self, spec: BlendSpec, prompt: str, seed: int, config: SamplerConfig) -> tuple:
        return (self.key, spec.label, prompt, int(seed), config.steps, config.guidance, config.eta)

    def generate(self, method: str, weights: Sequence[float], lam: float, prompt: str, seeds: Sequence[int],
                 steps: int | None = None, guidance: float | None = None, eta: float | None = None,
                 record: bool = True) -> Generation:
        """Images of ``method`` for (prompt, seed) with their rewards; cached images are not recomputed.

        The seeds missing from the cache are sampled together in one batch, so a fresh request equals
        ``sample(bundle, spec, [prompt] * len(seeds), seeds, config)`` scored by the reward functions.
        """
        prompt = (prompt or "").strip()
        if not prompt:
            raise ValueError("the prompt is empty; type one or pick an example")
        seeds = list(seeds)
        config = SamplerConfig(steps=int(steps if steps is not None else self.sampler.steps),
                               guidance=float(guidance if guidance is not None else self.sampler.guidance),
                               eta=float(eta if eta is not None else self.sampler.eta), batched=self.sampler.batched)
        weights = tuple(weights)
        spec = self.spec_for(method, weights, lam)
        start = time.perf_counter()
        keys = {s: self.cache_key(spec, prompt, s, config) for s in seeds}
        with self.cache_lock:  # a fully cached request never waits for the UNet (e.g. the front's sweep)
            found = {s: self.cache[k] for s, k in keys.items() if k in self.cache}
        todo = [s for s in seeds if s not in found]
        if todo:
            with self.lock:
                found.update(self._compute(spec, prompt, todo, config))
        with self.cache_lock:
            for k in keys.values():
                if k in self.cache:
                    self.cache.move_to_end(k)
        items = [found[s] for s in seeds]
        obj = self.objective(weights)
        gen = Generation(spec=spec, prompt=prompt, seeds=seeds, items=items, weights=weights,
                         reward_names=self.reward_names, weighted=[obj(it.rewards) if obj else None for it in items],
                         n_cached=len(seeds) - len(todo), wall_seconds=time.perf_counter() - start,
                         settings={"steps": config.steps, "guidance": config.guidance, "eta": config.eta})
        if record and len(self.reward_names) >= 2:
            point = (gen.mean(self.reward_names[0]), gen.mean(self.reward_names[1]))
            if point not in self.visited:
                self.visited.append(point)
        if record:
            self.current = gen
        return gen

    def _compute(self, spec: BlendSpec, prompt: str, seeds: list[int], config: SamplerConfig) -> dict[int, ImageResult]:
        """Sample and score the seeds in one batch (the caller holds the UNet lock); cache and return them."""
        if spec.is_soup:
            ensure_soup_adapter(self.bundle.unet, spec, self.loras)
        prompts = [prompt] * len(seeds)
        result = sample(self.bundle, spec, prompts, seeds, config)
        scores = score_images(self.reward_fns, result.images, prompts)
        out = {seed: ImageResult(image=pil, rewards={k: v[j] for k, v in scores.items()},
                                 unet_evals=result.unet_evals[j], seconds=result.seconds / len(seeds))
               for j, (seed, pil) in enumerate(zip(seeds, to_pil(result.images)))}
        with self.cache_lock:
            for seed, item in out.items():
                self.cache[self.cache_key(spec, prompt, seed, config)] = item
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        log.info("%s: %d image(s) in %.2f s", spec.label, len(seeds), result.seconds)
        return out

    def side_by_side(self, weights: Sequence[float], prompt: str, seed: int, **settings) -> list[Generation]:
        """The same prompt and seed under base, each single adapter, the ΔW soup and DB-MPA at ``weights``."""
        methods = ["base", *[f"single:{a}" for a in self.adapters]]
        if len(self.adapters) > 1:
            methods += ["soup", "mpa"]
        return [self.generate(m, weights, 1.0, prompt, [seed], record=False, **settings) for m in methods]

    # ------------------------------------------------------------------ Pareto front

    def load_front(self, run_dir: str | Path) -> dict[str, dict]:
        """The per-config means of a finished run_DB.py run (its summary.json, else its results.jsonl)."""
        self.front = load_front(run_dir, self.reward_names)
        self.front_note = f"Front: the run in {run_dir} (mean over its prompts and seeds per config)"
        return self.front

    def front_experiment(self, n_prompts: int = MAX_FRONT_PROMPTS, n_seeds: int = 1) -> Experiment:
        """The start-up sweep: base, the single adapters, and DB-MPA, the ΔW soup and DB-MPA-LS at FRONT_WEIGHTS."""
        if len(self.adapters) != 2:
            raise ValueError("the start-up front sweeps w over two adapters; pass --front DIR of a finished run")
        specs = [BlendSpec("base"), *[BlendSpec("single", (a,)) for a in self.adapters]]
        for method in FRONT_METHODS:
            specs += [BlendSpec(method, tuple(self.adapters), (w, round(1 - w, 6))) for w in FRONT_WEIGHTS]
        return Experiment(base_model=self.bundle.source, specs=specs, prompts=self.prompts[:n_prompts],
                          seeds=list(range(self.seeds[0], self.seeds[0] + n_seeds)),
                          sampler=SamplerConfig(self.sampler.steps, self.sampler.guidance, self.sampler.eta),
                          rewards=self.reward_names, batch_size=MAX_FRONT_PROMPTS * n_seeds)

    def compute_front(self, out_root: str | Path, n_prompts: int = MAX_FRONT_PROMPTS, n_seeds: int = 1) -> Path:
        """Run (or resume) the start-up sweep into ``out_root/<settings hash>/`` one unit at a time, sharing
        the lock with page requests; load it as the front. A finished sweep on disk costs nothing."""
        exp = self.front_experiment(n_prompts, n_seeds)
        cfg = {"model": self.key, "specs": [s.label for s in exp.specs], "prompts": exp.prompts, "seeds": exp.seeds,
               "sampler": [exp.sampler.steps, exp.sampler.guidance, exp.sampler.eta], "rewards": exp.rewards}
        out_dir = Path(out_root) / hashlib.sha256(json.dumps(cfg).encode()).hexdigest()[:12]
        start = time.perf_counter()
        if not (out_dir / "summary.json").exists():
            save_config(out_dir, exp, {"front_of": self.model_name,
                                       "adapters": {n: self.loras[n].sha256 for n in self.adapters}})
            self.front_note = f"Computing the front ({len(exp.specs)} configs) at start-up; it appears when done …"
            log.info("computing the Pareto front: %d configs × %d images into %s", len(exp.specs),
                     len(exp.prompts) * len(exp.seeds), out_dir)
            for spec in exp.specs:  # one config per lock hold, so page requests get in between
                with self.lock:
                    one = Experiment(base_model=exp.base_model, specs=[spec], prompts=exp.prompts, seeds=exp.seeds,
                                     sampler=exp.sampler, rewards=exp.rewards, batch_size=exp.batch_size)
                    run_units(one, self.bundle, self.loras, self.reward_fns, out_dir,
                              base_record={"source": self.bundle.source})
            rows, _ = merge_results(out_dir, exp, self.loras)
            write_summary(out_dir, rows, exp.rewards, [])
            log.info("Pareto front ready in %.1f s (%d images)", time.perf_counter() - start, len(rows))
        self.load_front(out_dir)
        try:
            shown = out_dir.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = Path("…", *out_dir.parts[-2:])
        self.front_note = (f"Front: {len(exp.specs)} configs, each the mean over {len(exp.prompts)} prompts × "
                           f"{len(exp.seeds)} seed(s); computed once at start-up, cached in {shown}")
        return out_dir


def load_front(run_dir: str | Path, reward_names: Sequence[str]) -> dict[str, dict]:
    """Per-config mean rewards (``blend.report.summarise`` format) of a finished run_DB.py run."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").exists():
        front = json.loads((run_dir / "summary.json").read_text())
    elif (run_dir / "results.jsonl").exists():
        from diffusion_blend.io import read_jsonl

        front = summarise(read_jsonl(run_dir / "results.jsonl"))
    else:
        raise FileNotFoundError(f"--front {run_dir}: no summary.json or results.jsonl there; give the --out_dir of "
                                f"a finished run_DB.py run")
    if not front:
        raise ValueError(f"--front {run_dir}: the run has no results")
    have = set(next(iter(front.values()))["rewards"])
    missing = [r for r in reward_names[:2] if r not in have]
    if missing:
        raise ValueError(f"--front {run_dir} scored {sorted(have)}, not {missing}; use a run with the same --rewards")
    return front


# ---------------------------------------------------------------------- building a session from flags

def session_from_args(args: argparse.Namespace, explicit: set[str]) -> LiveSession:
    """Load what ``run_DB.py`` would load for these flags (the toy default when no model is named)."""
    from blend import cli
    from diffusion.loading import load_bundle
    from diffusion.lora import load_adapter
    from rewards import get_reward

    toy_default = cli.apply_builtin_default(args, explicit)
    original = bool(args.t2i_path or args.vila_path or args.ir_weight is not None)
    adapters = cli._named_paths(args.lora, "--lora")
    if args.t2i_path:
        adapters.append(("t2i", args.t2i_path))
    if args.vila_path:
        adapters.append(("vila", args.vila_path))
    base_model = args.base_model or (cli.PAPER_BASE_MODEL if original else cli.DEFAULT_BASE_MODEL)
    builtin_demo = base_model == "builtin:tiny" and not adapters
    device = cli.resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    if device.type == "cpu" and dtype != torch.float32:
        raise SystemExit("error: use --dtype float32 on the CPU (half precision is for GPUs)")
    if toy_default:
        log.info("no model given: the toy world's model and adapters (python run_DB.py --ui --help for flags)")

    weights = cli._parse_weights(args.weights)
    if args.ir_weight is not None:
        weights.append((args.ir_weight, 1.0 - args.ir_weight))
    reward_names = [r for r in (args.rewards or ("image_reward,vila" if original else
                                                  "jpeg_compressibility,colorfulness")).split(",") if r]
    if args.prompt_file:
        prompts = load_prompts(args.prompt_file)
    elif args.prompts:
        prompts = [p.strip() for p in args.prompts.split("|") if p.strip()]
    else:
        prompts = list(cli.DEFAULT_PROMPTS)
    n_seeds = args.n_seeds if args.n_seeds is not None else 2
    if n_seeds < 1:
        raise SystemExit("error: --n_seeds must be ≥ 1")
    steps = args.steps or (10 if base_model.startswith("builtin:") else 50)
    try:
        lambdas = [float(x) for x in args.lambdas.split(",") if x.strip()]
    except ValueError as exc:
        raise SystemExit(f"error: --lambdas {args.lambdas!r} must be comma-separated numbers, e.g. 0.5,1.5") from exc

    reward_opts = cli._reward_options(args.reward_option)
    reward_fns = {name: get_reward(name, device=device, dtype=torch.float32, cache_dir=args.cache_dir,
                                   **reward_opts.get(name, {})) for name in reward_names}
    bundle = load_bundle(base_model, device=device, dtype=dtype, cache_dir=args.cache_dir)
    if builtin_demo:
        adapters = cli._write_demo_adapters(bundle, Path(args.out_dir) / "builtin_adapters")
    loras = {name: load_adapter(bundle.unet, name, path) for name, path in adapters}
    oracles = {}
    for i, (w_text, path) in enumerate(cli._named_paths(args.oracle, "--oracle")):
        w = cli._parse_weights([w_text])[0]
        name = f"oracle{i}_w" + "_".join(f"{x:g}" for x in w).replace(".", "p").replace("-", "m")
        loras[name] = load_adapter(bundle.unet, name, path)
        oracles[name] = Objective(w, tuple(reward_names)).label
    names = [a for a, _ in adapters]
    if weights and len(weights[0]) != len(names):
        raise SystemExit(f"error: weight vector {weights[0]} has {len(weights[0])} entries but there are "
                         f"{len(names)} adapters {names}")
    return LiveSession(bundle, loras, names, reward_fns, oracles=oracles, prompts=prompts,
                       seeds=list(range(args.seed_offset, args.seed_offset + n_seeds)),
                       sampler=SamplerConfig(steps=steps, guidance=args.guidance, eta=args.eta, batched=args.batched),
                       weights=weights[0] if weights else None, lam=lambdas[0] if lambdas else 1.0,
                       reward_scales=cli._reward_scales(args.reward_scale, reward_names),
                       model_name=base_model + (" (toy world)" if toy_default else ""))


# ---------------------------------------------------------------------- the Pareto plot

_SWEPT = ("mpa", "mpa_ls", "soup", "soup_factors")  # methods drawn as a front over w (styles: diffusion_blend.figures)


def pareto_image(session: LiveSession, current: Generation | None = None, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Reward 1 against reward 2: the front's weight sweeps, base, single adapters and oracles, the settings
    visited so far (grey) and the current one (red star). Drawn with matplotlib's object API (thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from diffusion_blend.figures import style

    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = session.reward_names
    if len(names) < 2:
        ax.text(0.5, 0.5, "the Pareto plot needs two rewards", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        r1, r2 = names[:2]
        if session.front:
            series: dict[str, list[tuple[float, float, float]]] = {}
            for s in session.front.values():
                x, y = s["rewards"][r1][0], s["rewards"][r2][0]
                if s["method"] == "base":
                    st = style("base")
                    ax.plot([x], [y], st.marker, color=st.color, ms=12, label="base")
                elif s["method"] == "single":
                    st = style("oracle" if s.get("role") == "oracle" else "single")
                    ax.plot([x], [y], st.marker, color=st.color, ms=8)
                    ax.annotate(s["display"].replace("Single adapter ", ""), (x, y), fontsize=8, xytext=(4, 4),
                                textcoords="offset points")
                elif s["method"] in _SWEPT:
                    series.setdefault(s["method"], []).append((s["weights"][0], x, y))
            ends = [session.front.get(f"single_{a}") for a in session.adapters[:2]]
            for method, pts in series.items():
                if len(session.adapters) == 2 and all(ends):  # w = 1 is adapter 1 alone, w = 0 adapter 2 alone
                    pts += [(w, e["rewards"][r1][0], e["rewards"][r2][0]) for w, e in zip((1.0, 0.0), ends)]
                pts.sort()
                ax.plot([p[1] for p in pts], [p[2] for p in pts], ms=5, **style(method).kwargs())
        if session.visited:
            ax.plot([p[0] for p in session.visited], [p[1] for p in session.visited], ".", color="#bbbbbb",
                    ms=8, label="visited", zorder=3)
        if current is not None:
            x, y = current.mean(r1), current.mean(r2)
            ax.plot([x], [y], "*", color="#d62728", ms=20, mec="white", mew=1.2, zorder=5,
                    label="current (this prompt and seeds)")
            ax.annotate(current.spec.display_name, (x, y), fontsize=8, color="#d62728", xytext=(8, -12),
                        textcoords="offset points")
        ax.set_xlabel(f"{r1} (higher is better)")
        ax.set_ylabel(f"{r2} (higher is better)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        ax.margins(0.1)
    fig.tight_layout()
    fig.canvas.draw()
    return Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB")
