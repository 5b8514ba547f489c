"""The trainer's configuration: one typed dataclass, its command line, and its checks.

Every field is a command-line flag of the same name. The flags of the original DPOK script
(google-research ``dpok/train_online_pg.py``, used unchanged by the Diffusion Blend README) keep
their names and meanings; where a clearer name exists it sits beside the original one
(``--base_model`` = ``--pretrained_model_name_or_path``, ``--iterations`` = ``--max_train_steps``
divided by ``--p_step``, ``--resume`` = ``--resume_from_checkpoint``). Original flags that have no
effect here are still accepted, say so in ``--help`` and log a warning when set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

ALGORITHMS = ("dpok", "draft")
ADVANTAGE_NORMS = ("none", "batch", "prompt", "prompt_running")
REWARD_NORMS = ("none", "base_std", "running_std")
PRECISIONS = ("no", "fp16", "bf16")


def _f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - mirrors argparse
    meta = {"help": help, **kw}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """DPOK (and DRaFT-K) LoRA fine-tuning. Defaults are DPOK's (docs/method.md §4), except where noted."""

    # --- model and data -----------------------------------------------------------------------
    base_model: str = _f("stable-diffusion-v1-5/stable-diffusion-v1-5",  # the maintained copy of DPOK's deleted id
                         "base model: a hub id, a local Stable-Diffusion-format directory or builtin:tiny",
                         alias="--pretrained_model_name_or_path")
    cache_dir: str | None = _f(None, "where hub models and reward checkpoints are cached")
    output_dir: str = _f("online_model", "run directory: checkpoint-<iteration>/ folders and logs/ are written here "
                         "(DPOK appended the hyper-parameters to this path; here they go to manifest.json instead)")
    prompt_path: str | None = _f(None, "prompt file: a JSON list, DPOK's {prompt: {category: ...}} dict, or .txt "
                                 "(used when --single_flag 0)")
    prompt_category: str = _f("all", "with a DPOK dict prompt file: 'all' or comma-separated categories to keep")
    single_flag: int = _f(1, "1: train on the single prompt --single_prompt (DPOK's default); "
                          "0: train on the prompts of --prompt_path")
    single_prompt: str = _f("A green colored rabbit.", "the prompt used when --single_flag 1")
    reward: str = _f("image_reward", "reward NAME, or a weighted sum NAME:W,NAME:W (the MORL oracle), from the "
                     "reward registry (rewards/); e.g. --reward image_reward:0.5,vila:0.5")
    reward_filter: int = _f(0, "0: raw reward; 1: clamp the (summed) reward at 0 from below (DPOK)")
    algorithm: str = _f("dpok", "dpok: online policy gradient (the paper); draft: back-propagate a differentiable "
                        "reward through the last --draft_k sampling steps (DRaFT-K; for CPU-sized runs)",
                        choices=ALGORITHMS)

    # --- sampling (rollouts) --------------------------------------------------------------------
    num_inference_steps: int = _f(50, "DDIM steps per rollout")
    guidance_scale: float = _f(7.5, "classifier-free guidance scale, in rollouts and in the loss")
    eta: float = _f(1.0, "DDIM eta; must be > 0 for DPOK (the policy needs a density)")
    g_batch_size: int = _f(6, "prompts per process per rollout")
    num_samples: int = _f(1, "samples per prompt per rollout (the samples of one prompt share the prompt, not "
                          "the noise)")
    g_step: int = _f(1, "rollouts per iteration")
    samples_per_iteration: int | None = _f(None, "clearer alternative to --g_batch_size: samples per rollout over "
                                           "all processes; must divide by processes x --num_samples")
    rollout_chunk: int | None = _f(None, "sample a rollout in chunks of this many images (memory); must divide the "
                                   "samples per rollout per process")

    # --- policy update ----------------------------------------------------------------------------
    max_train_steps: int = _f(10000, "DPOK's step budget: the run has max_train_steps // p_step iterations")
    iterations: int | None = _f(None, "number of iterations (rollout + value update + policy update); "
                                "overrides --max_train_steps")
    p_step: int = _f(5, "optimizer steps of the policy per iteration")
    p_batch_size: int = _f(2, "transitions per policy micro-batch per process (sampled from the buffer)")
    gradient_accumulation_steps: int = _f(12, "micro-batches per policy optimizer step")
    learning_rate: float = _f(1e-5, "AdamW learning rate of the LoRA")
    lr_scheduler: str = _f("constant", "diffusers learning-rate schedule (constant, linear, cosine, ...)")
    lr_warmup_steps: int = _f(0, "warm-up optimizer steps of the schedule")
    adam_beta1: float = _f(0.9, "AdamW beta1")
    adam_beta2: float = _f(0.999, "AdamW beta2")
    adam_weight_decay: float = _f(0.0, "AdamW weight decay")
    adam_epsilon: float = _f(1e-8, "AdamW epsilon")
    clip_norm: float = _f(0.1, "gradient-norm clip of the LoRA (per optimizer step)")
    reward_weight: float = _f(100.0, "weight of the policy-gradient (reward) term")
    kl_weight: float = _f(0.01, "weight of the KL term mean((eps_theta - eps_pre)^2) on the guided eps")
    kl_warmup: int = _f(-1, "the KL term is used only from iteration kl_warmup + 1 on (-1: always)")
    ratio_clip: float = _f(1e-4, "the importance ratio is clamped to [1 - ratio_clip, 1 + ratio_clip]")
    advantage_norm: str = _f("none", "none: advantage = reward - V (DPOK); batch: z-score rewards over the rollout; "
                             "prompt: z-score within each prompt's --num_samples group; prompt_running: z-score "
                             "with a running mean and std per prompt (DDPO's tracker; --stat_buffer_size, "
                             "--stat_min_count)", choices=ADVANTAGE_NORMS)
    train_timesteps: int | None = _f(None, "store only this many uniformly random (stochastic) timesteps per "
                                     "trajectory; the loss is a mean over transitions, so its expectation is kept "
                                     "(default: all --num_inference_steps)")
    train_min_std: float = _f(0.0, "train only on steps whose sampling std sigma_k is at least this (their score "
                              "grad log pi scales as 1/sigma_k while their noise barely moves the image); 0: every "
                              "stochastic step (DPOK)")
    buffer_size: int = _f(1000, "replay buffer size, in transitions (the newest are kept)")

    # --- options for small sample budgets (dpok/options.py; the defaults are DPOK's) ------------------
    stat_buffer_size: int = _f(32, "--advantage_norm prompt_running: the last N rewards of each prompt give its "
                               "mean and std")
    stat_min_count: int = _f(16, "--advantage_norm prompt_running: a prompt with fewer rewards than this is "
                             "normalised with the whole rollout's mean and std")
    policy_epochs: int | None = _f(None, "None: DPOK's --p_step optimizer steps on uniform draws from the replay "
                                   "buffer; E: instead, E shuffled passes over this iteration's new transitions "
                                   "(micro-batches of --p_batch_size, a step every --gradient_accumulation_steps; "
                                   "DDPO/PPO-style; raise --ratio_clip with E > 1)")
    v_warmup: int = _f(0, "the first N iterations train only the value function (rollouts + value steps, no "
                       "policy step), so the advantage R - V starts from a fitted baseline; needs --v_flag 1")

    # --- value function ---------------------------------------------------------------------------
    v_flag: int = _f(1, "1: learn a value function V(x_t, c, step) and use reward - V as the advantage; 0: reward")
    v_batch_size: int = _f(256, "transitions per value minibatch per process (capped at the buffer's fill)")
    v_lr: float = _f(1e-4, "AdamW learning rate of the value function")
    v_step: int = _f(5, "value minibatches accumulated into the one value optimizer step per iteration")

    # --- DRaFT-K (--algorithm draft) -------------------------------------------------------------
    draft_k: int = _f(2, "draft: back-propagate through the last K sampling steps")
    reward_norm: str = _f("none", "draft: divide the reward by none, the std of the first (base-model) rollout "
                          "(base_std), or a running std (running_std)", choices=REWARD_NORMS)

    # --- LoRA -------------------------------------------------------------------------------------
    lora_rank: int = _f(4, "LoRA rank")
    lora_alpha: float | None = _f(None, "LoRA alpha (scale alpha/rank); default = rank, i.e. scale 1 as DPOK")
    lora_targets: str = _f("to_q,to_k,to_v,to_out.0", "comma-separated attention projections that get a LoRA")
    lora_init: str = _f("gaussian", "gaussian: A ~ N(0, 1/r^2), B = 0 (DPOK's); or any PEFT init_lora_weights value")

    # --- run --------------------------------------------------------------------------------------
    seed: int | None = _f(None, "seed of everything; a random one is drawn and recorded when not given")
    mixed_precision: str = _f("fp16", "no, fp16 or bf16 (GPU only; on CPU the run falls back to 'no')",
                              choices=PRECISIONS)
    gradient_checkpointing: bool = _f(True, "gradient checkpointing of the UNet (DPOK: on)")
    save_interval: int = _f(100, "write checkpoint-<iteration>/ every this many iterations (and at the end)")
    save_legacy_bin: bool = _f(False, "also write DPOK's legacy pytorch_lora_weights.bin in every checkpoint")
    checkpoints_total_limit: int | None = _f(None, "keep only the newest N checkpoints")
    resume: str | None = _f(None, "continue a run: 'latest' (newest complete checkpoint in --output_dir) or a "
                            "checkpoint directory", alias="--resume_from_checkpoint")
    overwrite_output_dir: bool = _f(False, "start fresh even though --output_dir holds checkpoints of another run "
                                    "(they are deleted); without it such a start is refused")
    allow_changed_settings: bool = _f(False, "with --resume: accept changed settings that change what is trained "
                                      "(every flag except the run-length, saving and logging ones listed in "
                                      "dpok/checkpoint.py NOT_TRAINING_SETTINGS; never the LoRA shape or "
                                      "--num_inference_steps); the new values take effect and every manifest "
                                      "records the change")
    report_to: str = _f("tensorboard", "accelerate tracker(s): tensorboard, wandb, all or none (a tracker that is "
                        "not installed is an error)")
    sample_grid_interval: int = _f(10, "log a captioned grid of samples (fixed prompts and noise) to the trackers "
                                   "every N iterations; 0 = never")
    sample_grid_prompts: int = _f(4, "prompts (rows) in the sample grid, 2 samples each")
    logging_dir: str = _f("logs", "tracker directory, relative to --output_dir")
    multi_gpu: int = _f(0, "accepted for compatibility; no effect: the processes are set by `accelerate launch` "
                        "(or torchrun) and the UNet is always wrapped by accelerate")
    progress: bool = _f(True, "show a progress bar on the main process")
    log_interval: int = _f(1, "log a line with the reward and the seconds of each phase (rollout, reward, value, "
                           "policy) every N iterations, with or without a tracker")

    # ------------------------------------------------------------------------------------------------
    def rewards(self) -> dict[str, float]:
        return parse_reward_spec(self.reward)

    def num_iterations(self) -> int:
        return self.iterations if self.iterations is not None else self.max_train_steps // self.p_step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Original DPOK flags with no counterpart here: accepted, documented, warned about when changed.
