"""Command line of ``run_DB.py``: the flags (new and original) and ``main``, a thin shell over the API.

``main`` parses the flags, hands them to :func:`blend.run_plan.plan_from_args` (every check, before any model is
loaded) and runs the plan with :func:`blend.runner.execute`; it only adds what a command line needs: the toy-world
default when no model is named, ``--list_rewards``, run.log, and one ``error:`` line for a user error."""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import math
import sys
import textwrap
from pathlib import Path

# Only light imports at module level: `run_DB.py --help` and `--list_rewards` must not import torch,
# diffusers or peft (seconds); everything heavy is imported inside main() (blend.runner) and the plan's functions.
from blend import run_plan
from blend.baselines.options import add_baseline_args  # light: no torch
from blend.methods import baseline_names, method_names, reference_method  # light: no torch
from blend.run_plan import (  # noqa: F401 - re-exported: blend.live, blend.ui and the tests use them from here
    DEFAULT_BASE_MODEL,
    DEFAULT_PROMPTS,
    PAPER_BASE_MODEL,
    REPO,
    TOY_DEFAULTS,
    TOY_WEIGHTS,
    PlanError,
    apply_builtin_default,
    plan_from_args,
)
from dbcore.logging import get_logger, setup_logging

log = get_logger("run_DB")

BASELINE_METHODS = baseline_names()  # the registry's (blend.methods), which loads no torch
METHODS = method_names()
SCHEDULER_NAMES = ("ddim", "dpm++", "dpm++_sde", "euler", "euler_a", "pndm", "unipc", "ddpm")  # diffusion.schedulers
ALL_METHODS = (*METHODS, *method_names(lambda m: m.plan_only, plan=True))


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show "(default: X)" only for defaults that say something (not None, [], False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, [], False) or "[default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


EXAMPLES = """examples:
  python run_DB.py                                   # the toy world's default run (CPU, about a minute)
  python run_DB.py --methods mpa,soup --weights '0.3,0.7;0.7,0.3' --out_dir outputs/sweep
  python run_DB.py --base_model builtin:tiny --n_seeds 1          # random demo adapters, code paths only
  python run_DB.py --base_model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
      --lora t2i=ckpt/t2i --lora vila=ckpt/vila --rewards image_reward,vila --weights 0.5,0.5 --device cuda
  python run_DB.py --list_rewards                    # the rewards, their scales and what they need
  python run_DB.py --ui                              # the live web page (python run_DB.py --ui --help)

With no model flag (--base_model, --lora, --oracle, --t2i_path, --vila_path, --ir_weight) every flag not given takes
its "[toy default: X]" value; otherwise the plain defaults apply. See README.md and docs/."""


def builtin_models_text() -> str:
    """The built-in models as '  builtin:NAME  what it is' lines (from diffusion.sources; no torch)."""
    from diffusion.sources import BUILTIN_DESCRIPTIONS, BUILTIN_PREFIX

    return "; ".join(f"{BUILTIN_PREFIX}{name}: {text}" for name, text in BUILTIN_DESCRIPTIONS.items())


def _toy_default_text(value) -> str:
    """A TOY_DEFAULTS value as shown in --help (repository paths relative to the repository)."""
    items = value if isinstance(value, list) else [value]
    shown = [str(v).replace(str(REPO) + "/", "") for v in items]
    return " ".join(shown)


def mark_toy_defaults(p: argparse.ArgumentParser) -> None:
    """Append "[toy default: X]" to the help of every flag whose value in the no-argument run (TOY_DEFAULTS) differs
    from its parser default (derived from TOY_DEFAULTS, so the help says what `python run_DB.py` really uses)."""
    for action in p._actions:
        if action.dest in TOY_DEFAULTS and TOY_DEFAULTS[action.dest] != action.default and action.help:
            action.help += f" [toy default: {_toy_default_text(TOY_DEFAULTS[action.dest])}]".replace("%", "%%")


