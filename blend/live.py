"""The engine behind the live web page (``blend.ui``): one loaded model, cached samples, a Pareto front.

Gradio-free, so it is tested without the optional extra. A :class:`LiveSession` holds the base model
with its adapters on **one** UNet, the reward functions and a cache of scored images keyed by
(model, method, weights, λ, prompt, seed, steps, guidance, η); a lock lets one request at a time
switch adapters on the shared UNet. Sampling is ``blend.sampler.sample`` with a ``blend.spec.BlendSpec``
(soups through ``blend.soup.ensure_soup_adapter``) and scoring is ``blend.experiment.score_images``:
a setting shown on the page gives the same numbers as ``run_DB.py`` for the same batch of seeds.

Requests that arrive together are served by one sampler call (one spec per image, :meth:`LiveSession.generate_many`),
so ten users with ten weight vectors cost one UNet batch per step, not ten calls.

The Pareto front is a finished ``run_DB.py`` run (``results.jsonl`` or ``summary.json``), or, for the
built-in models, a small sweep computed in the background with the same runner (in small chunks that give way to
page requests) and kept on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from blend.experiment import Experiment, Objective, merge_results, run_units, save_config, score_images
from blend.methods import Method, get_method, lam_method, list_methods, reference_method
from blend.report import summarise, write_summary
from blend.sampler import SamplerConfig, sample
from blend.soup import ensure_soup_adapter
from blend.spec import BlendSpec
from dbcore.images import to_pil
from dbcore.logging import get_logger

if TYPE_CHECKING:
    from blend.run_plan import RunPlan

log = get_logger("live")



def _names(where: Callable[[Method], bool]) -> tuple[str, ...]:
    return tuple(m.name for m in list_methods(where))


# The page's methods, asked of the method registry (blend/methods), in table order
BASE = _names(lambda m: m.min_adapters == 0)[0]  # the pretrained model, no adapter
SINGLE = _names(lambda m: m.min_adapters == 1 and not m.needs_weights and not m.plan_only)[0]  # one adapter alone
ORACLE = _names(lambda m: m.plan_only)[0]  # a MORL oracle: SINGLE specs with role "oracle"
# the weighted blends over the adapters with no λ (DB-MPA, DB-MPA-LS, the soups): offered, and drawn as fronts over w
SWEPT = _names(lambda m: m.needs_weights and not (m.is_baseline or m.plan_only or m.takes_lam or m.hybrid_parts))
SOUPS = _names(lambda m: m.is_soup)  # need a merged adapter (plain LoRAs only)
PAGE_METHODS = (BASE, SINGLE, *SWEPT, lam_method(), ORACLE)  # the dropdown's families (run_DB.py --methods)
FRONT_WEIGHTS = (0.1, 0.3, 0.5, 0.7, 0.9)  # weight on adapter 1 in the start-up sweep (ends: the single adapters)
FRONT_METHODS = (reference_method(), SOUPS[0])


def takes_lam(value: str) -> bool:
    """Does the method value of :meth:`LiveSession.method_choices` (``'kla'``, ``'single:a'``) take λ?"""
    return get_method(value.split(":", 1)[0]).takes_lam
MAX_FRONT_PROMPTS = 8
FRONT_CHUNK = 2  # prompts per chunk of the start-up sweep: a page request waits for one chunk at most
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
    """A short id of the base model (its UNet's hash where the base records one) and the exact adapter files (part of
    every cache key)."""
    from diffusion.sources import base_unet_sha256

    adapters = sorted((n, lw.sha256 or lw.source) for n, lw in loras.items())
    text = json.dumps([source, base_unet_sha256(source), adapters])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Request:
    """One page request: a method value of :meth:`LiveSession.method_choices` (or its label), the weights on the
    simplex, λ, the prompt, the seeds and the sampler settings (None: the session's)."""

    method: str
    weights: tuple[float, ...]
    lam: float
    prompt: str
    seeds: list[int]
    steps: int | None = None
    guidance: float | None = None
    eta: float | None = None


@dataclass
class Progress:
    """What the UNet is doing now (read by the page's progress bar): step ``step`` of ``steps`` for ``images``."""

    step: int = 0
    steps: int = 0
    images: int = 0
    requests: int = 0
    busy: bool = False
    label: str = ""


class LiveSession:
    """A loaded model with its adapters and rewards; generates, scores and caches images.

    Page requests that arrive together are sampled in one call of the sampler (one UNet batch per step, one spec
    per image): different weight vectors cost one batch, not one call each. The UNet is shared, so a lock lets one
    sampling call run at a time; page requests go before the start-up front sweep (:meth:`compute_front`), which
    works in small chunks between them."""

    def __init__(self, bundle, loras: dict, adapters: Sequence[str], reward_fns: dict, *,
                 oracles: dict[str, str] | None = None, prompts: Sequence[str] = (), seeds: Sequence[int] = (0,),
                 sampler: SamplerConfig | None = None, weights: Sequence[float] | None = None,
                 lam: float = 1.0, reward_scales: Sequence[float] | None = None, model_name: str = "",
                 cache_size: int = CACHE_SIZE, scheduler_name: str = "ddim",
                 weights_end: Sequence[float] | None = None, schedule_kind: str = "linear",
                 methods: Sequence[str] | None = None, soups: bool = True,
                 wr_rewards: Sequence[str] | None = None) -> None:
        self.bundle, self.loras = bundle, loras
        self.adapters = list(adapters)
        self.oracles = dict(oracles or {})  # adapter name in the UNet -> its target w, e.g. "w=(0.5,0.5)"
        self.reward_fns = reward_fns
        self.reward_names = list(reward_fns)
        # the rewards of WR, one per adapter (run_DB.py's --rewards); the rest (--report_rewards) are shown beside
        self.wr_rewards = list(wr_rewards) if wr_rewards else self.reward_names
        self.reward_scales = tuple(reward_scales) if reward_scales else None
        self.prompts = list(prompts) or ["a red circle on a blue background"]
        self.seeds = list(seeds)
        self.sampler = sampler or SamplerConfig(steps=10, guidance=5.0)
        self.scheduler_name = scheduler_name  # the bundle's scheduler is already this one (session_from_plan)
        self.weights_end = tuple(weights_end) if weights_end else None  # --weights_end: w(t) ends here
        self.schedule_kind = schedule_kind
        self.methods = set(methods) if methods else None  # --methods: the method families offered (None: all)
        self.soups = soups  # False when a member cannot be merged (a full UNet, text-encoder LoRA parts)
        m = len(self.adapters)
        self.weights = tuple(weights) if weights else tuple([1.0 / m] * m if m else [])
        self.lam = lam
        self.model_name = model_name or bundle.source
        self.key = model_key(bundle.source, loras)
        self.lock = threading.Lock()  # adapters are switched on one shared UNet: one sampling call at a time
        self.cache_lock = threading.Lock()  # guards only the cache dict (held for microseconds)
        self._turn = threading.Condition()  # page requests waiting for the UNet go before the front sweep
        self._waiting = 0
        self.cache: OrderedDict[tuple, ImageResult] = OrderedDict()
        self.cache_size = cache_size
        self.visited: list[tuple[float, float]] = []  # mean rewards of settings shown so far (for the plot)
        self.front: dict[str, dict] | None = None
        self.front_note = "no front loaded"
        self.front_progress = (0, 0)  # (chunks done, chunks) of the start-up sweep while it runs
        self.front_prompts = 0  # prompts × seeds behind each point of the front (0: unknown)
        self.current: Generation | None = None  # the last setting shown (drawn as the current point)
        self.progress = Progress()
        self.n_sample_calls = 0  # sampler calls made for page requests (a batch of requests is one call)

    # ------------------------------------------------------------------ methods

    def method_choices(self) -> list[tuple[str, str]]:
        """(label shown, value) of every method the adapters (and --methods) allow, in table order."""
        m = len(self.adapters)
        out = [(get_method(BASE).display_name, BASE)]
        out += [(f"{get_method(SINGLE).display_name}: {a}", f"{SINGLE}:{a}") for a in self.adapters]
        if m > 1:
            out += [(get_method(k).display_name, k) for k in SWEPT if self.soups or k not in SOUPS]
        if m:
            kla = lam_method()
            out.append((get_method(kla).display_name + (" (base ↔ blend)" if m > 1 else " (base ↔ adapter)"), kla))
        oracle = get_method(ORACLE).display_name
        out += [(f"{oracle} {target}", f"{ORACLE}:{name}") for name, target in self.oracles.items()]
        if self.methods is not None:
            out = [(label, v) for label, v in out if v.split(":", 1)[0] in self.methods]
        return out

    def resolve_method(self, text: str) -> str:
        """A method value from its value ('mpa', 'single:a') or the label the page shows ('DB-MPA'), any case."""
        text = str(text or "").strip()
        choices = self.method_choices()
        for label, value in choices:
            if text == value or text.casefold() in (label.casefold(), label.split(" (")[0].casefold()):
                return value
        shown = "; ".join(f"{v} ({label})" for label, v in choices)
        raise ValueError(f"method {text!r} is not offered here; choose a value or its name: {shown}")

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
        """The BlendSpec of a method value from :meth:`method_choices` (or its label); λ acts on DB-KLA only.

        With --weights_end, DB-MPA, DB-MPA-LS and DB-KLA blend with w(t) from ``weights`` to it (as run_DB.py)."""
        method = self.resolve_method(method)
        weights = tuple(weights)
        if method == BASE:
            return BlendSpec(BASE)
        if method.startswith(f"{SINGLE}:"):
            return BlendSpec(SINGLE, (method.split(":", 1)[1],))
        if method.startswith(f"{ORACLE}:"):
            name = method.split(":", 1)[1]
            return BlendSpec(SINGLE, (name,), role=ORACLE, extra={"target": self.oracles.get(name, name)})
        if len(self.adapters) == 1:
            weights = (1.0,)
        spec = (BlendSpec(method, tuple(self.adapters), weights, lam=float(lam)) if takes_lam(method)
                else BlendSpec(method, tuple(self.adapters), weights))
        if self.weights_end and len(self.adapters) > 1 and get_method(method).schedulable:
            from blend.schedule import WeightSchedule

            spec.with_weights(self.weights_end)  # the end vector is a valid blend too
            spec = BlendSpec(spec.method, spec.adapters, spec.weights, spec.lam, spec.role,
                             extra={**spec.extra, "schedule": WeightSchedule(weights, self.weights_end,
                                                                             self.schedule_kind)})
        return spec

    def objective(self, weights: Sequence[float]) -> Objective | None:
        """The weighted reward WR = Σ w_i r_i / s_i when there is one reward per adapter (as in run_DB.py)."""
        if len(self.wr_rewards) != len(self.adapters) or not self.adapters:
            return None
        return Objective(tuple(weights), tuple(self.wr_rewards), self.reward_scales)

    def config_for(self, steps: int | None = None, guidance: float | None = None,
                   eta: float | None = None) -> SamplerConfig:
        """The session's sampler (--noise, --ls_draw, --batched …) with a request's steps, guidance and η."""
        config = replace(self.sampler, steps=int(steps if steps is not None else self.sampler.steps),
                         guidance=float(guidance if guidance is not None else self.sampler.guidance),
                         eta=float(eta if eta is not None else self.sampler.eta))
        if config.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {config.steps}")
        if not math.isfinite(config.guidance):
            raise ValueError(f"guidance must be a finite number, got {config.guidance}")
        if not 0 <= config.eta <= 1:
            raise ValueError(f"η must lie in [0, 1], got {config.eta}")
        return config

    # ------------------------------------------------------------------ sampling

    def cache_key(self, spec: BlendSpec, prompt: str, seed: int, config: SamplerConfig) -> tuple:
        return (self.key, self.scheduler_name, spec.label, prompt, int(seed), astuple(config))

    @contextmanager
    def unet_turn(self):
        """Hold the UNet for a page request; the front sweep waits while any page request does."""
        with self._turn:
            self._waiting += 1
        try:
            self.lock.acquire()
        finally:
            with self._turn:
                self._waiting -= 1
                self._turn.notify_all()
        try:
            yield
        finally:
            self.lock.release()

    def generate(self, method: str, weights: Sequence[float], lam: float, prompt: str, seeds: Sequence[int],
                 steps: int | None = None, guidance: float | None = None, eta: float | None = None,
                 record: bool = True) -> Generation:
        """Images of ``method`` for (prompt, seed) with their rewards; cached images are not recomputed.

        The seeds missing from the cache are sampled together in one batch, so a fresh request equals
        ``sample(bundle, spec, [prompt] * len(seeds), seeds, config)`` scored by the reward functions.
        """
        out = self.generate_many([Request(method, tuple(weights), lam, prompt, list(seeds), steps, guidance, eta)],
                                 record=record)[0]
        if isinstance(out, Exception):
            raise out
        return out

    def generate_many(self, requests: Sequence[Request], record: bool = True,
                      on_step: Callable[[Progress], None] | None = None) -> list[Generation | Exception]:
        """Serve several requests at once: the images missing from the cache are sampled in as few sampler calls as
        possible (one per sampler setting; DB-MPA-LS and each soup apart), one spec per image, so requests with
        different weights share one UNet batch per step. A request that cannot run gets its error (a ValueError
        naming the problem) in its place; the others are served. ``on_step`` sees the progress after every step."""
        start = time.perf_counter()
        prepared: list[tuple | Exception] = []
        for req in requests:
            try:
                prompt = (req.prompt or "").strip()
                if not prompt:
                    raise ValueError("the prompt is empty; type one or pick an example")
                seeds = list(req.seeds)
                if not seeds:
                    raise ValueError("give at least one seed, e.g. 0 or 0,1 or 0-3")
                config = self.config_for(req.steps, req.guidance, req.eta)
                spec = self.spec_for(req.method, tuple(req.weights), req.lam)
                prepared.append((spec, prompt, seeds, config, tuple(req.weights)))
            except ValueError as exc:
                prepared.append(exc)
        todo: dict[tuple, tuple] = {}  # cache key -> (spec, prompt, seed, config), each image once
        found: dict[tuple, ImageResult] = {}
        with self.cache_lock:  # a fully cached request never waits for the UNet (e.g. the front's sweep)
            for p in prepared:
                if isinstance(p, Exception):
                    continue
                spec, prompt, seeds, config, _ = p
                for s in seeds:
                    k = self.cache_key(spec, prompt, s, config)
                    if k in self.cache:
                        found[k] = self.cache[k]
                    else:
                        todo[k] = (spec, prompt, s, config)
        failed: dict[tuple, Exception] = {}
        if todo:
            groups: dict[tuple, list[tuple]] = {}
            for k, (spec, _prompt, _seed, config) in todo.items():  # noqa: B007
                kind = "plain"
                if spec.is_stochastic_choice:  # one draw per step for a whole batch: keep each request's own
                    kind = ("ls", spec.label, _prompt) if config.ls_draw == "per_batch_step" else "ls"
                elif spec.soup_spec is not None:  # one merged soup adapter per call
                    kind = spec.label
                groups.setdefault((astuple(config), kind), []).append(k)
            n_requests = sum(1 for p in prepared if not isinstance(p, Exception))
            with self.unet_turn():
                for keys in groups.values():
                    try:
                        found.update(self._compute([todo[k] for k in keys], keys, n_requests, on_step))
                    except Exception as exc:  # noqa: BLE001 - the requests of this group get the error, not all
                        log.exception("sampling failed")
                        failed.update(dict.fromkeys(keys, exc))
        with self.cache_lock:
            for k in found:
                if k in self.cache:
                    self.cache.move_to_end(k)
        wall = time.perf_counter() - start
        out: list[Generation | Exception] = []
        for p in prepared:
            if isinstance(p, Exception):
                out.append(p)
                continue
            spec, prompt, seeds, config, weights = p
            keys = [self.cache_key(spec, prompt, s, config) for s in seeds]
            err = next((failed[k] for k in keys if k in failed), None)
            if err is not None:
                out.append(err if isinstance(err, ValueError) else RuntimeError(f"{type(err).__name__}: {err}"))
                continue
            items = [found[k] for k in keys]
            obj = self.objective(weights)
            n_cached = sum(1 for k in keys if k not in todo)
            gen = Generation(spec=spec, prompt=prompt, seeds=seeds, items=items, weights=weights,
                             reward_names=self.reward_names, weighted=[obj(it.rewards) if obj else None for it in items],
                             n_cached=n_cached, wall_seconds=wall if n_cached < len(seeds) else 0.0,
                             settings={"steps": config.steps, "guidance": config.guidance, "eta": config.eta})
            if record and len(self.reward_names) >= 2:
                point = (gen.mean(self.reward_names[0]), gen.mean(self.reward_names[1]))
                if point not in self.visited:
                    self.visited.append(point)
            if record:
                self.current = gen
            out.append(gen)
        return out

    def _compute(self, rows: list[tuple], keys: list[tuple], n_requests: int,
                 on_step: Callable[[Progress], None] | None) -> dict[tuple, ImageResult]:
        """Sample and score ``rows`` (spec, prompt, seed, config) in one sampler call (the caller holds the UNet);
        cache and return them by key."""
        specs, prompts, seeds = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
        config = rows[0][3]
        if specs[0].soup_spec is not None:
            ensure_soup_adapter(self.bundle.unet, specs[0].soup_spec, self.loras)
        self.progress = Progress(0, config.steps, len(rows), n_requests, True, specs[0].display_name)

        def step(i, t, x):
            self.progress.step = i + 1
            if on_step is not None:
                on_step(self.progress)
            return x, False

        try:
            result = sample(self.bundle, specs if len({s.label for s in specs}) > 1 else specs[0], prompts, seeds,
                            config, on_step=step)
        finally:
            self.progress.busy = False
        self.n_sample_calls += 1
        scores = score_images(self.reward_fns, result.images, prompts)
        out = {k: ImageResult(image=pil, rewards={n: v[j] for n, v in scores.items()},
                              unet_evals=result.unet_evals[j], seconds=result.seconds / len(rows))
               for j, (k, pil) in enumerate(zip(keys, to_pil(result.images)))}
        with self.cache_lock:
            self.cache.update(out)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        log.info("%d image(s) of %d config(s) for %d request(s) in %.2f s", len(rows), len({s.label for s in specs}),
                 n_requests, result.seconds)
        return out

    def side_by_side(self, weights: Sequence[float], prompt: str, seed: int, **settings) -> list[Generation]:
        """The same prompt and seed under base, each single adapter, the ΔW soup and DB-MPA at ``weights``."""
        methods = [BASE, *[f"{SINGLE}:{a}" for a in self.adapters]]
        if len(self.adapters) > 1:
            methods += ([SOUPS[0]] if self.soups else []) + [reference_method()]
        reqs = [Request(m, tuple(weights), 1.0, prompt, [seed], settings.get("steps"), settings.get("guidance"),
                        settings.get("eta")) for m in methods]
        out = self.generate_many(reqs, record=False)
        for g in out:
            if isinstance(g, Exception):
                raise g
        return out

    # ------------------------------------------------------------------ Pareto front

    def load_front(self, run_dir: str | Path) -> dict[str, dict]:
        """The per-config means of a finished run_DB.py run (its summary.json, else its results.jsonl)."""
        self.front = load_front(run_dir, self.reward_names)
        self.front_prompts = next(iter(self.front.values())).get("n", 0)
        self.front_note = (f"Front: the run in {run_dir} (each point the mean over its prompts and seeds; the star: "
                           f"this prompt and these seeds)")
        return self.front

    def front_experiment(self, n_prompts: int = MAX_FRONT_PROMPTS, n_seeds: int = 1) -> Experiment:
        """The start-up sweep: base, the single adapters, and DB-MPA and the ΔW soup at FRONT_WEIGHTS."""
        if len(self.adapters) != 2:
            raise ValueError("the start-up front sweeps w over two adapters; pass --front DIR of a finished run")
        specs = [BlendSpec(BASE), *[BlendSpec(SINGLE, (a,)) for a in self.adapters]]
        for method in FRONT_METHODS:
            if method in SOUPS and not self.soups:
                continue
            specs += [BlendSpec(method, tuple(self.adapters), (w, round(1 - w, 6))) for w in FRONT_WEIGHTS]
        return Experiment(base_model=self.bundle.source, specs=specs, prompts=self.prompts[:n_prompts],
                          seeds=list(range(self.seeds[0], self.seeds[0] + n_seeds)), sampler=self.sampler,
                          rewards=self.reward_names, batch_size=FRONT_CHUNK * n_seeds, scheduler=self.scheduler_name)

    def compute_front(self, out_root: str | Path, n_prompts: int = MAX_FRONT_PROMPTS, n_seeds: int = 1) -> Path:
        """Run (or resume) the start-up sweep into ``out_root/<settings hash>/`` in chunks of FRONT_CHUNK prompts,
        each taken only while no page request waits for the UNet (so a click waits for one chunk at most); load it
        as the front. A finished sweep on disk costs nothing."""
        exp = self.front_experiment(n_prompts, n_seeds)
        cfg = {"model": self.key, "specs": [s.label for s in exp.specs], "prompts": exp.prompts, "seeds": exp.seeds,
               "sampler": astuple(exp.sampler), "scheduler": exp.scheduler, "rewards": exp.rewards}
        out_dir = Path(out_root) / hashlib.sha256(json.dumps(cfg).encode()).hexdigest()[:12]
        start = time.perf_counter()
        self.front_prompts = len(exp.prompts) * len(exp.seeds)
        if not (out_dir / "summary.json").exists():
            save_config(out_dir, exp, {"front_of": self.model_name,
                                       "adapters": {n: self.loras[n].sha256 for n in self.adapters}})
            chunks = [(spec, exp.prompts[i:i + FRONT_CHUNK]) for spec in exp.specs
                      for i in range(0, len(exp.prompts), FRONT_CHUNK)]
            log.info("computing the Pareto front: %d configs × %d images into %s, between page requests",
                     len(exp.specs), self.front_prompts, out_dir)
            for done, (spec, prompts) in enumerate(chunks):
                self.front_progress = (done, len(chunks))
                self.front_note = (f"The front ({len(exp.specs)} configs × {self.front_prompts} images) is computed in "
                                   f"the background between your requests: {done} of {len(chunks)} chunks done. "
                                   f"Generate never waits for it.")
                with self._turn:
                    self._turn.wait_for(lambda: self._waiting == 0)
                with self.lock:
                    one = replace(exp, specs=[spec], prompts=prompts)
                    run_units(one, self.bundle, self.loras, self.reward_fns, out_dir,
                              base_record={"source": self.bundle.source})
            self.front_progress = (len(chunks), len(chunks))
            rows, _ = merge_results(out_dir, exp, self.loras)
            write_summary(out_dir, rows, exp.rewards, [])
            log.info("Pareto front ready in %.1f s (%d images)", time.perf_counter() - start, len(rows))
        self.load_front(out_dir)
        self.front_prompts = len(exp.prompts) * len(exp.seeds)
        try:
            shown = out_dir.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = Path("…", *out_dir.parts[-2:])
        self.front_note = (f"Front: {len(exp.specs)} configs, each the mean over {len(exp.prompts)} prompts × "
                           f"{len(exp.seeds)} seed(s); computed in the background, cached in {shown}")
        return out_dir


def load_front(run_dir: str | Path, reward_names: Sequence[str]) -> dict[str, dict]:
    """Per-config mean rewards (``blend.report.summarise`` format) of a finished run_DB.py run."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").exists():
        front = json.loads((run_dir / "summary.json").read_text())
    elif (run_dir / "results.jsonl").exists():
        from dbcore.io import read_jsonl

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

def session_from_plan(plan: RunPlan, *, lam: float = 1.0, weights_end: Sequence[float] | None = None,
                      schedule_kind: str = "linear", methods: Sequence[str] | None = None,
                      n_seeds: int | None = None) -> LiveSession:
    """Load what ``run_DB.py`` loads for ``plan`` (:func:`blend.run_plan.plan_from_args`, every flag checked):
    the base model with --scheduler, the --lora / --model members, the oracles, the rewards; the page's session.

    ``lam``, ``weights_end`` (with ``schedule_kind``) and ``methods`` are the starting λ, the --weights_end vector
    and the method families offered; ``n_seeds`` cuts the plan's seeds to the first n (the page's default: 2)."""
    from blend.runner import load_plan

    reward_fns, bundle, loras = load_plan(plan, torch.device(plan.device))
    names = plan.adapter_names
    blocked = [n for n in names if loras[n].fmt == "full-unet" or loras[n].extra.get("text_encoder_layers")]
    oracles = {s.adapters[0]: s.extra["target"] for s in plan.specs if s.role == ORACLE}
    if not oracles:  # --methods without 'oracle' leaves no oracle spec; the adapters are loaded all the same
        oracles = {name: name for name in plan.oracles}
    seeds = plan.seeds[:n_seeds] if n_seeds else plan.seeds
    return LiveSession(bundle, loras, names, reward_fns, oracles=oracles, prompts=plan.prompts, seeds=seeds,
                       sampler=plan.sampler, weights=plan.weights[0] if plan.weights else None, lam=lam,
                       reward_scales=plan.scales, scheduler_name=plan.scheduler,
                       wr_rewards=list(plan.objectives[0].rewards) if plan.objectives else None, weights_end=weights_end,
                       schedule_kind=schedule_kind, methods=methods, soups=not blocked,
                       model_name=plan.base_model + (" (toy world)" if plan.toy_default else ""))


# ---------------------------------------------------------------------- the Pareto plot

def star_label(session: LiveSession, current: Generation) -> str:
    """What the star is the mean over, against what the front's points are the mean over."""
    seeds = ",".join(map(str, current.seeds))
    front = (f"; front: {session.front_prompts} images per point" if session.front and session.front_prompts
             else "")
    return f"current: this prompt, seed(s) {seeds}{front}"


