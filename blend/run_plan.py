"""Flags → a run description: :func:`plan_from_args` checks every ``run_DB.py`` flag before any model is loaded and
returns a :class:`RunPlan`, which ``blend.runner.execute`` loads, samples, scores and reports.

Building a plan loads no model: it reads the prompt file and adapter manifests, registers the rewards by name and
checks their options, and settles the method configurations (specs), their weight schedules and the weighted rewards
(objectives) they target. Bad flags raise :class:`PlanError` naming the problem and the fix (``run_DB.py`` prints it
as one ``error:`` line). Only light imports at module level: ``blend.cli`` imports this module for ``--help``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blend.methods.registry import check_weight_vector  # no torch (this module must not load it)
from dbcore.logging import get_logger
from dbcore.prompts import load_prompts

if TYPE_CHECKING:
    from blend.experiment import Objective
    from blend.sampler import SamplerConfig
    from blend.spec import BlendSpec

log = get_logger("run_DB")

PAPER_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the maintained copy of the deleted runwayml id
DEFAULT_BASE_MODEL = "builtin:toy"
REPO = Path(__file__).resolve().parents[1]
TOY_WEIGHTS = REPO / "toy" / "weights"
# `python run_DB.py` with no model arguments: toy world v3's base model, its two reward adapters and the w = 0.5
# MORL oracle (three training seeds), on the held-out toy prompts, scored by the HELD-OUT judge and the capped JPEG size
# (docs/toy_world.md). The training judge and the ground truth are reported beside; reward-using baselines select or
# guide with the training judge and the capped −TV surrogate. Any flag given overrides.
TOY_ORACLES = TOY_WEIGHTS / "oracles" / "w0.5"
TOY_DEFAULTS = {
    "base_model": "builtin:toy",
    "lora": [f"alignment={TOY_WEIGHTS / 'adapters' / 'alignment'}",
             f"compressibility={TOY_WEIGHTS / 'adapters' / 'compressibility'}"],
    "oracle": [f"0.5,0.5={TOY_ORACLES / f'seed{s}'}" for s in range(3)],
    "weights": ["0.5,0.5"],
    "rewards": "toy_align_heldout_z,toy_jpeg_capped_z",
    "report_rewards": "toy_align_z,toy_truth,toy_jpeg_z",
    "guide_rewards": "toy_align_z,toy_smoothness_capped_z",
    "prompt_file": str(REPO / "dataset" / "toy_test_prompts.json"),
    "n_seeds": 2,
    "steps": 10,
    "guidance": 2.0,
    "batch_size": 24,
    "methods": "base,single,soup,soup_factors,mpa,mpa_ls,oracle",
}
DEFAULT_PROMPTS = ["a red circle on a blue background", "a green square on a yellow background",
                   "a purple triangle on a cyan background", "a yellow cross on a red background"]
DEMO_ADAPTERS = ("demo_a", "demo_b")
LARGE_PLAN = 20_000  # images; a larger plan is refused without --yes (check_plan_size)
ASSUMED_SECONDS_PER_EVAL = 0.05  # for the time estimate of a large plan when out_dir has no timed rows yet  # builtin:tiny with no adapter: two random LoRAs (blend.runner writes them)


class PlanError(ValueError):
    """Flags that cannot run; the message names the problem and the fix (without the ``error:`` prefix)."""


@dataclass
class RunPlan:
    """Everything ``run_DB.py`` was asked to do, checked; nothing loaded yet."""

    base_model: str
    device: str  # a torch device that exists here ("cpu", "cuda", "cuda:1")
    dtype: str  # float32 | float16 | bfloat16
    adapters: list[tuple[str, str, str]]  # LoRA members (name, path or hub id, the flag that named it), in weight order
    members: list[tuple[str, str]]  # full-UNet members (name, directory), after the adapters in weight order
    oracles: dict[str, str]  # oracle adapter name -> path
    demo_adapters: tuple[str, ...]  # names of the random demo LoRAs to write for builtin:tiny (else empty)
    specs: list[BlendSpec]  # method configurations in table order (soups are checked against the adapters later)
    methods_arg: str | None  # --methods as given (an explicit soup is refused, an implicit one skipped)
    weights: list[tuple[float, ...]]
    prompts: list[str]
    seeds: list[int]
    sampler: SamplerConfig
    scheduler: str  # a diffusion.schedulers name
    rewards: list[str]
    reward_options: dict[str, dict[str, str]]  # reward -> its loader options (only rewards that have some)
    scales: tuple[float, ...] | None  # per reward (WR = Σ w_i r_i / s_i)
    objectives: list[Objective]
    spec_objective: dict[str, str]  # config label -> the objective label it targets
    batch_size: int
    out_dir: Path
    cache_dir: str | None = None
    grids: bool = True
    toy_default: bool = False  # no model flag was given: the toy world's default run
    argv: list[str] | None = None  # recorded in config.json
    mix_weights: bool = False  # several weight vectors of one method and adapters in one UNet batch

    @property
    def adapter_names(self) -> list[str]:
        """The blend members in weight order."""
        if self.demo_adapters:
            return list(self.demo_adapters)
        return [n for n, _, _ in self.adapters] + [n for n, _ in self.members]


# ---------------------------------------------------------------------- parsing single flags

def parse_weights(items: list[str], flag: str = "--weights") -> list[tuple[float, ...]]:
    """Weight vectors from ``--weights`` items ('0.3,0.7', several separated by ';', optional brackets)."""
    vectors = []
    for item in items:
        parts = [part for part in item.split(";") if part.strip()]
        if not parts:
            raise PlanError(f"{flag} {item!r} is empty; give a weight vector, e.g. {flag} 0.5,0.5")
        for part in parts:
            try:
                vectors.append(tuple(float(x) for x in part.strip().strip("()[]").split(",")))
            except ValueError as exc:
                raise PlanError(f"{flag} {part!r} is not a comma-separated list of numbers") from exc
    return vectors


def parse_lambdas(text: str) -> list[float]:
    """DB-KLA's λ values from ``--lambdas`` ('0.5,1.5'): at least one, all finite."""
    try:
        lambdas = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise PlanError(f"--lambdas {text!r} must be comma-separated numbers, e.g. 0.5,1.5") from exc
    if not lambdas:
        raise PlanError("--lambdas is empty; give DB-KLA's λ values, e.g. --lambdas 0.5,1.5")
    if not all(math.isfinite(x) for x in lambdas):
        raise PlanError(f"--lambdas {text!r} must be finite numbers")
    return lambdas