def build_parser(first=None) -> argparse.ArgumentParser:
    """run_DB.py's flags; ``first(parser)`` adds argument groups shown before them (the web page's flags)."""
    p = argparse.ArgumentParser(
        prog="run_DB.py", formatter_class=_Formatter, epilog=EXAMPLES,
        description=textwrap.fill(
            "Sample with blended noise predictions (DB-MPA, DB-KLA, DB-MPA-LS) and baselines, score every image, and "
            "write images, results.jsonl, summary tables, grids and a Pareto plot. With no arguments it runs the toy "
            "world's default (the [toy default: X] values below).", 100))
    if first is not None:
        first(p)
    g = p.add_argument_group("model and adapters")
    g.add_argument("--base_model", "--pretrained_model_name_or_path", dest="base_model", default=None,
                   help=f"hub id, local Stable-Diffusion-format directory, or a built-in model: {builtin_models_text()} "
                        f"[default: {PAPER_BASE_MODEL} with the original flags]")
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
                   help=f"comma-separated, from {', '.join((*method_names(), *method_names(lambda m: m.plan_only, plan=True)))}"
                        f" [default: every method that the adapters allow; {reference_method()!r} with the original "
                        f"flags]")
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
    g.add_argument("--n_seeds", type=int, default=None, help="seeds per prompt (0..n-1) [default: 5 as the original; 2 for builtin:tiny]")
    g.add_argument("--seed_offset", type=int, default=0, help="first seed")
    g.add_argument("--check", action="store_true",
                   help="check every flag and the plan, print its size and exit: nothing is loaded, sampled or written")
    g.add_argument("--yes", action="store_true",
                   help=f"start a plan of more than {run_plan.LARGE_PLAN:,} images (refused without it, after "
                        f"printing its size and a time estimate)")
    g = p.add_argument_group("sampler")
    g.add_argument("--steps", "--num_inference_steps", dest="steps", type=int, default=None,
                   help="DDIM steps [default: 50 (paper); 10 for the built-in models]")
    g.add_argument("--guidance", "--guidance_scale", dest="guidance", type=float, default=7.5,
                   help="classifier-free guidance scale, applied per model before blending")
    g.add_argument("--eta", type=float, default=1.0, help="DDIM η (1 = the paper's stochastic sampler)")
    g.add_argument("--scheduler", default="ddim", choices=list(SCHEDULER_NAMES),
                   help="diffusers scheduler whose step the blended ε drives (built from the model's scheduler "
                        "config); ddim with η = 1 is the paper's")
    g.add_argument("--batch_size", type=int, default=8, help="images per UNet batch")
    g.add_argument("--mix_weights", action="store_true",
                   help="batch the weight vectors (or λ) of one method and adapter set together, per-image weights in "
                        "one UNet call (K weights cost one call, not K); rows keep their keys, images equal separate "
                        "calls up to float rounding")
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
    g.add_argument("--report_rewards", default=None, metavar="R1,R2,...",
                   help="more rewards to score and show beside --rewards, outside the weighted reward (e.g. the judge "
                        "the adapters were trained on, or a ground-truth check)")
    g.add_argument("--guide_rewards", default=None, metavar="R1,R2,...",
                   help="what the reward-using baselines (best-of-N, CoDe, RGG, SMC) select or guide with, one per "
                        "--rewards entry [default: --rewards]; evaluation stays on --rewards, so a method is not graded "
                        "by the judge it climbs")
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
    if "--ui" not in p._option_string_actions:
        p.add_argument("--ui", action="store_true", help="serve the live web page instead (python run_DB.py --ui --help)")
    mark_toy_defaults(p)
    return p


def list_rewards_text() -> str:
    from rewards.catalog import reward_catalog  # read from the source: no torch

    lines = []
    for info in reward_catalog():
        lines.append(f"{info.name:24s} {'differentiable' if info.differentiable else 'black-box':15s} {info.scale}")
        lines.append(f"{'':24s} {info.description}; needs: {info.needs}")
    return "\n".join(lines)


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


USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, TimeoutError)


def check_flag_values(parser: argparse.ArgumentParser, args: argparse.Namespace, explicit: set[str],
                      argv: list[str] | None) -> None:
    """Refuse what argparse lets through, for every flag of ``parser`` (derived from its actions, not a list): an
    empty value given on the command line (``--methods ""`` would silently mean the default) and a non-finite number
    of a float flag (``--eta nan``). Raises :class:`PlanError` naming the flag as typed."""
    for action in parser._actions:
        if not action.option_strings or action.dest not in explicit or action.nargs == 0:
            continue
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        flag = typed_flag(parser, argv, action.dest)
        if any(isinstance(v, str) and not v.strip() for v in values):
            raise PlanError(f"{flag} is empty; give it a value or leave the flag out (an empty value is not its "
                            f"default)")
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise PlanError(f"{flag} must be a finite number, got {value}")


