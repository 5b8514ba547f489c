"""Execute a :class:`blend.run_plan.RunPlan`: load the rewards, the base model and the blend members, sample and score
the units of this process (:func:`blend.experiment.run_units`), merge the results and write the report (summary
tables, grids, Pareto plot). ``run_DB.py`` is ``execute(plan_from_args(flags))``; several processes (``accelerate
launch``) split the units and the main one merges."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState

from blend.experiment import Experiment, image_ok, merge_results, run_units, save_config
from blend.report import plot_paired, plot_pareto, summarise, write_grids, write_summary
from blend.run_plan import PlanError, RunPlan
from blend.spec import BlendSpec
from dbcore.logging import get_logger
from dbcore.provenance import provenance
from diffusion.bundle import ModelBundle

log = get_logger("run_DB")


@dataclass
class RunResult:
    """What the main process merged: this command's rows (table order), the rows in results.jsonl, the summary."""

    rows: list[dict]
    total: int
    table: str


def load_plan(plan: RunPlan, device: torch.device) -> tuple[dict, object, dict]:
    """What a plan samples and scores with: its rewards, the base model (with --scheduler) and every member (the
    --lora adapters or the demo ones, the --model UNets, the oracles). Returns (reward_fns, bundle, loras)."""
    from diffusion.loading import load_bundle
    from diffusion.lora_formats import add_unet_member, load_adapter_any, unet_member_record
    from diffusion.schedulers import make_scheduler
    from rewards import get_reward

    reward_fns = {name: get_reward(name, device=device, dtype=torch.float32, cache_dir=plan.cache_dir,
                                   **plan.reward_options.get(name, {})) for name in plan.rewards}
    bundle = load_bundle(plan.base_model, device=device, dtype=getattr(torch, plan.dtype), cache_dir=plan.cache_dir)
    adapters = [(n, p) for n, p, _ in plan.adapters]
    if plan.demo_adapters:
        adapters = write_demo_adapters(bundle, plan.out_dir / "builtin_adapters", plan.demo_adapters)
    if plan.scheduler != "ddim":
        bundle.scheduler = make_scheduler(plan.scheduler, bundle.scheduler.config)
    loras = {name: load_adapter_any(bundle, name, path, cache_dir=plan.cache_dir) for name, path in adapters}
    for name, path in plan.members:
        add_unet_member(bundle, name, path)
        loras[name] = unet_member_record(path)
    for name, path in plan.oracles.items():
        loras[name] = load_adapter_any(bundle, name, path, cache_dir=plan.cache_dir)
    return reward_fns, bundle, loras


def execute(plan: RunPlan) -> RunResult | None:
    """Run ``plan`` into ``plan.out_dir`` (resuming what is stored there); the result on the main process, else None.

    Soups of members that cannot be merged (a full UNet, text-encoder LoRA parts) are refused when --methods named
    them (:class:`PlanError`) and skipped otherwise.
    """
    out_dir = plan.out_dir
    device = torch.device(plan.device)
    state = PartialState(cpu=device.type == "cpu")
    if device.type == "cuda" and state.num_processes > 1:
        device = state.device
    reward_fns, bundle, loras = load_plan(plan, device)
    specs = without_impossible_soups(plan.specs, loras, plan.methods_arg)
    exp = Experiment(base_model=plan.base_model, specs=specs, prompts=plan.prompts, seeds=plan.seeds,
                     sampler=plan.sampler, rewards=plan.rewards, objectives=plan.objectives,
                     batch_size=plan.batch_size, spec_objective=plan.spec_objective, dtype=plan.dtype,
                     reward_options=plan.reward_options, scales=plan.scales, scheduler=plan.scheduler,
                     mix_weights=plan.mix_weights)
    if state.is_main_process:
        save_config(out_dir, exp, {"adapters": {n: {"path": lw.extra.get("file"), "sha256": lw.sha256,
                                                    "format": lw.fmt} for n, lw in loras.items()},
                                   "scheduler": plan.scheduler, "argv": plan.argv, "device": str(device),
                                   "dtype": plan.dtype, **provenance()})
    state.wait_for_everyone()
    n_prompts, n_seeds = len(plan.prompts), len(plan.seeds)
    log.info("%d configs × %d prompts × %d seeds = %d images; rewards: %s", len(specs), n_prompts, n_seeds,
             len(specs) * n_prompts * n_seeds, ", ".join(plan.rewards))
    run_units(exp, bundle, loras, reward_fns, out_dir, state.process_index, state.num_processes,
              base_record={"source": bundle.source})
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    return write_report(plan, exp, loras)