def named_paths(items: list[str], flag: str) -> list[tuple[str, str]]:
    """``NAME=PATH`` items of ``flag`` as (name, path)."""
    out = []
    for item in items:
        if "=" not in item:
            raise PlanError(f"{flag} {item!r} must look like {flag} NAME=PATH")
        name, path = item.split("=", 1)
        out.append((name.strip(), path.strip()))
    return out


def reward_options(items: list[str]) -> dict[str, dict[str, str]]:
    """``REWARD.KEY=VALUE`` items as {reward: {key: value}}."""
    opts: dict[str, dict[str, str]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise PlanError(f"--reward_option {item!r} must look like REWARD.KEY=VALUE")
        key, value = item.split("=", 1)
        reward, arg = key.split(".", 1)
        opts.setdefault(reward, {})[arg] = value
    return opts


def reward_scales(items: list[str], reward_names: list[str]) -> tuple[float, ...] | None:
    """``REWARD=S`` items as one scale per reward (1 unless given); None when none is given."""
    if not items:
        return None
    scales = dict.fromkeys(reward_names, 1.0)
    for name, value in named_paths(items, "--reward_scale"):
        if name not in scales:
            raise PlanError(f"--reward_scale names {name!r}, which is not in --rewards {reward_names}")
        try:
            scales[name] = float(value)
        except ValueError as exc:
            raise PlanError(f"--reward_scale {name}={value!r} is not a number") from exc
        if not scales[name] > 0:
            raise PlanError(f"--reward_scale {name} must be > 0")
    return tuple(scales[r] for r in reward_names)


def resolve_device(name: str):
    """The torch device of ``--device``; a clear error when it does not exist or is not available here."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PlanError(f"--device {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PlanError(f"--device {name}: CUDA is not available on this machine; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PlanError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s) "
                            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif device.type != "cpu":
        raise PlanError(f"--device {name}: only cpu, cuda, cuda:N and auto are supported")
    return device


def apply_builtin_default(args: argparse.Namespace, explicit: set[str]) -> bool:
    """Fill in the toy-world default run when no model or adapter was named (``explicit``: the flags the user
    set). Changes ``args`` in place; returns whether the default applied."""
    model_flags = {"base_model", "lora", "oracle", "t2i_path", "vila_path", "ir_weight"}
    if explicit & model_flags:
        return False
    tied_to_rewards = {"report_rewards", "guide_rewards"}  # they describe the default --rewards, not the user's
    for key, value in TOY_DEFAULTS.items():
        if key in tied_to_rewards and "rewards" in explicit:
            continue
        if key not in explicit and not (key == "prompt_file" and "prompts" in explicit):  # --prompts names them
            setattr(args, key, value)
    return True


def check_adapter_source(path: str, flag: str) -> None:
    """A local adapter path must exist (hub ids ``owner/repo[:file]`` are resolved when loading)."""
    p = Path(path).expanduser()
    if p.exists():
        return
    repo = path.split(":", 1)[0]
    if repo.count("/") == 1 and not path.startswith((".", "/", "~")):
        return
    raise PlanError(f"{flag} {path}: adapter not found (no such file or directory); pass a LoRA file or directory, "
                    f"or a hub id owner/repo[:file]")


def check_checkpoint(path: str, flag: str, base_model: str, allow_other_base: bool) -> None:
    """Refuse a trainer checkpoint without its COMPLETE marker; refuse (or, with ``allow_other_base``, warn about)
    one whose manifest names another base model."""
    p = Path(path).expanduser()
    d = p if p.is_dir() else p.parent
    in_training = re.fullmatch(r"\.?(tmp-)?checkpoint-\d+", d.name) or (d / "training_state.pt").exists()
    if in_training and not (d / "COMPLETE").is_file():
        raise PlanError(f"{flag} {path}: {d} is a half-written trainer checkpoint (no COMPLETE marker: the trainer "
                        f"was stopped while saving it); pass a complete checkpoint-<N>/ of {d.parent}")
    manifest = d / "manifest.json"
    if not manifest.exists():
        return
    try:
        info = json.loads(manifest.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{flag} {path}: cannot read its manifest {manifest} ({exc}); restore it from the trainer's "
                        f"output, or remove it to skip the base-model check") from None
    if not isinstance(info, dict):
        raise PlanError(f"{flag} {path}: its manifest {manifest} holds a JSON {type(info).__name__}, not an object; "
                        f"restore it from the trainer's output, or remove it to skip the base-model check")
    trained = info.get("base_model")
    if not trained:
        return
    from diffusion.sources import canonical_base_model, training_cwd

    def norm(m: str, ran_in: Path | None = None) -> str:
        """A base model's identity as the loader reads it (``diffusion.sources``): builtin:toy is its directory;
        local paths are resolved (from ``ran_in`` first, then the current directory, then the repository), deleted
        hub ids are their maintained copies."""
        if m == "builtin:toy":
            return str((TOY_WEIGHTS / "base").resolve())
        if ran_in is not None and not Path(m).expanduser().is_absolute() and (ran_in / m).exists():
            return str((ran_in / m).resolve())
        return canonical_base_model(m, search=[REPO])

    # an older manifest may hold the base as typed: a relative path is relative to where the trainer ran; a
    # checkpoint moved to another machine (or a clone at another path) no longer finds the absolute path the trainer
    # resolved, so the name as typed (``base_model_given``) is tried as well
    ran_in = training_cwd(d, (info.get("config") or {}).get("output_dir"))
    spellings = [trained] + ([info["base_model_given"]] if info.get("base_model_given") else [])
    msg = None
    if norm(base_model) not in {norm(t, ran_in) for t in spellings}:
        msg = f"{flag} {path} was trained on base model {trained!r}, not on --base_model {base_model!r}"
    else:  # the same path: are they the same weights? (where the base records them: toy bases)
        from diffusion.sources import base_unet_sha256

        was, now = info.get("base_unet_sha256"), base_unet_sha256(base_model, search=[REPO])
        if was and now and was != now:
            msg = (f"{flag} {path} was trained on other weights of --base_model {base_model!r} than those there now "
                   f"(UNet sha256 {was[:12]}… then, {now[:12]}… now: the base was rebuilt or replaced since)")
    if msg:
        if not allow_other_base:
            raise PlanError(f"{msg}; pass the base it was trained on, or --allow_other_base to use it anyway")
        log.warning("%s; using it anyway (--allow_other_base)", msg)


def check_weight_labels(weights: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """Distinct weight vectors must get distinct labels (one would be dropped); exact repeats are dropped."""
    from blend.experiment import Objective

    seen: dict[str, tuple[float, ...]] = {}
    out = []
    for w in weights:
        label = Objective(w, ()).label
        if label in seen:
            if seen[label] != w:
                raise PlanError(f"--weights {seen[label]} and {w} both print as {label} (6 significant digits), so "
                                f"their rows and tables would collide; round them or make them differ")
            log.warning("--weights %s given twice; using it once", w)
            continue
        seen[label] = w
        out.append(w)
    return out


# ---------------------------------------------------------------------- checks that need no torch

def _check_sampler_flags(args: argparse.Namespace, flag_names: dict[str, str]) -> None:
    """Sizes, η and the guidance scale; the scheduler name (diffusion.schedulers is light)."""
    from diffusion.schedulers import SCHEDULERS

    if args.batch_size < 1:
        raise PlanError(f"--batch_size must be ≥ 1, got {args.batch_size}")
    if args.steps is not None and args.steps < 1:
        raise PlanError(f"{flag_names.get('steps', '--steps')} must be ≥ 1, got {args.steps}")
    for dest, value in (("guidance", args.guidance), ("eta", args.eta)):
        if not math.isfinite(value):
            raise PlanError(f"{flag_names.get(dest, '--' + dest)} must be a finite number, got {value}")
    # DDIM's σ_t = η·sqrt((1−ᾱ_{t−1})/(1−ᾱ_t))·sqrt(1−ᾱ_t/ᾱ_{t−1}) leaves a real direction term
    # sqrt(1−ᾱ_{t−1}−σ_t²) only for η ≤ 1 (η = 2 makes every image NaN); no other scheduler here takes η
    if not 0 <= args.eta <= 1:
        raise PlanError(f"--eta must be in [0, 1] (DDIM: 0 deterministic, 1 the paper's stochastic sampler), "
                        f"got {args.eta:g}")
    if args.scheduler not in SCHEDULERS:
        raise PlanError(f"--scheduler {args.scheduler!r} is not known; choose from {', '.join(SCHEDULERS)}")


def check_weight_counts(weights: list[tuple[float, ...]], adapters: list[str], reward_names: list[str]) -> None:
    """One weight per adapter (per reward for the baselines that run without adapters)."""
    m = len(adapters)
    bad = [w for w in weights if len(w) != (m or len(reward_names))]
    if bad:
        raise PlanError(f"weight vector {bad[0]} has {len(bad[0])} entries but there are {m} adapters {adapters}")


def check_weight_sums(weights: list[tuple[float, ...]], flag: str) -> None:
    """Every weight vector of ``flag`` must be finite and sum to 1 (every method that takes weights needs it)."""
    for w in weights:
        try:
            check_weight_vector(w, f"{flag} " + ",".join(f"{x:g}" for x in w), fix=f"{flag} ")
        except ValueError as exc:
            raise PlanError(str(exc)) from None


def _check_surrogates(text: str | None, reward_names: list[str], specs: list[BlendSpec]) -> None:
    """``--guidance_surrogate R=OTHER[:S]``: R one of --rewards, OTHER a differentiable reward, and some method that
    guides with it (the specs that carry the option) among --methods; anything else would be ignored."""
    if text is None:
        return
    from blend.baselines.common import parse_surrogates
    from rewards.registry import REGISTRY

    try:
        surrogates = parse_surrogates(text)
    except ValueError as exc:
        raise PlanError(f"--guidance_surrogate {text!r}: {exc}") from None
    if not surrogates:
        raise PlanError(f"--guidance_surrogate {text!r} names no surrogate; give REWARD=OTHER[:SCALE]")
    differentiable = sorted(k for k, v in REGISTRY.items() if v.differentiable)
    for name, (other, _) in surrogates.items():
        if name not in reward_names:
            raise PlanError(f"--guidance_surrogate {name}={other}: {name!r} is not in --rewards "
                            f"{','.join(reward_names)}, so it would be ignored")
        if other not in REGISTRY or not REGISTRY[other].differentiable:
            what = "is not a known reward" if other not in REGISTRY else "is not differentiable"
            raise PlanError(f"--guidance_surrogate {name}={other}: {other!r} {what}; differentiable rewards: "
                            f"{', '.join(differentiable)}")
    if not any(s.option("surrogate") for s in specs):
        from blend.methods import method_names

        guided = method_names(lambda m: m.gradient_guided)
        users = sorted({s.method for s in specs if s.is_baseline} & set(guided)) or list(guided)
        raise PlanError(f"--guidance_surrogate is used by the gradient-guided baselines ({', '.join(users)}) only, "
                        f"and --methods runs none of them; drop it or add {'/'.join(guided)} to --methods")


def guide_reward_names(args: argparse.Namespace, reward_names: list[str]) -> list[str]:
    """What the reward-using baselines select or guide with, one per scored reward (``--guide_rewards``; default:
    the scored rewards themselves)."""
    if args.guide_rewards is None:
        return list(reward_names)
    guide_names = _reward_names(args.guide_rewards, False, "--guide_rewards")
    if len(guide_names) != len(reward_names):
        raise PlanError(f"--guide_rewards {guide_names} must name one reward per --rewards entry {reward_names}")
    return guide_names


def check_plan_size(specs: list[BlendSpec], prompts: list[str], seeds: list[int], steps: int, yes: bool) -> None:
    """A plan of more than :data:`LARGE_PLAN` images is refused without ``--yes``; its size and time are logged."""
    n_images = len(specs) * len(prompts) * len(seeds)
    if n_images <= LARGE_PLAN:
        return
    evals = 0.0
    for s in specs:
        try:
            per_step = s.unet_evals_per_step(steps)
        except ValueError:
            per_step = 1.0
        evals += per_step * steps * len(prompts) * len(seeds)
    hours = evals * ASSUMED_SECONDS_PER_EVAL / 3600
    what = (f"{n_images:,} images ({len(specs)} configs × {len(prompts):,} prompts × {len(seeds):,} seeds), at least "
            f"{evals:,.0f} UNet evaluations: about {hours:,.1f} h at an assumed {ASSUMED_SECONDS_PER_EVAL:g} s per "
            f"evaluation (baselines cost more)")
    if not yes:
        raise PlanError(f"this command asks for {what}; pass --yes to start it, or ask for fewer seeds, prompts or "
                        f"methods (plans above {LARGE_PLAN:,} images need --yes)")
    log.warning("a large run (--yes): %s", what)


# ---------------------------------------------------------------------- the plan

def plan_from_args(args: argparse.Namespace, explicit: set[str], argv: list[str] | None = None,
                   flag_names: dict[str, str] | None = None) -> RunPlan:
    """Check the parsed ``run_DB.py`` flags ``args`` and describe the run; loads no model, leaves ``args`` as is.

    ``explicit``: the destinations the user set (``blend.cli._explicit_flags``); with no model flag among them, the
    toy world's default run fills every flag not in it; ``argv`` is recorded in config.json; ``flag_names`` maps a
    destination to the option string the user typed, for messages (e.g. {"steps": "--num_inference_steps"}).
    The checks that need no torch run first (a bad flag is refused in well under a second); torch, diffusers and the
    reward registry are imported only after them. Raises :class:`PlanError`.
    """
    args = argparse.Namespace(**vars(args))
    flag_names = flag_names or {}
    toy_default = apply_builtin_default(args, set(explicit))
    original = bool(args.t2i_path or args.vila_path or args.ir_weight is not None)
    _check_sampler_flags(args, flag_names)
    adapters = [(n, p, "--lora") for n, p in named_paths(args.lora, "--lora")]
    if args.t2i_path:
        adapters.append(("t2i", args.t2i_path, "--t2i_path"))
    if args.vila_path:
        adapters.append(("vila", args.vila_path, "--vila_path"))
    members = named_paths(args.model, "--model")
    oracles = named_paths(args.oracle, "--oracle")
    base_model = args.base_model or (PAPER_BASE_MODEL if original else DEFAULT_BASE_MODEL)
    builtin_demo = base_model.startswith("builtin:tiny") and not adapters and not members  # random demo adapters
    if args.prompt_file and args.prompts is not None:
        raise PlanError("--prompt_file and --prompts both name the prompts; give one of them")
    weights = parse_weights(args.weights)
    if args.ir_weight is not None:
        weights.append((args.ir_weight, 1.0 - args.ir_weight))
    reward_names = _reward_names(args.rewards, original)
    adapter_names = list(DEMO_ADAPTERS) if builtin_demo else [n for n, _, _ in adapters] + [n for n, _ in members]
    weights_end = parse_weights(args.weights_end, "--weights_end")
    for vectors, flag in ((weights, "--weights"), (weights_end, "--weights_end")):
        check_weight_counts(vectors, adapter_names, reward_names)
        check_weight_sums(vectors, flag)
    prompts = _prompts(args.prompt_file, args.prompts)
    if args.n_seeds is not None and args.n_seeds < 1:
        raise PlanError("--n_seeds must be ≥ 1")
    lambdas = parse_lambdas(args.lambdas)

    report_names = (_reward_names(args.report_rewards, False, "--report_rewards")
                    if args.report_rewards is not None else [])
    if set(report_names) & set(reward_names):
        raise PlanError(f"--report_rewards {sorted(set(report_names) & set(reward_names))} already in --rewards; "
                        f"name each reward once")
    guide_names = guide_reward_names(args, reward_names)

    import torch  # only now: every check above needs no torch

    from blend.experiment import Objective
    from blend.sampler import SamplerConfig

    device = resolve_device(args.device)
    if device.type == "cpu" and getattr(torch, args.dtype) != torch.float32:
        raise PlanError("use --dtype float32 on the CPU (half precision is for GPUs)")
    if toy_default:
        log.info("no model given: running the built-in toy-world default (python run_DB.py --help for flags)")
    if builtin_demo and not weights:
        weights = [(0.5, 0.5)]
    weights = check_weight_labels(weights)
    n_seeds = args.n_seeds if args.n_seeds is not None else (2 if builtin_demo else 5)
    steps = args.steps if args.steps is not None else (10 if base_model.startswith("builtin:") else 50)
    reward_opts = _checked_reward_options(args.reward_option, list(dict.fromkeys(
        reward_names + report_names + guide_names)))

    for _name, path, flag in adapters:
        check_adapter_source(path, flag)
        check_checkpoint(path, flag, base_model, args.allow_other_base)
    for _name, path in members:
        check_adapter_source(path, "--model")
    oracle_specs, spec_objective, oracle_paths = [], {}, {}
    from blend.methods.single import Oracle

    if Oracle.name in (args.methods or "").split(",") and not oracles:
        raise PlanError(f"--methods {Oracle.name} needs --oracle W=PATH (a MORL adapter trained on weights W)")
    for i, (w_text, path) in enumerate(oracles):
        w = parse_weights([w_text], "--oracle")[0]
        if adapter_names and len(w) != len(adapter_names):
            raise PlanError(f"--oracle {w_text}={path}: its weights have {len(w)} entries but there are "
                            f"{len(adapter_names)} adapters {adapter_names}")
        target = Objective(w, tuple(reward_names)).label
        name = f"oracle{i}_w" + "_".join(f"{x:g}" for x in w).replace(".", "p").replace("-", "m")
        check_checkpoint(path, "--oracle", base_model, args.allow_other_base)
        oracle_paths[name] = path
        same_target = [p for wt, p in oracles if parse_weights([wt], "--oracle")[0] == w]
        tag = "/".join(Path(path).parts[-2:]) if len(same_target) > 1 else ""  # several oracles of one w: name each
        oracle_specs.append(Oracle.spec(name, target, tag))
        spec_objective[oracle_specs[-1].label] = target
    scales = reward_scales(args.reward_scale, reward_names)
    scale_map = dict(zip(reward_names, scales)) if scales else None
    guide_scales = dict(zip(guide_names, scales)) if scales else None
    specs = build_specs(args.methods, adapter_names, weights, lambdas, oracle_specs, original, reward_names, args,
                        steps, scale_map, guide_rewards=guide_names, guide_scales=guide_scales)
    _check_surrogates(getattr(args, "guidance_surrogate", None), reward_names, specs)
    if "guide_rewards" in explicit and not any(s.is_baseline for s in specs):
        from blend.methods import baseline_names

        raise PlanError(f"--guide_rewards is used only by the reward-using baselines ({', '.join(baseline_names())}), "
                        "and --methods runs none of them; add one or drop --guide_rewards")
    if weights_end:
        specs = attach_schedules(specs, weights, weights_end, args.schedule)
    objectives = []
    if len(reward_names) == len(adapter_names) or not adapter_names and any(s.is_baseline for s in specs):
        objectives = [Objective(w, tuple(reward_names), scales) for w in weights]
        for s in specs:
            if s.info.scored_on_own_weights(s):  # blend.methods: the blends and the baselines
                spec_objective[s.label] = Objective(s.weights, tuple(reward_names)).label
    if getattr(args, "mix_weights", False):
        _check_mixable(specs)
    seeds = list(range(args.seed_offset, args.seed_offset + n_seeds))
    check_plan_size(specs, prompts, seeds, steps, bool(getattr(args, "yes", False) or getattr(args, "check", False)))
    return RunPlan(
        base_model=base_model, device=str(device), dtype=args.dtype, adapters=adapters, members=members,
        oracles=oracle_paths, demo_adapters=DEMO_ADAPTERS if builtin_demo else (), specs=specs,
        methods_arg=args.methods, weights=weights, prompts=prompts,
        seeds=seeds,
        sampler=SamplerConfig(steps=steps, guidance=args.guidance, eta=args.eta, batched=args.batched,
                              noise=args.noise, ls_draw=args.ls_draw),
        scheduler=args.scheduler, rewards=reward_names + report_names, reward_options=reward_opts, scales=scales,
        objectives=objectives, spec_objective=spec_objective, batch_size=args.batch_size, out_dir=Path(args.out_dir),
        cache_dir=args.cache_dir, grids=not args.no_grids, toy_default=toy_default, argv=argv,
        mix_weights=bool(getattr(args, "mix_weights", False)))


def _check_mixable(specs: list[BlendSpec]) -> None:
    """--mix_weights needs two configs of one mixing group (blend.experiment.mix_key), else it changes nothing."""
    from blend.experiment import mix_key

    keys = [k for k in (mix_key(s) for s in specs) if k is not None]
    if len(keys) == len(set(keys)):
        raise PlanError("--mix_weights batches several weight vectors (or λ) of one method and adapter set, but no two "
                        "configs here share one (soups and baselines are never mixed); give several --weights or "
                        "--lambdas, or drop --mix_weights")


def _reward_names(text: str | None, original: bool, flag: str = "--rewards") -> list[str]:
    if text is not None and not [r for r in text.split(",") if r.strip()]:
        raise PlanError(f"{flag} is empty; name at least one reward (python run_DB.py --list_rewards)")
    names = [r.strip() for r in (text or ("image_reward,vila" if original else
                                          "jpeg_compressibility,colorfulness")).split(",")]
    if "" in names:
        raise PlanError(f"{flag} {text!r} has an empty name; separate reward names with one ','")
    if len(set(names)) != len(names):
        raise PlanError(f"{flag} {text!r} names a reward twice")
    return names


def _prompts(prompt_file: str | None, inline: str | None) -> list[str]:
    """The prompts of --prompt_file or --prompts, each once (in order of first appearance; repeats are logged)."""
    return _unique_prompts(_given_prompts(prompt_file, inline), "--prompt_file" if prompt_file else "--prompts")


def _unique_prompts(prompts: list[str], flag: str) -> list[str]:
    """``prompts`` without repeats (first occurrence kept): a repeated prompt would count its images twice in the
    means and their standard errors."""
    unique = list(dict.fromkeys(prompts))
    if len(unique) < len(prompts):
        repeated = [p for p in unique if prompts.count(p) > 1]
        log.warning("%s: %d repeated prompt(s) used once each (%d prompts, not %d): %s", flag,
                    len(prompts) - len(unique), len(unique), len(prompts), ", ".join(map(repr, repeated[:5]))
                    + (", …" if len(repeated) > 5 else ""))
    return unique


def _given_prompts(prompt_file: str | None, inline: str | None) -> list[str]:
    if prompt_file:
        return load_prompts(prompt_file)
    if inline is not None:
        prompts = [p.strip() for p in inline.split("|")]
        if not any(prompts):
            raise PlanError("--prompts is empty; pass prompts separated by '|' (or --prompt_file FILE)")
        if not all(prompts):
            raise PlanError(f"--prompts {inline!r}: prompt #{prompts.index('')} is blank; remove the extra '|'")
        return prompts
    return DEFAULT_PROMPTS


def _checked_reward_options(items: list[str], reward_names: list[str]) -> dict[str, dict[str, str]]:
    """The loader options of each reward that has some, checked against the reward's loader (no model loaded)."""
    from rewards import load_all
    from rewards.registry import check_reward_options

    load_all()  # registers every reward (cheap: no model is loaded)
    opts = reward_options(items)
    for name in opts:
        if name not in reward_names:
            raise PlanError(f"--reward_option names reward {name!r}, which is not in --rewards "
                            f"{','.join(reward_names)}")
    try:
        opts = {name: check_reward_options(name, opts.get(name, {})) for name in reward_names}
    except KeyError as exc:
        raise PlanError(exc.args[0]) from None
    return {k: v for k, v in opts.items() if v}


def _baseline_defaults() -> argparse.Namespace:
    from blend.baselines.options import add_baseline_args

    p = argparse.ArgumentParser(add_help=False)
    add_baseline_args(p)
    return p.parse_args([])


def build_specs(methods_arg: str | None, adapters: list[str], weights: list[tuple[float, ...]],
                lambdas: list[float], oracle_specs: list[BlendSpec], original: bool, reward_names=(),
                baseline_args: argparse.Namespace | None = None, steps: int = 50,
                scales: dict[str, float] | None = None, guide_rewards=None,
                guide_scales: dict[str, float] | None = None) -> list[BlendSpec]:
    """The method configurations to run, in table order (duplicates dropped). The reward-using baselines select or
    guide with ``guide_rewards`` (default ``reward_names``), one per scored reward."""
    from blend.methods import PlanContext, default_methods, get_method, method_names, reference_method

    all_methods = (*method_names(), *method_names(lambda x: x.plan_only, plan=True))
    m = len(adapters)
    if methods_arg:
        methods = [x.strip() for x in methods_arg.split(",") if x.strip()]
        if not methods:
            raise PlanError(f"--methods {methods_arg!r} names no method; choose from {', '.join(all_methods)}")
        unknown = [x for x in methods if x not in all_methods]
        if unknown:
            raise PlanError(f"unknown method(s) {unknown}; choose from {', '.join(all_methods)}")
    elif original:
        methods = [reference_method()]
    else:
        methods = default_methods(m, bool(oracle_specs))
    info = {name: get_method(name) for name in methods}
    needs_w = {k for k, v in info.items() if v.needs_weights and not v.is_baseline and not v.takes_lam}
    baselines = any(v.is_baseline for v in info.values())
    if baselines and not weights and len(reward_names) == 1:
        weights = [(1.0,)]
    if baselines and not weights:
        raise PlanError(f"the baselines need --weights over the rewards {list(reward_names)}")
    if needs_w and m > 1 and not weights:
        raise PlanError(f"methods {sorted(needs_w)} need --weights (a vector over the {m} adapters {adapters}, e.g. "
                        f"--weights {','.join(['%g' % (1 / m)] * m)})")
    check_weight_counts(weights, adapters, list(reward_names))
    specs: list[BlendSpec] = []
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        ctx = PlanContext(list(adapters), list(weights), list(lambdas), list(oracle_specs), list(reward_names),
                          baseline_args or _baseline_defaults(), steps, scales,
                          list(guide_rewards) if guide_rewards else None, guide_scales)
        for method in methods:
            try:
                if info[method].is_baseline:  # blend.baselines
                    specs += _baseline_specs(info[method].build_specs, ctx)
                else:
                    specs += info[method].build_specs(ctx)  # blend.methods: one module per method
            except PlanError:
                raise
            except ValueError as exc:
                raise PlanError(str(exc)) from exc
    seen, unique = set(), []
    for s in specs:
        if s.label not in seen:
            seen.add(s.label)
            unique.append(s)
    return unique


def _baseline_specs(fn, *args) -> list[BlendSpec]:
    """``blend.baselines.options.baseline_specs``, its command-line errors (SystemExit 'error: ...') as PlanError."""
    try:
        return fn(*args)
    except SystemExit as exc:
        if isinstance(exc.code, str) and exc.code.startswith("error: "):
            raise PlanError(exc.code.removeprefix("error: ")) from None
        raise


def attach_schedules(specs: list[BlendSpec], starts: list[tuple[float, ...]], ends: list[tuple[float, ...]],
                     kind: str) -> list[BlendSpec]:
    """Give every spec of a schedulable method (mpa, mpa_ls, kla: ``Method.schedulable``) whose weights are a
    --weights vector the schedule to its --weights_end."""
    from blend.schedule import WeightSchedule
    from blend.spec import BlendSpec

    if len(ends) not in (1, len(starts)):
        raise PlanError(f"{len(ends)} --weights_end vectors for {len(starts)} --weights vectors; give one, or one per "
                        f"--weights vector")
    end_of = {tuple(w): ends[0] if len(ends) == 1 else ends[i] for i, w in enumerate(starts)}
    out = []
    for s in specs:
        end = end_of.get(tuple(s.weights)) if s.info.schedulable and len(s.adapters) > 1 else None
        if end is None:
            out.append(s)
            continue
        try:
            s.with_weights(end)  # the end vector is a valid blend too
            out.append(BlendSpec(s.method, s.adapters, s.weights, s.lam, s.role,
                                 extra={**s.extra, "schedule": WeightSchedule(s.weights, end, kind)}))
        except ValueError as exc:
            raise PlanError(f"--weights_end {list(end)}: {exc}") from exc
    return out