def check_out_dir(out_dir: Path) -> None:
    """``--out_dir`` must be a directory or creatable as one; raises SystemExit with one ``error:`` line."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SystemExit(f"error: --out_dir {out_dir} is a file, not a directory; pass a directory (it is created "
                         f"if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"error: --out_dir {out_dir} cannot be created ({exc.strerror or exc}: "
                         f"{exc.filename or out_dir}); pass a directory you can write to") from None


def _os_error_line(exc: OSError, out_dir: Path) -> str:
    """One ``error:`` line for an OSError of the run (a full disk says what was kept)."""
    where = exc.filename or out_dir
    if exc.errno == errno.ENOSPC:
        parts = sorted((out_dir / "parts").glob("*.jsonl")) if (out_dir / "parts").is_dir() else []
        n_rows = sum(sum(1 for line in p.open("rb") if line.strip()) for p in parts)
        return (f"error: the disk is full (no space left writing {where}); every result row written before it is "
                f"kept ({n_rows} rows in {out_dir / 'parts'}, images whole or absent); free space and re-run the "
                f"same command to resume")
    return f"error: {exc.strerror or exc}: {where}"


def _to_run_log(out_dir: Path, message: str) -> None:
    """Write ``message`` to this run's run.log only (the console gets it from SystemExit)."""
    target = str((out_dir / "run.log").resolve())
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in get_logger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == target:
            handler.handle(record)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors exit with one ``error:`` line (also in run.log), Ctrl-C with one line.

    Every flag and the plan are checked before torch, diffusers or peft are imported (:mod:`blend.run_plan`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ui:  # run_DB.py hands --ui to blend.ui before this (blend.ui imports this module, not the reverse)
        raise SystemExit("error: --ui serves the web page: python run_DB.py --ui or python -m blend.ui")
    if args.list_rewards:
        print(list_rewards_text())
        return 0
    out_dir = Path(args.out_dir)
    if not args.out_dir.strip():
        raise SystemExit("error: --out_dir is empty; give it a directory or leave the flag out")
    if args.check:
        setup_logging()
    else:
        check_out_dir(out_dir)
        setup_logging(log_file=out_dir / "run.log")
    try:
        explicit = _explicit_flags(parser, argv)
        check_flag_values(parser, args, explicit, argv)
        plan = plan_from_args(args, explicit, argv,
                              flag_names={dest: typed_flag(parser, argv, dest) for dest in explicit | {"steps"}})
        if args.check:
            print(f"ok: {len(plan.specs)} method configurations × {len(plan.prompts)} prompts × {len(plan.seeds)} seeds "
                  f"= {len(plan.specs) * len(plan.prompts) * len(plan.seeds):,} images; rewards "
                  f"{', '.join(plan.rewards)}; nothing was run")
            return 0
        from blend.runner import execute

        result = execute(plan)
        if result is not None:
            print(result.table)
        return 0
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
    except OSError as exc:  # a full disk, a permission: one line naming the file, not a traceback
        message = _os_error_line(exc, out_dir)
        _to_run_log(out_dir, message)
        raise SystemExit(message) from None


# ---------------------------------------------------------------------- the plan's helpers, as command-line calls
# blend.live (run_DB.py --ui) and older callers use these names; they raise SystemExit("error: ...") as before.

def _exits(fn):
    """``fn`` with :class:`PlanError` turned into the command line's one-line ``SystemExit('error: ...')``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PlanError as exc:
            raise SystemExit(f"error: {exc}") from None

    return wrapper


_parse_weights = _exits(run_plan.parse_weights)
_named_paths = _exits(run_plan.named_paths)
_reward_options = _exits(run_plan.reward_options)
_reward_scales = _exits(run_plan.reward_scales)
resolve_device = _exits(run_plan.resolve_device)
check_checkpoint = _exits(run_plan.check_checkpoint)


def _write_demo_adapters(bundle, directory: Path) -> list[tuple[str, str]]:
    """Two random LoRAs for the built-in tiny model (blend.runner.write_demo_adapters)."""
    from blend.runner import write_demo_adapters

    return write_demo_adapters(bundle, directory)