LEGACY_NO_EFFECT: dict[str, tuple[Any, str]] = {
    "revision": (None, "hub revision; pin a local directory instead"),
    "non_ema_revision": (None, "unused"),
    "dataset_name": (None, "image datasets are not used by online RL"),
    "dataset_config_name": (None, "unused"),
    "train_data_dir": (None, "unused"),
    "image_column": ("image", "unused"),
    "caption_column": ("text", "unused"),
    "max_train_samples": (None, "unused"),
    "resolution": (512, "the resolution is the base model's"),
    "center_crop": (True, "unused"),
    "random_flip": (True, "unused"),
    "train_batch_size": (8, "unused by DPOK too; see --p_batch_size"),
    "num_train_epochs": (100, "unused; see --max_train_steps / --iterations"),
    "scale_lr": (False, "unused"),
    "use_8bit_adam": (False, "not supported; AdamW is used"),
    "allow_tf32": (False, "unused"),
    "use_ema": (False, "not supported"),
    "dataloader_num_workers": (0, "unused"),
    "max_grad_norm": (1.0, "unused by DPOK too; the clip is --clip_norm"),
    "push_to_hub": (False, "not supported"),
    "hub_token": (None, "not supported"),
    "hub_model_id": (None, "not supported"),
    "local_rank": (-1, "set by the launcher"),
    "checkpointing_steps": (2000, "every checkpoint holds the full training state; see --save_interval"),
    "enable_xformers_memory_efficient_attention": (False, "not supported; torch SDPA is used"),
    "num_validation_images": (2, "unused"),
    "sft_initialization": (0, "not supported: pass the SFT model as --base_model"),
    "sft_path": (None, "not supported: pass the SFT model as --base_model"),
    "reward_flag": (0, "use --reward NAME (0 was ImageReward = --reward image_reward)"),
    "reward_model_path": (None, "reward checkpoints are found by the reward registry (see rewards/)"),
}