def pareto_image(session: LiveSession, current: Generation | None = None, size: tuple[int, int] = (640, 520),
                 visited: Sequence[tuple[float, float]] | None = None) -> Image.Image:
    """Reward 1 against reward 2: the front's weight sweeps, base, single adapters and oracles, the settings
    visited so far (grey; ``visited``, default the session's) and ``current`` (red star), with the legend below
    the axes. Drawn with matplotlib's object API (thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from blend.styles import style

    visited = session.visited if visited is None else visited
    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100, layout="constrained")
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
                if s["method"] == BASE:
                    st = style(BASE)
                    ax.plot([x], [y], st.marker, color=st.color, ms=12, label=BASE)
                elif s["method"] == SINGLE:
                    st = style(ORACLE if s.get("role") == ORACLE else SINGLE)
                    ax.plot([x], [y], st.marker, color=st.color, ms=8)
                    ax.annotate(s["display"].replace("Single adapter ", ""), (x, y), fontsize=8, xytext=(4, 4),
                                textcoords="offset points")
                elif s["method"] in SWEPT:
                    series.setdefault(s["method"], []).append((s["weights"][0], x, y))
            ends = [session.front.get(f"single_{a}") for a in session.adapters[:2]]
            for method, pts in series.items():
                if len(session.adapters) == 2 and all(ends):  # w = 1 is adapter 1 alone, w = 0 adapter 2 alone
                    pts += [(w, e["rewards"][r1][0], e["rewards"][r2][0]) for w, e in zip((1.0, 0.0), ends)]
                pts.sort()
                ax.plot([p[1] for p in pts], [p[2] for p in pts], ms=5, **style(method).kwargs())
        if visited:
            ax.plot([p[0] for p in visited], [p[1] for p in visited], ".", color="#bbbbbb", ms=8, label="visited",
                    zorder=3)
        if current is not None:
            x, y = current.mean(r1), current.mean(r2)
            ax.plot([x], [y], "*", color="#d62728", ms=20, mec="white", mew=1.2, zorder=5,
                    label=star_label(session, current))
            ax.annotate(current.spec.display_name, (x, y), fontsize=8, color="#d62728", xytext=(0, -18),
                        textcoords="offset points", ha="center")
        ax.set_title("Pareto plot: mean rewards", fontsize=10)
        ax.set_xlabel(f"{r1} (higher is better)")
        ax.set_ylabel(f"{r2} (higher is better)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8,
                       frameon=False)
        ax.margins(0.1)
    fig.canvas.draw()
    return Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB")
