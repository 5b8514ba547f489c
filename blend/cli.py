"""Command line of ``run_DB.py``: parse flags (new and original), build the experiment, run it."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch

from blend.experiment import Experiment, Objective, merge_results, run_units, save_config
from blend.report import plot_pareto, summarise, write_grids, write_summary
from blend.sampler import SamplerConfig
from blend.spec import METHODS, BlendSpec
from diffusion_blend.logging import get_logger, setup_logging
from diffusion_blend.prompts import load_prompts
from diffusion_blend.provenance import provenance

log = get_logger("run_DB")

PAPER_BASE_MODEL = "runwayml/stable-diffusion-v1-5"
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
                   help="a LoRA adapter (PEFT dir, diffusers .safetensors or legacy attn-procs .bin); repeat; the "
                        "order fixes the order of the weights")
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
    g.add_argument("--batch_size", type=int, default=8, help="images per UNet batch")
    g.add_argument("--batched", action="store_true",
                   help="evaluate all blended models in one routed UNet call (for GPUs; the same numbers up to float "
                        "rounding; slower on CPUs)")
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
    from rewards import list_rewards

    lines = []
    for info in list_rewards():
        lines.append(f"{info.name:24s} {'differentiable' if info.differentiable else 'black-box':15s} {info.scale}")
        lines.append(f"{'':24s} {info.description}; needs: {info.needs}")
    return "\n".join(lines)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ui:  # run_DB.py hands --ui to blend.ui before this (blend.ui imports this module, not the reverse)
        raise SystemExit("error: --ui serves the web page: python run_DB.py --ui or python -m blend.ui")
    if args.list_rewards:
        print(list_rewards_text())
        return 0
    out_dir = Path(args.out_dir)
    setup_logging(log_file=out_dir / "run.log")
    from accelerate import PartialState

    device = resolve_device(args.device)
    state = PartialState(cpu=device.type == "cpu")
    if device.type == "cuda" and state.num_processes > 1:
        device = state.device
    dtype = getattr(torch, args.dtype)
    if device.type == "cpu" and dtype != torch.float32:
        raise SystemExit("error: use --dtype float32 on the CPU (half precision is for GPUs)")

    toy_default = apply_builtin_default(args, _explicit_flags(parser, argv))
    original = bool(args.t2i_path or args.vila_path or args.ir_weight is not None)
    adapters = _named_paths(args.lora, "--lora")
    if args.t2i_path:
        adapters.append(("t2i", args.t2i_path))
    if args.vila_path:
        adapters.append(("vila", args.vila_path))
    oracles = _named_paths(args.oracle, "--oracle")
    base_model = args.base_model or (PAPER_BASE_MODEL if original else DEFAULT_BASE_MODEL)
    builtin_demo = base_model == "builtin:tiny" and not adapters  # random demo adapters for the tiny model
    if toy_default:
        log.info("no model given: running the built-in toy-world default (python run_DB.py --help for flags)")

    weights = _parse_weights(args.weights)
    if args.ir_weight is not None:
        weights.append((args.ir_weight, 1.0 - args.ir_weight))
    reward_names = [r for r in (args.rewards or ("image_reward,vila" if original else
                                                  "jpeg_compressibility,colorfulness")).split(",") if r]
    if args.prompt_file:
        prompts = load_prompts(args.prompt_file)
    elif args.prompts:
        prompts = [p.strip() for p in args.prompts.split("|") if p.strip()]
    else:
        prompts = DEFAULT_PROMPTS
    n_seeds = args.n_seeds if args.n_seeds is not None else (2 if builtin_demo else 5)
    if n_seeds < 1:
        raise SystemExit("error: --n_seeds must be ≥ 1")
    steps = args.steps or (10 if base_model.startswith("builtin:") else 50)
    try:
        lambdas = [float(x) for x in args.lambdas.split(",") if x.strip()]
    except ValueError as exc:
        raise SystemExit(f"error: --lambdas {args.lambdas!r} must be comma-separated numbers, e.g. 0.5,1.5") from exc

    from rewards import get_reward

    reward_opts = _reward_options(args.reward_option)
    reward_fns = {name: get_reward(name, device=device, dtype=torch.float32, cache_dir=args.cache_dir,
                                   **reward_opts.get(name, {})) for name in reward_names}

    from diffusion.loading import load_bundle
    from diffusion.lora import load_adapter

    bundle = load_bundle(base_model, device=device, dtype=dtype, cache_dir=args.cache_dir)
    if builtin_demo:
        adapters = _write_demo_adapters(bundle, out_dir / "builtin_adapters")
        if not weights:
            weights = [(0.5, 0.5)]
    loras = {name: load_adapter(bundle.unet, name, path) for name, path in adapters}
    oracle_specs, spec_objective = [], {}
    for i, (w_text, path) in enumerate(oracles):
        w = _parse_weights([w_text])[0]
        target = Objective(w, tuple(reward_names)).label
        name = f"oracle{i}_w" + "_".join(f"{x:g}" for x in w).replace(".", "p").replace("-", "m")
        loras[name] = load_adapter(bundle.unet, name, path)
        oracle_specs.append(BlendSpec("single", (name,), role="oracle", extra={"target": target}))
        spec_objective[oracle_specs[-1].label] = target

    specs = build_specs(args.methods, [a for a, _ in adapters], weights, lambdas, oracle_specs, original)
    scales = _reward_scales(args.reward_scale, reward_names)
    objectives = []
    if len(reward_names) == len(adapters):
        objectives = [Objective(w, tuple(reward_names), scales) for w in weights]
        for s in specs:
            if s.method in ("mpa", "mpa_ls", "soup", "soup_factors") or s.method == "kla" and len(s.adapters) > 1:
                spec_objective[s.label] = Objective(s.weights, tuple(reward_names)).label
    exp = Experiment(base_model=base_model, specs=specs, prompts=prompts,
                     seeds=list(range(args.seed_offset, args.seed_offset + n_seeds)),
                     sampler=SamplerConfig(steps=steps, guidance=args.guidance, eta=args.eta, batched=args.batched),
                     rewards=reward_names, objectives=objectives, batch_size=args.batch_size,
                     spec_objective=spec_objective)
    check_resumable(out_dir, exp, loras)
    if state.is_main_process:
        save_config(out_dir, exp, {"adapters": {n: {"path": lw.extra.get("file"), "sha256": lw.sha256,
                                                    "format": lw.fmt} for n, lw in loras.items()},
                                   "argv": argv, "device": str(device), "dtype": args.dtype, **provenance()})
    state.wait_for_everyone()
    log.info("%d configs × %d prompts × %d seeds = %d images; rewards: %s", len(specs), len(prompts), n_seeds,
             len(specs) * len(prompts) * n_seeds, ", ".join(reward_names))
    run_units(exp, bundle, loras, reward_fns, out_dir, state.process_index, state.num_processes,
              base_record={"source": bundle.source})
    state.wait_for_everyone()
    if state.is_main_process:
        rows = merge_results(out_dir, exp)
        table = write_summary(out_dir, rows, reward_names, [o.label for o in objectives])
        if not args.no_grids:
            write_grids(out_dir, rows)
        plot_pareto(out_dir, summarise(rows), reward_names)
        print(table)
        log.info("wrote %d result rows, summary.md, summary.json%s and pareto.png to %s", len(rows),
                 "" if args.no_grids else ", grids/", out_dir)
    return 0


def build_specs(methods_arg: str | None, adapters: list[str], weights: list[tuple[float, ...]],
                lambdas: list[float], oracle_specs: list[BlendSpec], original: bool) -> list[BlendSpec]:
    """The method configurations to run, in table order."""
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
    needs_w = {"mpa", "mpa_ls", "soup", "soup_factors"} & set(methods)
    if needs_w and m > 1 and not weights:
        raise SystemExit(f"error: methods {sorted(needs_w)} need --weights (a vector over the {m} adapters "
                         f"{adapters}, e.g. --weights {','.join(['%g' % (1 / m)] * m)})")
    bad = [w for w in weights if len(w) != m]
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


def check_resumable(out_dir: Path, exp: Experiment, loras: dict) -> None:
    """Refuse to resume into a directory whose earlier run used different settings (its rows would be wrong)."""
    cfg_path = out_dir / "config.json"
    if not cfg_path.exists():
        return
    old = json.loads(cfg_path.read_text())
    checks = {"base_model": exp.base_model, "prompts": exp.prompts, "sampler": exp.sampler.__dict__,
              "rewards": exp.rewards}
    for key, value in checks.items():
        if json.loads(json.dumps(value)) != old.get(key):
            raise SystemExit(f"error: {out_dir} holds a run with a different {key} ({old.get(key)!r} vs {value!r}); "
                             f"results would mix. Use a new --out_dir or delete the old one.")
    for name, lw in loras.items():
        prev = old.get("adapters", {}).get(name)
        if prev and prev.get("sha256") != lw.sha256:
            raise SystemExit(f"error: adapter {name!r} changed since the run in {out_dir} (sha256 differs); "
                             f"use a new --out_dir")


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