_BOOL_TRUE = {"1", "true", "yes", "y", "on", "t"}
_BOOL_FALSE = {"0", "false", "no", "n", "off", "f"}


def _str2bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in _BOOL_TRUE:
        return True
    if low in _BOOL_FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, 1/0), got {text!r}")


def _type_of(f: dataclasses.Field) -> Any:
    t = str(f.type)
    if t.startswith("bool"):
        return _str2bool
    if t.startswith("int"):
        return int
    if t.startswith("float"):
        return float
    return str


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="DPOK fine-tuning of a diffusion model's UNet with a LoRA (one reward, or a weighted sum: the "
                    "MORL oracle). Launch with `accelerate launch train_online_pg.py ...`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(TrainConfig):
        names = [f"--{f.name}"]
        if "alias" in f.metadata:
            names.append(f.metadata["alias"])
        kw: dict[str, Any] = {"dest": f.name, "default": f.default, "help": f.metadata["help"], "type": _type_of(f)}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if kw["type"] is _str2bool:
            kw["nargs"] = "?"
            kw["const"] = True
        parser.add_argument(*names, **kw)
    legacy = parser.add_argument_group("original DPOK flags with no effect here (accepted for compatibility)")
    for name, (default, why) in LEGACY_NO_EFFECT.items():
        legacy.add_argument(f"--{name}", dest=f"legacy_{name}", default=default, help=f"no effect: {why}")
    return parser


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, list[str]]:
    """(config, warnings about legacy flags that were set but have no effect)."""
    ns = vars(build_parser().parse_args(argv))
    ignored = []
    for name, (default, why) in LEGACY_NO_EFFECT.items():
        value = ns.pop(f"legacy_{name}")
        if value != default and str(value) != str(default):
            ignored.append(f"--{name} {value} has no effect here: {why}")
    return TrainConfig(**ns), ignored


