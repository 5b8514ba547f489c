"""Command line of ``run_DB.py``: parse flags (new and original), build the experiment, run it."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

# Only light imports at module level: `run_DB.py --help` and `--list_rewards` must not import torch,
# diffusers or peft (seconds); everything heavy is imported inside main() and the helpers that need it.
from blend.baselines.options import add_baseline_args  # light: no torch
from diffusion_blend.logging import get_logger, setup_logging
from diffusion_blend.prompts import load_prompts
from diffusion_blend.provenance import provenance

if TYPE_CHECKING:
    from blend.spec import BlendSpec

log = get_logger("run_DB")

PAPER_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the maintained copy of the deleted runwayml id
BASELINE_METHODS = ("bon", "bon_mpa", "bon_ls", "code", "rgg", "smc")  # = blend.spec.BASELINE_METHODS (tested)
METHODS = ("base", "single", "mpa", "kla", "mpa_ls", "soup", "soup_factors", "hybrid_late",  # = blend.spec.METHODS
           *BASELINE_METHODS)
SCHEDULER_NAMES = ("ddim", "dpm++", "dpm++_sde", "euler", "euler_a", "pndm", "unipc", "ddpm")  # diffusion.schedulers
DEFAULT_BASE_MODEL = "builtin:toy"
REPO = Path(__file__).resolve().parents[1]
TOY_WEIGHTS = REPO / "toy" / "weights"
# `python run_DB.py` with no model arguments: the toy world's base model, its two reward adapters and the
# w = 0.5 MORL oracle, on the held-out toy prompts (docs/toy/README_SECTION.md). Any flag given overrides.
TOY_DEFAULTS = {
    "base_model": "builtin:toy",
    "lora": [f"alignment={TOY_WEIGHTS / 'adapters' / 'alignment'}",
             f"compressibility={TOY_WEIGHTS / 'adapters' / 'compressibility'}"],
    "oracle": [f"0.5,0.5={TOY_WEIGHTS / 'oracles' / 'w0.5'}"],
    "weights": ["0.5,0.5"],
    "rewards": "toy_alignment_z,toy_jpeg_z",
    "prompt_file": str(REPO / "dataset" / "toy_test_prompts.json"),
    "n_seeds": 2,
    "steps": 10,
    "guidance": 5.0,
    "batch_size": 24,
    "methods": "base,single,soup,soup_factors,mpa,mpa_ls,oracle",
}
DEFAULT_PROMPTS = ["a red circle on a blue background", "a green square on a yellow background",
                   "a purple triangle on a cyan background", "a yellow cross on a red background"]
ALL_METHODS = (*METHODS, "oracle")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: X)" only for defaults that say something (not None, [], False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, [], False) or "[default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_DB.py", formatter_class=_Formatter,
        description="Sample with blended noise predictions (DB-MPA, DB-KLA, DB-MPA-LS) and baselines, score every "
                    "image, and write images, results.jsonl, summary tables, grids and a Pareto plot. With no "
                    "arguments it runs the built-in default.")
    g = p.add_argument_group("model and adapters")
    g.add_argument("--base_model", "--pretrained_model_name_or_path", dest="base_model", default=None,
                   help=f"hub id, local Stable-Diffusion-format directory or builtin:tiny / builtin:toy "
                        f"[default: the toy world's model, adapters and oracle (see README); {PAPER_BASE_MODEL} "
                        f"with the original flags]")
    g.add_argument("--lora", action="append", default=[], metavar="NAME=PATH",
                   help="a LoRA adapter (PEFT dir, diffusers or kohya/A1111 .safetensors, legacy attn-procs .bin, "
                        "hub id owner/repo or owner/repo:file.safetensors); repeat; the order fixes the order of "
                        "the weights")
    g.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                   help="a full fine-tuned UNet (unet/ or Stable-Diffusion directory) as a blend member, after the "
                        "--lora members in the weight order; memory: one UNet per member")
    g.add_argument("--allow_other_base", action="store_true",
                   help="use a trainer checkpoint whose manifest names another base model (a warning, not an error)")
    g.add_argument("--oracle", action="append", default=[], metavar="W=PATH",
                   help="a MORL oracle adapter trained on the weighted reward W (e.g. '0.5,0.5=ckpt/'); repeat")
    g.add_argument("--t2i_path", default=None, help="(original) the ImageReward adapter; same as --lora t2i=PATH")
    g.add_argument("--vila_path", default=None, help="(original) the VILA adapter; same as --lora vila=PATH")
    g.add_argument("--cache_dir", default=None, help="(original) cache for hub models and reward checkpoints")
    g = p.add_argument_group("what to sample")
    g.add_argument("--methods", default=None,
                   help=f"comma-separated, from {', '.join(ALL_METHODS)} [default: every method that the adapters "
                        f"allow; 'mpa' with the original flags]")
    g.add_argument("--weights", action="append", default=[], metavar="W1,W2,...",
                   help="a weight vector over the adapters (sums to 1); repeat, or separate vectors with ';'")
    g.add_argument("--ir_weight", type=float, default=None,
                   help="(original) weight w of the ImageReward adapter: weights (w, 1-w) over (t2i, vila)")
    g.add_argument("--weights_end", action="append", default=[], metavar="W1,W2,...",
                   help="per-step schedule: the weight vector at the last step, one per --weights vector (or one "
                        "for all); mpa, mpa_ls and kla then blend with w(t) from --weights to it")
    g.add_argument("--schedule", default="linear", choices=["linear", "cosine"],
                   help="interpolation of the per-step schedule (with --weights_end)")
    g.add_argument("--lambdas", default="0.5,1.5", help="DB-KLA λ values, comma-separated (λ ≥ 0)")
    g.add_argument("--prompt_file", default=None, help="(original) JSON list of prompts or DPOK {prompt: {...}} dict")
    g.add_argument("--prompts", default=None, help="prompts inline, separated by '|'")
    g.add_argument("--n_seeds", type=int, default=None, help="seeds per prompt (0..n-1) [default: 5 as the original]")
    g.add_argument("--seed_offset", type=int, default=0, help="first seed")
    g = p.add_argument_group("sampler")
    g.add_argument("--steps", "--num_inference_steps", dest="steps", type=int, default=None,
                   help="DDIM steps [default: 50 (paper); 10 for the built-in tiny model]")
    g.add_argument("--guidance", "--guidance_scale", dest="guidance", type=float, default=7.5,
                   help="classifier-free guidance scale, applied per model before blending")
    g.add_argument("--eta", type=float, default=1.0, help="DDIM η (1 = the paper's stochastic sampler)")
    g.add_argument("--scheduler", default="ddim", choices=list(SCHEDULER_NAMES),
                   help="diffusers scheduler whose step the blended ε drives (built from the model's scheduler "
                        "config); ddim with η = 1 is the paper's")
    g.add_argument("--batch_size", type=int, default=8, help="images per UNet batch")
    g.add_argument("--batched", action="store_true",
                   help="evaluate all blended models in one routed UNet call (for GPUs; the same numbers up to float "
                        "rounding; slower on CPUs)")
    g.add_argument("--noise", choices=("per_image", "per_seed"), default="per_image",
                   help="x_T and step noise per (prompt, seed) [default], or per seed shared by all prompts (the "
                        "paper's run_DB.py; images of one seed are then correlated)")
    g.add_argument("--ls_draw", choices=("per_image", "per_batch_step"), default="per_image",
                   help="DB-MPA-LS adapter draws: per step and image [default], or one per step for the whole batch "
                        "(the official pipeline)")
    g = p.add_argument_group("rewards and output")
    g.add_argument("--rewards", default=None,
                   help="comma-separated reward names [default: jpeg_compressibility,colorfulness; "
                        "image_reward,vila with the original flags]")
    g.add_argument("--reward_option", action="append", default=[], metavar="REWARD.KEY=VALUE",
                   help="an argument for a reward's loader, e.g. image_reward.checkpoint=/path/ImageReward.pt")
    g.add_argument("--reward_scale", action="append", default=[], metavar="REWARD=S",
                   help="divide a reward by S in the weighted reward WR = Σ w_i r_i / s_i (e.g. its std under the "
                        "base model, so that w means the same for every reward); repeat")
    g.add_argument("--list_rewards", action="store_true", help="list the available rewards with their scales and exit")
    g.add_argument("--out_dir", default="outputs/run_DB", help="output directory (re-running resumes it)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    g.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    g.add_argument("--no_grids", action="store_true", help="do not write image grids")
    add_baseline_args(p)
    p.add_argument("--ui", action="store_true", help="serve the live web page instead (python run_DB.py --ui --help)")
    return p


def _parse_weights(items: list[str]) -> list[tuple[float, ...]]:
    vectors = []
    for item in items:
        for part in item.split(";"):
            if part.strip():
                try:
                    vectors.append(tuple(float(x) for x in part.strip().strip("()[]").split(",")))
                except ValueError as exc:
                    raise SystemExit(f"error: --weights {part!r} is not a comma-separated list of numbers") from exc
    return vectors


def _named_paths(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise SystemExit(f"error: {flag} {item!r} must look like {flag} NAME=PATH")
        name, path = item.split("=", 1)
        out.append((name.strip(), path.strip()))
    return out


def _reward_options(items: list[str]) -> dict[str, dict[str, str]]:
    opts: dict[str, dict[str, str]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise SystemExit(f"error: --reward_option {item!r} must look like REWARD.KEY=VALUE")
        key, value = item.split("=", 1)
        reward, arg = key.split(".", 1)
        opts.setdefault(reward, {})[arg] = value
    return opts


def _reward_scales(items: list[str], reward_names: list[str]) -> tuple[float, ...] | None:
    if not items:
        return None
    scales = dict.fromkeys(reward_names, 1.0)
    for name, value in _named_paths(items, "--reward_scale"):
        if name not in scales:
            raise SystemExit(f"error: --reward_scale names {name!r}, which is not in --rewards {reward_names}")
        try:
            scales[name] = float(value)
        except ValueError as exc:
            raise SystemExit(f"error: --reward_scale {name}={value!r} is not a number") from exc
        if not scales[name] > 0:
            raise SystemExit(f"error: --reward_scale {name} must be > 0")
    return tuple(scales[r] for r in reward_names)


def list_rewards_text() -> str:
    from rewards.catalog import reward_catalog  # read from the source: no torch

    lines = []
    for info in reward_catalog():
        lines.append(f"{info.name:24s} {'differentiable' if info.differentiable else 'black-box':15s} {info.scale}")
        lines.append(f"{'':24s} {info.description}; needs: {info.needs}")
    return "\n".join(lines)


def resolve_device(name: str):
    """The torch device of ``--device``; a clear error when it does not exist or is not available here."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SystemExit(f"error: --device {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"error: --device {name}: CUDA is not available on this machine; use --device cpu "
                             f"(or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SystemExit(f"error: --device {name}: this machine has {torch.cuda.device_count()} GPU(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif device.type != "cpu":
        raise SystemExit(f"error: --device {name}: only cpu, cuda, cuda:N and auto are supported")
    return device


def typed_flag(parser: argparse.ArgumentParser, argv: list[str] | None, dest: str) -> str:
    """The option string the user typed for ``dest`` (e.g. --num_inference_steps for --steps), else the first."""
    action = next(a for a in parser._actions if a.dest == dest and a.option_strings)
    for item in reversed(argv if argv is not None else sys.argv[1:]):  # the last one given wins
        flag = item.split("=", 1)[0]
        if flag in action.option_strings:
            return flag
    return action.option_strings[0]


def _explicit_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """Destinations the user set on the command line (whatever their value)."""
    unset = object()
    probe = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            kwargs = {"dest": action.dest, "default": unset}
            if action.nargs == 0:
                kwargs["action"] = "store_const"
                kwargs["const"] = True
            else:
                kwargs["action"] = "store"  # presence is all that matters here
            probe.add_argument(*action.option_strings, **kwargs)
    ns, _ = probe.parse_known_args(argv)
    return {k for k, v in vars(ns).items() if v is not unset}


def apply_builtin_default(args: argparse.Namespace, explicit: set[str]) -> bool:
    """Fill in the toy-world default run when no model or adapter was named. Returns whether it applied."""
    model_flags = {"base_model", "lora", "oracle", "t2i_path", "vila_path", "ir_weight"}
    if explicit & model_flags:
        return False
    for key, value in TOY_DEFAULTS.items():
        if key not in explicit:
            setattr(args, key, value)
    return True


USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, TimeoutError)


def _to_run_log(out_dir: Path, message: str) -> None:
    """Write ``message`` to this run's run.log only (the console gets it from SystemExit)."""
    target = str((out_dir / "run.log").resolve())
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in get_logger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == target:
            handler.handle(record)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors exit with one ``error:`` line (also in run.log), Ctrl-C with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ui:  # run_DB.py hands --ui to blend.ui before this (blend.ui imports this module, not the reverse)
        raise SystemExit("error: --ui serves the web page: python run_DB.py --ui or python -m blend.ui")
    if args.list_rewards:
        print(list_rewards_text())
        return 0
    out_dir = Path(args.out_dir)
    setup_logging(log_file=out_dir / "run.log")
    try:
        return _run(parser, args, argv, out_dir)
    except KeyboardInterrupt:
        log.error("interrupted; re-run the same command to resume")
        return 130
    except SystemExit as exc:
        if isinstance(exc.code, str):
            _to_run_log(out_dir, exc.code)
        raise
    except USER_ERRORS as exc:
        message = f"error: {exc}"
        _to_run_log(out_dir, message)
        raise SystemExit(message) from None


def _check_adapter_source(path: str, flag: str) -> None:
    """A local adapter path must exist (hub ids ``owner/repo[:file]`` are resolved when loading)."""
    p = Path(path).expanduser()
    if p.exists():
        return
    repo = path.split(":", 1)[0]
    if repo.count("/") == 1 and not path.startswith((".", "/", "~")):
        return
    raise SystemExit(f"error: {flag} {path}: adapter not found (no such file or directory); pass a LoRA file or "
                     f"directory, or a hub id owner/repo[:file]")


def check_checkpoint(path: str, flag: str, base_model: str, allow_other_base: bool) -> None:
    """Refuse a trainer checkpoint without its COMPLETE marker; refuse (or, with --allow_other_base, warn about)
    one whose manifest names another base model."""
    p = Path(path).expanduser()
    d = p if p.is_dir() else p.parent
    in_training = re.fullmatch(r"\.?(tmp-)?checkpoint-\d+", d.name) or (d / "training_state.pt").exists()
    if in_training and not (d / "COMPLETE").is_file():
        raise SystemExit(f"error: {flag} {path}: {d} is a half-written trainer checkpoint (no COMPLETE marker: the "
                         f"trainer was stopped while saving it); pass a complete checkpoint-<N>/ of {d.parent}")
    manifest = d / "manifest.json"
    if not manifest.exists():
        return
    trained = json.loads(manifest.read_text()).get("base_model")

    def norm(m: str) -> str:
        """A base model's identity: builtin:toy is its directory; paths are resolved (also from the repository)."""
        if m == "builtin:toy":
            return str((TOY_WEIGHTS / "base").resolve())
        for cand in (Path(m).expanduser(), REPO / m):
            if cand.exists():
                return str(cand.resolve())
        return m

    if trained and norm(trained) != norm(base_model):
        msg = f"{flag} {path} was trained on base model {trained!r}, not on --base_model {base_model!r}"
        if not allow_other_base:
            raise SystemExit(f"error: {msg}; pass the base it was trained on, or --allow_other_base to use it anyway")
        log.warning("%s; using it anyway (--allow_other_base)", msg)


def _check_weight_labels(weights: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """Distinct weight vectors must get distinct labels (one would be dropped); exact repeats are dropped."""
    from blend.experiment import Objective

    seen: dict[str, tuple[float, ...]] = {}
    out = []
    for w in weights:
        label = Objective(w, ()).label
        if label in seen:
            if seen[label] != w:
                raise SystemExit(f"error: --weights {seen[label]} and {w} both print as {label} (6 significant "
                                 f"digits), so their rows and tables would collide; round them or make them differ")
            log.warning("--weights %s given twice; using it once", w)
            continue
        seen[label] = w
        out.append(w)
    return out


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None, out_dir: Path) -> int:
    import torch
    from accelerate import PartialState

    from blend.experiment import Experiment, Objective, merge_results, run_units, save_config
    from blend.report import plot_pareto, summarise, write_grids, write_summary
    from blend.sampler import SamplerConfig
    from blend.spec import BlendSpec

    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    if device.type == "cpu" and dtype != torch.float32:
        raise SystemExit("error: use --dtype float32 on the CPU (half precision is for GPUs)")

    # ---- every flag is checked here, before any model is loaded
    toy_default = apply_builtin_default(args, _explicit_flags(parser, argv))
    original = bool(args.t2i_path or args.vila_path or args.ir_weight is not None)
    adapters = [(n, p, "--lora") for n, p in _named_paths(args.lora, "--lora")]
    if args.t2i_path:
        adapters.append(("t2i", args.t2i_path, "--t2i_path"))
    if args.vila_path:
        adapters.append(("vila", args.vila_path, "--vila_path"))
    members = _named_paths(args.model, "--model")
    oracles = _named_paths(args.oracle, "--oracle")
    base_model = args.base_model or (PAPER_BASE_MODEL if original else DEFAULT_BASE_MODEL)
    builtin_demo = base_model.startswith("builtin:tiny") and not adapters and not members  # random demo adapters
    if toy_default:
        log.info("no model given: running the built-in toy-world default (python run_DB.py --help for flags)")
    if args.batch_size < 1:
        raise SystemExit(f"error: --batch_size must be ≥ 1, got {args.batch_size}")
    if args.steps is not None and args.steps < 1:
        raise SystemExit(f"error: {typed_flag(parser, argv, 'steps')} must be ≥ 1, got {args.steps}")
    if args.eta < 0:
        raise SystemExit(f"error: --eta must be ≥ 0, got {args.eta}")

    weights = _parse_weights(args.weights)
    if args.ir_weight is not None:
        weights.append((args.ir_weight, 1.0 - args.ir_weight))
    if builtin_demo and not weights:
        weights = [(0.5, 0.5)]
    weights = _check_weight_labels(weights)
    if args.rewards is not None and not [r for r in args.rewards.split(",") if r.strip()]:
        raise SystemExit("error: --rewards is empty; name at least one reward (python run_DB.py --list_rewards)")
    reward_names = [r.strip() for r in (args.rewards or ("image_reward,vila" if original else
                                                          "jpeg_compressibility,colorfulness")).split(",")]
    if "" in reward_names:
        raise SystemExit(f"error: --rewards {args.rewards!r} has an empty name; separate reward names with one ','")
    if len(set(reward_names)) != len(reward_names):
        raise SystemExit(f"error: --rewards {args.rewards!r} names a reward twice")
    if args.prompt_file:
        prompts = load_prompts(args.prompt_file)
    elif args.prompts is not None:
        prompts = [p.strip() for p in args.prompts.split("|")]
        if not any(prompts):
            raise SystemExit("error: --prompts is empty; pass prompts separated by '|' (or --prompt_file FILE)")
        if not all(prompts):
            raise SystemExit(f"error: --prompts {args.prompts!r}: prompt #{prompts.index('')} is blank; remove the "
                             f"extra '|'")
    else:
        prompts = DEFAULT_PROMPTS
    n_seeds = args.n_seeds if args.n_seeds is not None else (2 if builtin_demo else 5)
    if n_seeds < 1:
        raise SystemExit("error: --n_seeds must be ≥ 1")
    steps = args.steps if args.steps is not None else (10 if base_model.startswith("builtin:") else 50)
    try:
        lambdas = [float(x) for x in args.lambdas.split(",") if x.strip()]
    except ValueError as exc:
        raise SystemExit(f"error: --lambdas {args.lambdas!r} must be comma-separated numbers, e.g. 0.5,1.5") from exc
    if not lambdas:
        raise SystemExit("error: --lambdas is empty; give DB-KLA's λ values, e.g. --lambdas 0.5,1.5")

    from rewards import load_all
    from rewards.registry import check_reward_options

    load_all()  # registers every reward (cheap: no model is loaded)

    reward_opts = _reward_options(args.reward_option)
    for name in reward_opts:
        if name not in reward_names:
            raise SystemExit(f"error: --reward_option names reward {name!r}, which is not in --rewards "
                             f"{','.join(reward_names)}")
    try:
        reward_opts = {name: check_reward_options(name, reward_opts.get(name, {})) for name in reward_names}
    except KeyError as exc:
        raise SystemExit(f"error: {exc.args[0]}") from None
    reward_opts = {k: v for k, v in reward_opts.items() if v}

    adapter_names = ["demo_a", "demo_b"] if builtin_demo else [n for n, _, _ in adapters] + [n for n, _ in members]
    for _name, path, flag in adapters:
        _check_adapter_source(path, flag)
        check_checkpoint(path, flag, base_model, args.allow_other_base)
    for _name, path in members:
        _check_adapter_source(path, "--model")
    oracle_specs, spec_objective, oracle_paths = [], {}, {}
    if "oracle" in (args.methods or "").split(",") and not oracles:
        raise SystemExit("error: --methods oracle needs --oracle W=PATH (a MORL adapter trained on weights W)")
    for i, (w_text, path) in enumerate(oracles):
        w = _parse_weights([w_text])[0]
        if adapter_names and len(w) != len(adapter_names):
            raise SystemExit(f"error: --oracle {w_text}={path}: its weights have {len(w)} entries but there are "
                             f"{len(adapter_names)} adapters {adapter_names}")
        target = Objective(w, tuple(reward_names)).label
        name = f"oracle{i}_w" + "_".join(f"{x:g}" for x in w).replace(".", "p").replace("-", "m")
        check_checkpoint(path, "--oracle", base_model, args.allow_other_base)
        oracle_paths[name] = path
        oracle_specs.append(BlendSpec("single", (name,), role="oracle", extra={"target": target}))
        spec_objective[oracle_specs[-1].label] = target
    scales = _reward_scales(args.reward_scale, reward_names)
    scale_map = dict(zip(reward_names, scales)) if scales else None
    specs = build_specs(args.methods, adapter_names, weights, lambdas, oracle_specs, original, reward_names, args,
                        steps, scale_map)  # validated now; soups/schedules are settled once the adapters are read

    # ---- load
    from rewards import get_reward

    state = PartialState(cpu=device.type == "cpu")
    if device.type == "cuda" and state.num_processes > 1:
        device = state.device
    reward_fns = {name: get_reward(name, device=device, dtype=torch.float32, cache_dir=args.cache_dir,
                                   **reward_opts.get(name, {})) for name in reward_names}

    from diffusion.loading import load_bundle
    from diffusion.lora_formats import add_unet_member, load_adapter_any, unet_member_record
    from diffusion.schedulers import make_scheduler

    bundle = load_bundle(base_model, device=device, dtype=dtype, cache_dir=args.cache_dir)
    if builtin_demo:
        adapters = [(n, p, "--lora") for n, p in _write_demo_adapters(bundle, out_dir / "builtin_adapters")]
    if args.scheduler != "ddim":
        bundle.scheduler = make_scheduler(args.scheduler, bundle.scheduler.config)
    loras = {name: load_adapter_any(bundle, name, path, cache_dir=args.cache_dir) for name, path, _ in adapters}
    for name, path in members:
        add_unet_member(bundle, name, path)
        loras[name] = unet_member_record(path)
    for name, path in oracle_paths.items():
        loras[name] = load_adapter_any(bundle, name, path, cache_dir=args.cache_dir)
    specs = _without_impossible_soups(specs, loras, args.methods)
    if args.weights_end:
        specs = attach_schedules(specs, weights, _parse_weights(args.weights_end), args.schedule)
    objectives = []
    if len(reward_names) == len(adapter_names) or not adapter_names and any(s.is_baseline for s in specs):
        objectives = [Objective(w, tuple(reward_names), scales) for w in weights]
        for s in specs:
            if s.method in ("mpa", "mpa_ls", "soup", "soup_factors", "hybrid_late") \
                    or s.method == "kla" and len(s.adapters) > 1 or s.is_baseline:
                spec_objective[s.label] = Objective(s.weights, tuple(reward_names)).label
    exp = Experiment(base_model=base_model, specs=specs, prompts=prompts,
                     seeds=list(range(args.seed_offset, args.seed_offset + n_seeds)),
                     sampler=SamplerConfig(steps=steps, guidance=args.guidance, eta=args.eta, batched=args.batched,
                                           noise=args.noise, ls_draw=args.ls_draw),
                     rewards=reward_names, objectives=objectives, batch_size=args.batch_size,
                     spec_objective=spec_objective, dtype=args.dtype, reward_options=reward_opts, scales=scales,
                     scheduler=args.scheduler)
    if state.is_main_process:
        save_config(out_dir, exp, {"adapters": {n: {"path": lw.extra.get("file"), "sha256": lw.sha256,
                                                    "format": lw.fmt} for n, lw in loras.items()},
                                   "scheduler": args.scheduler, "argv": argv, "device": str(device),
                                   "dtype": args.dtype, **provenance()})
    state.wait_for_everyone()
    log.info("%d configs × %d prompts × %d seeds = %d images; rewards: %s", len(specs), len(prompts), n_seeds,
             len(specs) * len(prompts) * n_seeds, ", ".join(reward_names))
    run_units(exp, bundle, loras, reward_fns, out_dir, state.process_index, state.num_processes,
              base_record={"source": bundle.source})
    state.wait_for_everyone()
    if state.is_main_process:
        rows, total = merge_results(out_dir, exp, loras)
        wanted = len(specs) * len(prompts) * n_seeds
        note = (f"Built from the {len(rows)} rows this command asked for ({len(specs)} configs × {len(prompts)} "
                f"prompts × {n_seeds} seeds; rewards {', '.join(reward_names)}"
                + (f"; scales {dict(zip(reward_names, scales))}" if scales else "")
                + f"); results.jsonl holds all {total} rows of {out_dir}.")
        if len(rows) < wanted:
            log.warning("only %d of the %d rows this command asked for are stored (another process failed?); "
                        "re-run the same command to complete them", len(rows), wanted)
            note += f" {wanted - len(rows)} requested rows are missing: re-run the same command."
        table = write_summary(out_dir, rows, reward_names, [o.label for o in objectives], note=note)
        if not args.no_grids:
            write_grids(out_dir, [r for r in rows if (out_dir / r["image"]).exists()])
        plot_pareto(out_dir, summarise(rows), reward_names)
        print(table)
        log.info("wrote %d result rows (of %d in results.jsonl), summary.md, summary.json%s and pareto.png to %s",
                 len(rows), total, "" if args.no_grids else ", grids/", out_dir)
    return 0


def build_specs(methods_arg: str | None, adapters: list[str], weights: list[tuple[float, ...]],
                lambdas: list[float], oracle_specs: list[BlendSpec], original: bool, reward_names=(),
                baseline_args: argparse.Namespace | None = None, steps: int = 50,
                scales: dict[str, float] | None = None) -> list[BlendSpec]:
    """The method configurations to run, in table order."""
    from blend.baselines.options import baseline_specs
    from blend.spec import BlendSpec

    m = len(adapters)
    if methods_arg:
        methods = [x.strip() for x in methods_arg.split(",") if x.strip()]
        unknown = [x for x in methods if x not in ALL_METHODS]
        if unknown:
            raise SystemExit(f"error: unknown method(s) {unknown}; choose from {', '.join(ALL_METHODS)}")
    elif original:
        methods = ["mpa"]
    else:
        methods = ["base"] + (["single"] if m else []) + (["soup", "soup_factors", "mpa", "mpa_ls"] if m > 1 else []) \
            + (["kla"] if m else []) + (["oracle"] if oracle_specs else [])
    needs_w = {"mpa", "mpa_ls", "soup", "soup_factors", "hybrid_late"} & set(methods)
    if set(BASELINE_METHODS) & set(methods) and not weights and len(reward_names) == 1:
        weights = [(1.0,)]
    if set(BASELINE_METHODS) & set(methods) and not weights:
        raise SystemExit(f"error: the baselines need --weights over the rewards {list(reward_names)}")
    if needs_w and m > 1 and not weights:
        raise SystemExit(f"error: methods {sorted(needs_w)} need --weights (a vector over the {m} adapters "
                         f"{adapters}, e.g. --weights {','.join(['%g' % (1 / m)] * m)})")
    bad = [w for w in weights if len(w) != (m or len(reward_names))]
    if bad:
        raise SystemExit(f"error: weight vector {bad[0]} has {len(bad[0])} entries but there are {m} adapters "
                         f"{adapters}")
    specs: list[BlendSpec] = []
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        for method in methods:
            try:
                if method == "base":
                    specs.append(BlendSpec("base"))
                elif method == "single":
                    specs += [BlendSpec("single", (a,)) for a in adapters]
                elif method == "oracle":
                    specs += oracle_specs
                elif method in BASELINE_METHODS:  # blend.baselines
                    specs += baseline_specs(method, adapters, list(reward_names), weights or [(1.0,)],
                                            baseline_args or build_parser().parse_args([]), steps, scales)
                elif method == "kla":
                    vecs = [(1.0,)] if m == 1 else weights
                    names = tuple(adapters) if m > 1 else (adapters[0],)
                    if m > 1 and not vecs:
                        raise SystemExit("error: kla with several adapters needs --weights")
                    specs += [BlendSpec("kla", names, w, lam=lam) for w in vecs for lam in lambdas]
                else:
                    vecs = weights if m > 1 else [(1.0,)]
                    specs += [BlendSpec(method, tuple(adapters), w) for w in vecs]
            except ValueError as exc:
                raise SystemExit(f"error: {exc}") from exc
    seen, unique = set(), []
    for s in specs:
        if s.label not in seen:
            seen.add(s.label)
            unique.append(s)
    return unique


def _without_impossible_soups(specs: list[BlendSpec], loras: dict, methods_arg: str | None) -> list[BlendSpec]:
    """Soups merge UNet LoRA weights: not possible with full-UNet members or text-encoder LoRA parts."""
    blocked = [n for n, lw in loras.items() if lw.fmt == "full-unet" or lw.extra.get("text_encoder_layers")]
    soups = [s for s in specs if s.is_soup and set(s.adapters) & set(blocked)]
    if not soups:
        return specs
    if methods_arg and any(m.strip() in ("soup", "soup_factors") for m in methods_arg.split(",")):
        raise SystemExit(f"error: a soup merges the adapters' UNet LoRA weights, which {blocked} cannot be (a full "
                         f"UNet, or text-encoder LoRA parts); drop soup/soup_factors from --methods")
    log.info("soup baselines skipped: %s are full UNets or have text-encoder LoRA parts", blocked)
    return [s for s in specs if s not in soups]


def attach_schedules(specs: list[BlendSpec], starts: list[tuple[float, ...]], ends: list[tuple[float, ...]],
                     kind: str) -> list[BlendSpec]:
    """Give every mpa / mpa_ls / kla spec whose weights are a --weights vector the schedule to its --weights_end."""
    from blend.schedule import WeightSchedule
    from blend.spec import BlendSpec

    if len(ends) not in (1, len(starts)):
        raise SystemExit(f"error: {len(ends)} --weights_end vectors for {len(starts)} --weights vectors; give one, "
                         f"or one per --weights vector")
    end_of = {tuple(w): ends[0] if len(ends) == 1 else ends[i] for i, w in enumerate(starts)}
    out = []
    for s in specs:
        end = end_of.get(tuple(s.weights)) if s.method in ("mpa", "mpa_ls", "kla") and len(s.adapters) > 1 else None
        if end is None:
            out.append(s)
            continue
        try:
            s.with_weights(end)  # the end vector is a valid blend too
            out.append(BlendSpec(s.method, s.adapters, s.weights, s.lam, s.role,
                                 extra={**s.extra, "schedule": WeightSchedule(s.weights, end, kind)}))
        except ValueError as exc:
            raise SystemExit(f"error: --weights_end {list(end)}: {exc}") from exc
    return out


def _write_demo_adapters(bundle, directory: Path) -> list[tuple[str, str]]:
    """Two random LoRAs for the built-in tiny model, written as diffusers files and read back like any adapter."""
    from diffusion.lora import random_lora, save_lora

    out = []
    for name, seed in (("demo_a", 1), ("demo_b", 2)):
        path = directory / name
        if not (path / "pytorch_lora_weights.safetensors").exists():
            save_lora(random_lora(bundle.unet, seed=seed, std_b=0.3), path)
        out.append((name, str(path)))
    return out