def write_report(plan: RunPlan, exp: Experiment, loras: dict) -> RunResult:
    """Merge the stored rows into results.jsonl and write summary.md/.json, the forest plot of the paired differences
    (summary_paired.png), the grids (one per config, and the methods side by side) and pareto.png."""
    out_dir = plan.out_dir
    rows, total = merge_results(out_dir, exp, loras)
    n_specs, n_prompts, n_seeds = len(exp.specs), len(exp.prompts), len(exp.seeds)
    wanted = n_specs * n_prompts * n_seeds
    reward_names, scales = exp.rewards, exp.scales
    note = (f"Built from the {len(rows)} rows this command asked for ({n_specs} configs × {n_prompts} "
            f"prompts × {n_seeds} seeds; rewards {', '.join(reward_names)}"
            + (f"; scales {dict(zip(reward_names, scales))}" if scales else "")
            + f"); results.jsonl holds all {total} rows of {out_dir}.")
    if exp.objectives:
        in_wr = list(exp.objectives[0].rewards)
        held = [r for r in in_wr if "heldout" in r]
        beside = [r for r in reward_names if r not in in_wr]
        note += (f" WR is scored with {', '.join(in_wr)}"
                 + (f"; held-out judge(s), which nothing trains or guides on: {', '.join(held)}" if held else "")
                 + (f"; reported beside WR, not in it: {', '.join(beside)}" if beside else "") + ".")
    if len(rows) < wanted:
        log.warning("only %d of the %d rows this command asked for are stored (another process failed?); "
                    "re-run the same command to complete them", len(rows), wanted)
        note += f" {wanted - len(rows)} requested rows are missing: re-run the same command."
    table = write_summary(out_dir, rows, reward_names, [o.label for o in exp.objectives], note=note)
    if plan.grids:
        write_grids(out_dir, [r for r in rows if image_ok(out_dir / r["image"])])
    summary = summarise(rows)
    plot_pareto(out_dir, summary, reward_names)
    forest = plot_paired(out_dir, summary, [o.label for o in exp.objectives])
    log.info("wrote %d result rows (of %d in results.jsonl), summary.md, summary.json%s%s and pareto.png to %s",
             len(rows), total, ", summary_paired.png" if forest else "", ", grids/" if plan.grids else "", out_dir)
    return RunResult(rows, total, table)


def without_impossible_soups(specs: list[BlendSpec], loras: dict, methods_arg: str | None) -> list[BlendSpec]:
    """Soups merge UNet LoRA weights: not possible with full-UNet members or text-encoder LoRA parts."""
    blocked = [n for n, lw in loras.items() if lw.fmt == "full-unet" or lw.extra.get("text_encoder_layers")]
    soups = [s for s in specs if s.is_soup and set(s.adapters) & set(blocked)]
    if not soups:
        return specs
    from blend.methods import method_names

    named_soups = method_names(lambda m: m.is_soup)
    if methods_arg and any(m.strip() in named_soups for m in methods_arg.split(",")):
        raise PlanError(f"a soup merges the adapters' UNet LoRA weights, which {blocked} cannot be (a full UNet, or "
                        f"text-encoder LoRA parts); drop {'/'.join(named_soups)} from --methods")
    log.info("soup baselines skipped: %s are full UNets or have text-encoder LoRA parts", blocked)
    return [s for s in specs if s not in soups]


def write_demo_adapters(bundle: ModelBundle, directory: Path,
                        names: tuple[str, ...] = ("demo_a", "demo_b")) -> list[tuple[str, str]]:
    """Random LoRAs for the built-in tiny model (seeds 1, 2, …), written as diffusers files and read back like any
    adapter; returns [(name, path)]."""
    from diffusion.lora import random_lora, save_lora

    out = []
    for seed, name in enumerate(names, start=1):
        path = directory / name
        if not (path / "pytorch_lora_weights.safetensors").exists():
            save_lora(random_lora(bundle.unet, seed=seed, std_b=0.3), path)
        out.append((name, str(path)))
    return out