def parse_reward_spec(spec: str) -> dict[str, float]:
    """``"a"`` → {a: 1}; ``"a:0.5,b:0.5"`` → {a: 0.5, b: 0.5}. Raises ValueError naming the syntax."""
    out: dict[str, float] = {}
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        name, _, weight = part.partition(":")
        name = name.strip()
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"--reward {spec!r}: weight {weight!r} of {name!r} is not a number; "
                             f"use NAME or NAME:W,NAME:W (e.g. image_reward:0.5,vila:0.5)") from None
        if not name:
            raise ValueError(f"--reward {spec!r}: empty reward name; use NAME or NAME:W,NAME:W")
        if name in out:
            raise ValueError(f"--reward {spec!r} names {name!r} twice")
        out[name] = w
    if not out:
        raise ValueError("--reward is empty; use NAME or NAME:W,NAME:W (e.g. --reward image_reward)")
    return out


# Fields whose empty string means something ("" = no tracker); every other text flag must not be empty.
MAY_BE_EMPTY = ("report_to",)
# Fields where infinity means something (no clipping); every other number flag must be finite.
MAY_BE_INFINITE = ("clip_norm", "ratio_clip")
# Count flags: at least 1 (or, where the default is None, unset).
COUNTS = ("num_inference_steps", "g_batch_size", "num_samples", "g_step", "p_step", "p_batch_size",
          "gradient_accumulation_steps", "buffer_size", "v_batch_size", "v_step", "lora_rank", "save_interval",
          "draft_k", "max_train_steps", "iterations", "samples_per_iteration", "rollout_chunk", "policy_epochs",
          "checkpoints_total_limit", "sample_grid_prompts", "log_interval", "stat_buffer_size", "stat_min_count")


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def check_values(cfg: TrainConfig) -> None:
    """Refuse flag values no run can use, naming the flag and the fix (ValueError). Needs nothing but the config
    (no model, no torch), so the command line runs it before any heavy import.

    Derived from the fields: no text flag is empty (except :data:`MAY_BE_EMPTY`), no number flag is NaN or
    infinite (except :data:`MAY_BE_INFINITE`), the :data:`COUNTS` are ≥ 1; then the ranges of single flags.
    """
    for f in fields(cfg):
        value, flag = getattr(cfg, f.name), f"--{f.name}"
        if isinstance(value, str) and not value.strip() and f.name not in MAY_BE_EMPTY:
            default = f" (default {f.default!r})" if isinstance(f.default, str) else ""
            raise ValueError(f"{flag} is empty; pass a value{default} or leave the flag out")
        if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and f.name not in MAY_BE_INFINITE)):
            raise ValueError(f"{flag} {value}: must be a finite number")
    for name in COUNTS:
        value = getattr(cfg, name)
        _need(value is None or value >= 1, f"--{name} must be ≥ 1, got {value}")
    c = cfg
    _need(c.algorithm in ALGORITHMS, f"--algorithm must be one of {ALGORITHMS}, got {c.algorithm!r}")
    _need(c.eta > 0, f"--eta {c.eta}: DPOK needs a stochastic sampler (eta > 0) because the policy's log-probability "
                     f"of a deterministic DDIM step (eta = 0) is undefined; use --eta 1 (the paper's)")
    _need(c.eta <= 1, f"--eta {c.eta}: DDIM's eta is at most 1 (1 = DDPM's variance; above it the step's variance "
                      f"can exceed 1 - alpha_bar_prev and the step gives NaN); use --eta 1 (the paper's)")
    for name in ("learning_rate", "v_lr", "adam_epsilon", "ratio_clip", "clip_norm"):
        _need(getattr(c, name) > 0, f"--{name} must be > 0, got {getattr(c, name)}")
    for name in ("adam_weight_decay", "kl_weight", "train_min_std", "lr_warmup_steps", "v_warmup"):
        _need(getattr(c, name) >= 0, f"--{name} must be ≥ 0, got {getattr(c, name)}")
    for name in ("adam_beta1", "adam_beta2"):
        _need(0 <= getattr(c, name) < 1, f"--{name} must be in [0, 1), got {getattr(c, name)}")
    _need(c.lora_alpha is None or c.lora_alpha > 0, f"--lora_alpha must be > 0 (or unset = --lora_rank), "
                                                    f"got {c.lora_alpha}")
    _need(c.kl_warmup >= -1, f"--kl_warmup must be ≥ -1 (-1: the KL term from the start), got {c.kl_warmup}")
    _need(c.seed is None or 0 <= c.seed < 2**32, f"--seed must be in 0..2**32-1 (or unset: drawn), got {c.seed}")
    _need(c.sample_grid_interval >= 0, f"--sample_grid_interval must be ≥ 0 (0 = off), got {c.sample_grid_interval}")
    _need(c.single_flag in (0, 1), f"--single_flag is 0 (prompt file) or 1 (single prompt), got {c.single_flag}")
    _need(c.v_flag in (0, 1), f"--v_flag is 0 (no value function) or 1, got {c.v_flag}")
    if c.single_flag == 0:
        _need(c.prompt_path is not None, "--single_flag 0 trains on a prompt file: pass --prompt_path FILE "
                                         "(or --single_flag 1 --single_prompt TEXT)")
    _need(c.single_flag == 0 or c.prompt_path is None,
          f"--prompt_path {c.prompt_path} would be ignored: --single_flag 1 (the default) trains on --single_prompt "
          f"only; add --single_flag 0 to train on the prompt file (or drop --prompt_path)")
    _need(c.num_iterations() >= 1,
          f"the run has no iteration: --max_train_steps {c.max_train_steps} // --p_step {c.p_step} = 0; raise "
          f"--max_train_steps to at least --p_step, or pass --iterations N")
    if c.advantage_norm == "prompt_running":
        _need(c.stat_min_count <= c.stat_buffer_size,
              f"--stat_min_count {c.stat_min_count} exceeds --stat_buffer_size {c.stat_buffer_size}: no prompt "
              f"would ever use its own statistics; lower --stat_min_count")
    if c.v_warmup > 0:
        _need(c.v_flag == 1, f"--v_warmup {c.v_warmup} warms up the value function, but --v_flag is 0; "
                             f"use --v_flag 1 or --v_warmup 0")
        _need(c.v_warmup < c.num_iterations(), f"--v_warmup {c.v_warmup} leaves no policy iteration of "
                                               f"{c.num_iterations()}; lower it or raise --iterations")
    if c.train_timesteps is not None:
        _need(1 <= c.train_timesteps <= c.num_inference_steps,
              f"--train_timesteps must be in 1..--num_inference_steps ({c.num_inference_steps}), "
              f"got {c.train_timesteps}")
    if c.algorithm == "draft":
        _need(c.draft_k <= c.num_inference_steps,
              f"--draft_k {c.draft_k} exceeds --num_inference_steps {c.num_inference_steps}")
    _need(c.lora_init in ("gaussian", "true", "false", "pissa", "olora", "loftq", "eva", "orthogonal")
          or c.lora_init.startswith("pissa"), f"--lora_init {c.lora_init!r} is not a PEFT init; use gaussian")
    weights = parse_reward_spec(c.reward)
    bad = [n for n, w in weights.items() if not math.isfinite(w)]
    _need(not bad, f"--reward {c.reward!r}: the weight of {bad[0] if bad else ''!r} is not a finite number; "
                   f"use NAME:W with a finite W")


def validate(cfg: TrainConfig, num_processes: int = 1) -> list[str]:
    """Raise ValueError (naming the fix) for impossible settings (:func:`check_values`, then the ones that depend
    on the number of processes, and the trackers); return notes on derived values."""
    check_values(cfg)
    notes: list[str] = []
    need = _need
    if cfg.samples_per_iteration is not None:
        per = num_processes * cfg.num_samples
        need(cfg.samples_per_iteration % per == 0,
             f"--samples_per_iteration {cfg.samples_per_iteration} does not divide into {num_processes} process(es) "
             f"x --num_samples {cfg.num_samples}; use a multiple of {per} (e.g. {per * max(1, round(cfg.samples_per_iteration / per))})")
        cfg.g_batch_size = cfg.samples_per_iteration // per
        notes.append(f"--samples_per_iteration {cfg.samples_per_iteration} → --g_batch_size {cfg.g_batch_size} "
                     f"prompts per process")
    rollout = cfg.g_batch_size * cfg.num_samples
    if cfg.rollout_chunk is not None:
        need(rollout % cfg.rollout_chunk == 0,
             f"--rollout_chunk {cfg.rollout_chunk} does not divide the {rollout} samples per rollout per process "
             f"(--g_batch_size {cfg.g_batch_size} x --num_samples {cfg.num_samples}); pick a divisor of {rollout}")
    if cfg.advantage_norm == "prompt":
        need(cfg.num_samples >= 2, "--advantage_norm prompt z-scores within each prompt's group of samples: "
                                   "use --num_samples 2 or more (or --advantage_norm batch)")
    if cfg.advantage_norm == "batch":
        need(rollout >= 2, "--advantage_norm batch needs ≥ 2 samples per rollout; raise --g_batch_size")
    if cfg.policy_epochs is not None:
        fresh = cfg.g_step * rollout * (cfg.train_timesteps or cfg.num_inference_steps)
        need(cfg.buffer_size >= fresh,
             f"--policy_epochs trains on this iteration's {fresh} new transitions per process, but --buffer_size "
             f"{cfg.buffer_size} keeps fewer; raise --buffer_size to at least {fresh}")
    from dpok.observe import check_trackers

    check_trackers(cfg.report_to)
    return notes


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in names})


def dumps(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), indent=2)
