"""The DPOK training loop (docs/method.md §4), on accelerate: one GPU, several, several machines, or the CPU.

One iteration:

1. ``g_step`` rollouts of ``g_batch_size × num_samples`` images per process with the current LoRA
   (DDIM, η > 0, classifier-free guidance), every transition and its log-probability recorded;
2. rewards of the decoded images (one reward or a weighted sum), transitions into the replay buffer;
3. with ``v_flag``, one value-function step (``v_step`` minibatches accumulated);
4. ``p_step`` policy steps, each accumulating ``gradient_accumulation_steps`` micro-batches of
   ``p_batch_size`` buffer transitions: ratio-clipped policy gradient + KL to the base model, whose ε
   comes from the same UNet with its adapter disabled; norm clipping, AdamW.

Randomness: every random draw of an iteration comes from generators seeded by (seed, process,
iteration), so a run resumed from a checkpoint continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from peft import LoraConfig, inject_adapter_in_model
from tqdm.auto import tqdm

from dbcore.logging import get_logger
from dbcore.prompts import load_prompts
from dbcore.provenance import provenance
from dbcore.seeding import training_seed
from diffusion.adapters import activate, clear_cache
from diffusion.bundle import ModelBundle
from diffusion.ddim import ddim_step_with_logprob
from diffusion.loading import load_bundle
from diffusion.lora import attention_modules, content_sha256, extract_lora, save_lora
from diffusion.sources import base_unet_sha256, canonical_base_model
from dpok import checkpoint as ckpt
from dpok.buffer import ReplayBuffer
from dpok.config import TrainConfig, validate
from dpok.losses import dpok_loss, normalise_advantage, value_loss
from dpok.observe import SampleGridLogger
from dpok.options import PerPromptStats, epoch_minibatches, step_stds, subsample_steps, trainable_steps
from dpok.rollout import PromptCache, draw_noise, guided_eps, sample_trajectories
from dpok.run_lock import OutputDirInUse, OutputDirLock
from dpok.value import ValueMulti

log = get_logger("dpok")
ADAPTER = "dpok"
_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_trainable_family(bundle: ModelBundle) -> None:
    """DPOK and DRaFT-K need a DDIM step with a log-probability, so an ε-predicting model (SD 1.x/2.x, SDXL)."""
    if bundle.family not in ("sd", "sdxl"):
        raise ValueError(f"{bundle.source} is a {bundle.family} (flow-matching) model: training is implemented for the "
                         f"SD 1.x/2.x and SDXL families only (their DDIM step has the log-probability DPOK needs); "
                         f"blending {bundle.family} adapters trained elsewhere works with run_DB.py")


class RewardSum:
    """Σ_i w_i r_i over registry rewards; also reports each reward's values."""

    def __init__(self, weights: dict[str, float], device, dtype, cache_dir: str | None) -> None:
        import rewards as registry

        self.weights = dict(weights)
        self.fns, self.differentiable = {}, {}
        for name in weights:
            if name not in registry.REGISTRY:
                known = ", ".join(sorted(registry.REGISTRY))
                raise ValueError(f"unknown reward {name!r} in --reward; known rewards: {known}")
            self.differentiable[name] = registry.REGISTRY[name].differentiable
            self.fns[name] = registry.get_reward(name, device=device, dtype=dtype, cache_dir=cache_dir)

    def __call__(self, images: torch.Tensor, prompts: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {n: fn(images, prompts).float().reshape(-1).to(images.device) for n, fn in self.fns.items()}
        total = None
        for n, r in parts.items():
            total = self.weights[n] * r if total is None else total + self.weights[n] * r
        return total, parts


@dataclass
class Counters:
    iteration: int = 0  # completed iterations
    samples_seen: int = 0  # images sampled over all processes
    optimizer_steps: int = 0
    extra: dict = field(default_factory=dict)  # e.g. DRaFT's reward-normalisation state


class Trainer:
    """Build everything from a :class:`TrainConfig`, then :meth:`train`.

    ``bundle`` may be passed to reuse a loaded model (tests); it is modified (a LoRA is added).
    """

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator | None = None,
                 bundle: ModelBundle | None = None) -> None:
        self.cfg = cfg
        self._stop = False
        self.after_iteration: list = []  # callbacks f(trainer, metrics) run after each iteration
        mp = cfg.mixed_precision
        if mp != "no" and not torch.cuda.is_available():
            log.warning("--mixed_precision %s needs a GPU; running in float32 (--mixed_precision no)", mp)
            mp = "no"
        self.mixed_precision = mp
        out = Path(cfg.output_dir)
        trackers = None if cfg.report_to in ("none", "") else cfg.report_to
        self.acc = accelerator or Accelerator(
            cpu=not torch.cuda.is_available(), mixed_precision=mp, log_with=trackers,
            project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / cfg.logging_dir)))
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.notes = validate(cfg, self.world)
        if cfg.save_legacy_bin and cfg.lora_alpha not in (None, float(cfg.lora_rank)):
            raise ValueError("--save_legacy_bin: DPOK's legacy .bin has no alpha (scale 1), so it needs "
                             "--lora_alpha equal to --lora_rank (or unset)")
        self.seed = self._resolve_seed()
        self._lock = OutputDirLock(cfg.output_dir)
        self._take_lock()  # before anything in --output_dir is read or deleted
        try:
            self._build(bundle)
        except BaseException:
            self.close()
            raise

    def _build(self, bundle: ModelBundle | None) -> None:
        cfg = self.cfg
        self._guard_output_dir()
        self.resume_from = ckpt.resolve_resume(cfg.resume, cfg.output_dir) if cfg.resume else None
        state, self.setting_changes = None, {}
        if self.resume_from is not None:  # checked before any model is loaded
            state = ckpt.load_rank_state(self.resume_from, self.rank)
            self.setting_changes = self._check_resume(self.resume_from, state)
            if cfg.seed is None:
                self.seed = int(state["seed"])
        set_seed(self.seed)
        self._setup_model(bundle)
        self._setup_data()
        self._setup_optim()
        self.counters = Counters()
        if state is not None:
            self._load(self.resume_from, state)

    # ------------------------------------------------------------------ setup
    def _take_lock(self) -> None:
        """The main process takes ``--output_dir``'s lock (dpok/run_lock.py); every process fails alike when
        another run holds it."""
        error: list[str | None] = [None]
        if self.acc.is_main_process:
            try:
                self._lock.acquire()
            except OutputDirInUse as exc:
                error = [str(exc)]
        if self.world > 1:
            broadcast_object_list(error)
        if error[0]:
            raise OutputDirInUse(error[0])

    def close(self) -> None:
        """Give back ``--output_dir``'s lock (done by :meth:`train` when it ends; safe to call twice)."""
        self._lock.release()

    def _resolve_seed(self) -> int:
        if self.cfg.seed is not None:
            return int(self.cfg.seed)
        seed = [int.from_bytes(os.urandom(4), "little") if self.acc.is_main_process else 0]
        if self.world > 1:
            broadcast_object_list(seed)
        return int(seed[0])

    def _setup_model(self, bundle: ModelBundle | None) -> None:
        cfg, dtype = self.cfg, _DTYPES[self.mixed_precision]
        self.bundle = bundle or load_bundle(cfg.base_model, device=self.acc.device, dtype=dtype,
                                            cache_dir=cfg.cache_dir)
        check_trainable_family(self.bundle)
        unet = self.bundle.unet
        targets = tuple(t.strip() for t in cfg.lora_targets.split(",") if t.strip())
        modules = attention_modules(unet, targets)
        unmatched = [t for t in targets if not any(m.endswith("." + t) for m in modules)]
        if unmatched:  # never train fewer layers than asked for
            raise ValueError(f"--lora_targets {cfg.lora_targets!r}: {unmatched} match no attention projection of this "
                             f"UNet (the trainer's LoRA covers attention layers only); use some of to_q,to_k,to_v,to_out.0")
        init = {"true": True, "false": False}.get(cfg.lora_init, cfg.lora_init)
        lora_config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha or cfg.lora_rank,
                                 init_lora_weights=init, target_modules=modules)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(training_seed(self.seed, 0x10AA))
            inject_adapter_in_model(lora_config, unet, adapter_name=ADAPTER)
        clear_cache(unet)
        unet.requires_grad_(False)
        self.lora_params: list[torch.nn.Parameter] = []
        for name, p in unet.named_parameters():
            if f".{ADAPTER}." in name and ".lora_" in name:
                p.data = p.data.float()
                p.requires_grad_(True)
                self.lora_params.append(p)
        self.lora_modules, self.targets = modules, targets
        activate(unet, ADAPTER)
        if cfg.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        self.unet = unet  # the raw module: rollouts, ε_pre, saving
        self.bundle.scheduler.set_timesteps(cfg.num_inference_steps, device="cpu")
        self.timesteps = self.bundle.scheduler.timesteps.clone()
        self.step_std = step_stds(self.bundle.scheduler, cfg.eta)
        self.train_steps = set(trainable_steps(self.step_std, cfg.train_min_std))
        if cfg.algorithm == "dpok" and not self.train_steps:
            raise ValueError(f"--train_min_std {cfg.train_min_std} leaves no step to train on: the sampling stds of "
                             f"this scheduler are at most {max(self.step_std):.4g}; lower --train_min_std")
        self.cache = PromptCache(self.bundle)
        self.reward = RewardSum(cfg.rewards(), self.acc.device, torch.float32, cfg.cache_dir)

    def _setup_data(self) -> None:
        cfg = self.cfg
        if cfg.single_flag == 1:
            self.prompts = [cfg.single_prompt]
        else:
            self.prompts = load_prompts(cfg.prompt_path)
            if cfg.prompt_category != "all":
                import json

                data = json.loads(Path(cfg.prompt_path).read_text())
                if not isinstance(data, dict):
                    raise ValueError(f"--prompt_category {cfg.prompt_category}: {cfg.prompt_path} is a list, it has "
                                     f"no categories; use --prompt_category all or a DPOK dict prompt file")
                keep = {c.strip() for c in cfg.prompt_category.split(",")}
                self.prompts = [p for p in self.prompts if str((data.get(p) or {}).get("category")) in keep]
                if not self.prompts:
                    raise ValueError(f"no prompt of {cfg.prompt_path} has a category in {sorted(keep)}")

    def _setup_optim(self) -> None:
        from diffusers.optimization import get_scheduler

        cfg = self.cfg
        optimizer = torch.optim.AdamW(self.lora_params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                      weight_decay=cfg.adam_weight_decay, eps=cfg.adam_epsilon)
        self.lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer=optimizer,
                                          num_warmup_steps=cfg.lr_warmup_steps,
                                          num_training_steps=cfg.num_iterations() * self.policy_steps_per_iteration())
        self.value = None
        if cfg.v_flag == 1 and cfg.algorithm == "dpok":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(training_seed(self.seed, 0x7A1E))
                value = ValueMulti(cfg.num_inference_steps, self.bundle.sample_shape, self.cache.text_dim)
            value_opt = torch.optim.AdamW(value.parameters(), lr=cfg.v_lr)
            self.value, self.value_opt = self.acc.prepare(value, value_opt)
        self.train_unet, self.optimizer = self.acc.prepare(self.unet, optimizer)
        self.buffer = ReplayBuffer(cfg.buffer_size)

    def policy_steps_per_iteration(self) -> int:
        """Optimizer steps per iteration, for the length of the learning-rate schedule: ``p_step``, or with
        ``--policy_epochs E`` E passes over the new transitions (at most the trained steps of every trajectory),
        each ⌈⌈fresh / p_batch_size⌉ / gradient_accumulation_steps⌉ steps."""
        cfg = self.cfg
        if cfg.algorithm != "dpok" or cfg.policy_epochs is None:
            return cfg.p_step
        kept = len(self.train_steps) if cfg.train_timesteps is None else min(cfg.train_timesteps, len(self.train_steps))
        fresh = cfg.g_step * cfg.g_batch_size * cfg.num_samples * kept
        micro = -(-fresh // cfg.p_batch_size)
        return cfg.policy_epochs * -(-micro // cfg.gradient_accumulation_steps)

    # ------------------------------------------------------------------ randomness
    def generator(self, iteration: int, *purpose: int) -> torch.Generator:
        return torch.Generator("cpu").manual_seed(training_seed(self.seed, self.rank, iteration, *purpose))

    def np_rng(self, iteration: int, *purpose: int) -> np.random.Generator:
        return np.random.default_rng(training_seed(self.seed, self.rank, iteration, *purpose))

    def prompts_for(self, iteration: int, rollout: int) -> list[str]:
        """This process's prompts: epochs of seeded permutations (DPOK shuffles and cycles), × num_samples."""
        cfg, n = self.cfg, len(self.prompts)
        start = (iteration * cfg.g_step + rollout) * cfg.g_batch_size
        out = []
        for pos in range(start, start + cfg.g_batch_size):
            perm = np.random.default_rng(training_seed(self.seed, self.rank, pos // n, 0xE90C)).permutation(n)
            out.extend([self.prompts[perm[pos % n]]] * cfg.num_samples)
        return out

    # ------------------------------------------------------------------ one iteration
    def autocast(self):
        return self.acc.autocast() if self.mixed_precision != "no" else contextlib.nullcontext()

    @torch.no_grad()
    def rollout(self, iteration: int, rollout: int) -> dict:
        cfg, shape = self.cfg, self.bundle.sample_shape
        prompts = self.prompts_for(iteration, rollout)
        n, chunk = len(prompts), cfg.rollout_chunk or len(prompts)
        x_t, z = draw_noise(self.generator(iteration, 0x5A, rollout), n, shape, cfg.num_inference_steps)
        activate(self.unet, ADAPTER)
        lat, lps, rewards, parts = [], [], [], []
        reward_seconds = 0.0
        for s in range(0, n, chunk):
            with self.autocast():
                traj = sample_trajectories(self.bundle, self.unet, prompts[s:s + chunk], self.cache,
                                           x_t[s:s + chunk], z[:, s:s + chunk], cfg.guidance_scale, cfg.eta)
                images = self.bundle.decode(traj.final)
            t0 = time.perf_counter()
            total, by_name = self.reward(images, prompts[s:s + chunk])
            reward_seconds += time.perf_counter() - t0
            lat.append(traj.latents)
            lps.append(traj.log_probs)
            rewards.append(total.cpu())
            parts.append({k: v.cpu() for k, v in by_name.items()})
        return {"prompts": prompts, "latents": torch.cat(lat, 1), "log_probs": torch.cat(lps, 1),
                "reward": torch.cat(rewards), "parts": {k: torch.cat([p[k] for p in parts]) for k in parts[0]},
                "reward_seconds": reward_seconds}

    def add_to_buffer(self, ro: dict, iteration: int, rollout: int) -> int:
        """Normalise the rollout's rewards and store its (stochastic, optionally subsampled) transitions.
        → the number of transitions added."""
        cfg, added = self.cfg, 0
        r = ro["reward"].clone()
        if cfg.reward_filter == 1:
            r = r.clamp(min=0)
        if cfg.advantage_norm == "prompt_running":
            r = self.prompt_running_advantage(ro["prompts"], r)
        else:
            r = normalise_advantage(r, cfg.advantage_norm, cfg.num_samples)
        T, n = ro["log_probs"].shape
        stochastic = [k for k in range(T) if k in self.train_steps and bool(torch.isfinite(ro["log_probs"][k]).all())]
        for i in range(n):
            steps = stochastic
            if cfg.train_timesteps is not None:
                steps = subsample_steps(stochastic, cfg.train_timesteps, self.np_rng(iteration, 0x7135, rollout, i))
            k = torch.tensor(steps, dtype=torch.long)
            self.buffer.add(ro["latents"][k, i], ro["latents"][k + 1, i], k, r[i].repeat(len(steps)),
                            ro["log_probs"][k, i], [ro["prompts"][i]] * len(steps))
            added += len(steps)
        return added

    def prompt_running_advantage(self, prompts: list[str], rewards: torch.Tensor) -> torch.Tensor:
        """--advantage_norm prompt_running: DDPO's per-prompt running z-score over all processes' rewards.
        The statistics live in ``counters.extra`` (so they are checkpointed); → this process's (N,)."""
        from accelerate.utils import gather_object

        stats = PerPromptStats(self.cfg.stat_buffer_size, self.cfg.stat_min_count,
                               self.counters.extra.setdefault("prompt_stats", {}))
        if self.world == 1:
            return stats.update(prompts, rewards)
        all_prompts = gather_object(list(prompts))
        all_r = self.acc.gather(rewards.to(self.acc.device).float().contiguous()).cpu()
        n = len(prompts)
        return stats.update(all_prompts, all_r)[self.rank * n:(self.rank + 1) * n]

    def value_step(self, iteration: int) -> float:
        cfg, total = self.cfg, 0.0
        rng = self.np_rng(iteration, 0x7A15)
        self.value_opt.zero_grad()
        for v in range(cfg.v_step):
            b = self.buffer.sample(cfg.v_batch_size, rng)
            sync = self.acc.no_sync(self.value) if v < cfg.v_step - 1 else contextlib.nullcontext()
            with sync:
                pred = self.value(b.state.to(self.acc.device), self.cache.pooled(b.prompts),
                                  b.step.to(self.acc.device))
                loss = value_loss(pred, b.reward.to(self.acc.device)) / cfg.v_step
                self.acc.backward(loss)
            total += loss.item()
        self.value_opt.step()
        self.value_opt.zero_grad()
        return total

    def reference_eps(self, x: torch.Tensor, t, cond, uncond) -> torch.Tensor:
        """ε̂_pre of the KL anchor at (x, t): the same UNet with its adapters disabled (no second UNet in memory).
        Call under ``torch.no_grad()``."""
        activate(self.unet, None)
        try:
            with self.autocast():
                return guided_eps(self.unet, x, t, cond, uncond, self.cfg.guidance_scale)
        finally:
            activate(self.unet, ADAPTER)

    def policy_microbatch(self, batch, use_kl: bool) -> dict:
        cfg, device, dtype = self.cfg, self.acc.device, self.bundle.dtype
        x = batch.state.to(device, dtype)
        t = self.timesteps[batch.step].to(device)
        cond, uncond = self.cache.hidden(batch.prompts), self.cache.hidden([""] * len(batch.prompts))
        with torch.no_grad():
            if self.value is not None:
                v = self.value(batch.state.to(device), self.cache.pooled(batch.prompts), batch.step.to(device))
                adv = batch.reward.to(device) - v.reshape(-1).float()
            else:
                adv = batch.reward.to(device)
            eps_pre = self.reference_eps(x, t, cond, uncond)
        with self.autocast():
            eps = guided_eps(self.train_unet, x, t, cond, uncond, cfg.guidance_scale)
        _, log_prob = ddim_step_with_logprob(self.bundle.scheduler, eps.float(), t, x.float(), cfg.eta,
                                             prev_sample=batch.next_state.to(device).float())
        return dpok_loss(adv, log_prob, batch.log_prob.to(device), eps, eps_pre, ratio_clip=cfg.ratio_clip,
                         reward_weight=cfg.reward_weight, kl_weight=cfg.kl_weight, use_kl=use_kl)

    def policy_plan(self, iteration: int, fresh: int):
        """The policy update's optimizer steps, each a list of micro-batch callables → Batch.

        DPOK (``--policy_epochs`` unset): ``p_step`` steps of ``gradient_accumulation_steps`` uniform draws
        of ``p_batch_size`` transitions from the buffer. ``--policy_epochs E``: E shuffled passes over the
        ``fresh`` transitions this iteration added (the newest of the buffer)."""
        cfg = self.cfg
        if cfg.policy_epochs is None:
            for s in range(cfg.p_step):
                rng = self.np_rng(iteration, 0x9011, s)
                yield [lambda rng=rng: self.buffer.sample(cfg.p_batch_size, rng)] * cfg.gradient_accumulation_steps
            return
        rng = self.np_rng(iteration, 0xE90C5)
        for step in epoch_minibatches(fresh, cfg.p_batch_size, cfg.gradient_accumulation_steps, cfg.policy_epochs,
                                      rng):
            yield [lambda idx=idx: self.buffer.gather(idx - fresh) for idx in step]

    def policy_steps(self, iteration: int, fresh: int | None = None) -> dict:
        cfg = self.cfg
        use_kl = iteration + 1 > cfg.kl_warmup  # DPOK: count > kl_warmup, count counted from 0
        sums = {"policy_loss": 0.0, "kl": 0.0, "loss": 0.0, "grad_norm": 0.0}
        ratios, n_steps, n_micro = [], 0, 0
        for step in self.policy_plan(iteration, fresh or 0):
            self.optimizer.zero_grad()
            batches = [draw() for draw in step]
            total = sum(len(b.prompts) for b in batches)
            for a, batch in enumerate(batches):
                last = a == len(batches) - 1
                with (contextlib.nullcontext() if last else self.acc.no_sync(self.train_unet)):
                    out = self.policy_microbatch(batch, use_kl)
                    self.acc.backward(out["loss"] * (len(batch.prompts) / total))
                for k in ("policy_loss", "kl", "loss"):
                    sums[k] += out[k].item()
                ratios.append(out["ratio"].detach().float().cpu())
                n_micro += 1
            norm = self.acc.clip_grad_norm_(self.lora_params, cfg.clip_norm)
            sums["grad_norm"] += float(norm)
            self.optimizer.step()
            self.lr_scheduler.step()
            self.counters.optimizer_steps += 1
            n_steps += 1
        for k in ("policy_loss", "kl", "loss"):
            sums[k] /= max(n_micro, 1)
        sums["grad_norm"] /= max(n_steps, 1)
        r = torch.cat(ratios)
        sums.update({"ratio_mean": r.mean().item(), "ratio_min": r.min().item(), "ratio_max": r.max().item(),
                     "ratio_clipped_frac": (r.sub(1).abs() >= cfg.ratio_clip * (1 - 1e-6)).float().mean().item()})
        return sums

    def iteration(self, it: int) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        rollouts = []
        fresh = 0
        for g in range(cfg.g_step):
            ro = self.rollout(it, g)
            fresh += self.add_to_buffer(ro, it, g)
            rollouts.append(ro)
        t_reward = sum(ro["reward_seconds"] for ro in rollouts)
        t_roll = time.perf_counter() - t0 - t_reward
        metrics = self.reward_metrics(rollouts)
        t1 = time.perf_counter()
        if self.value is not None:
            metrics["value_loss"] = self.value_step(it)
        t2 = time.perf_counter()
        if it >= cfg.v_warmup:
            metrics.update(self.policy_steps(it, fresh))
        t3 = time.perf_counter()
        n = sum(len(ro["prompts"]) for ro in rollouts) * self.world
        self.counters.samples_seen += n
        dt = time.perf_counter() - t0
        metrics.update({"samples_per_second": n / dt, "rollout_seconds": t_roll, "reward_seconds": t_reward,
                        "value_seconds": t2 - t1, "policy_seconds": t3 - t2, "iteration_seconds": dt,
                        "buffer_size": len(self.buffer), "lr": self.lr_scheduler.get_last_lr()[0],
                        "samples_seen": self.counters.samples_seen})
        return metrics

    def reward_metrics(self, rollouts: list[dict]) -> dict:
        def stats(key: str, values: torch.Tensor) -> dict:
            v = self.acc.gather(values.to(self.acc.device).float().contiguous()).cpu()
            return {f"{key}/mean": v.mean().item(), f"{key}/std": v.std(unbiased=False).item()}

        out = stats("reward", torch.cat([ro["reward"] for ro in rollouts]))
        for name in self.reward.weights:
            out.update(stats(f"reward/{name}", torch.cat([ro["parts"][name] for ro in rollouts])))
        return out

    # ------------------------------------------------------------------ loop
    def _on_sigint(self, signum, frame) -> None:  # noqa: ARG002
        if self._stop:  # second Ctrl-C: stop now
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self._stop = True
        log.warning("Ctrl-C: finishing the current iteration, then saving a checkpoint (Ctrl-C again to stop now)")

    def _stop_requested(self) -> bool:
        flag = torch.tensor([1.0 if self._stop else 0.0], device=self.acc.device)
        return bool(self.acc.reduce(flag, reduction="sum").item() > 0) if self.world > 1 else self._stop

    def log_start(self) -> None:
        cfg, w = self.cfg, self.world
        per_roll = cfg.g_batch_size * cfg.num_samples
        steps_kept = cfg.train_timesteps or cfg.num_inference_steps
        lines = [
            f"algorithm {cfg.algorithm}; base {cfg.base_model}; rewards {self.reward.weights} "
            f"(reward_weight {cfg.reward_weight}, kl_weight {cfg.kl_weight}); seed {self.seed}",
            f"processes {w}; device {self.acc.device}; mixed precision {self.mixed_precision}; "
            f"LoRA r={cfg.lora_rank} alpha={cfg.lora_alpha or cfg.lora_rank} on {len(self.lora_modules)} modules "
            f"({sum(p.numel() for p in self.lora_params):,} parameters)",
            f"prompts: {len(self.prompts)} ({'single prompt' if cfg.single_flag else cfg.prompt_path})",
            f"per iteration: {cfg.g_step} rollout(s) x {cfg.g_batch_size} prompts x {cfg.num_samples} samples x "
            f"{w} process(es) = {cfg.g_step * per_roll * w} images, {cfg.num_inference_steps} DDIM steps each",
        ]
        if cfg.algorithm == "dpok":
            policy = (f"policy: {cfg.p_step} optimizer steps x {cfg.gradient_accumulation_steps} micro-batches x "
                      f"{cfg.p_batch_size} transitions x {w} process(es) = "
                      f"{cfg.gradient_accumulation_steps * cfg.p_batch_size * w} transitions per step")
            if cfg.policy_epochs is not None:
                policy = (f"policy: {cfg.policy_epochs} epoch(s) over the iteration's new transitions, micro-batches "
                          f"of {cfg.p_batch_size}, a step every {cfg.gradient_accumulation_steps}")
            lines += [
                f"buffer: +{cfg.g_step * per_roll * steps_kept} transitions per process per iteration (at most; "
                f"deterministic steps are left out), keeps {cfg.buffer_size}"
                + (f"; trained steps (std ≥ {cfg.train_min_std:g}): {sorted(self.train_steps)}"
                   if cfg.train_min_std > 0 else ""),
                policy + f"; ratio clip {cfg.ratio_clip:g}; advantage norm {cfg.advantage_norm}"
                + (f"; value warm-up {cfg.v_warmup} iteration(s)" if cfg.v_warmup else ""),
                f"value: {'on' if self.value is not None else 'off'}"
                + (f", {cfg.v_step} x {cfg.v_batch_size} transitions per step" if self.value is not None else ""),
            ]
        else:
            lines.append(f"draft: {cfg.p_step} optimizer steps x {cfg.gradient_accumulation_steps} rollouts of "
                         f"{per_roll} images, gradient through the last {cfg.draft_k} steps")
        lines.append(f"iterations: {cfg.num_iterations()} (from {self.counters.iteration}); checkpoints every "
                     f"{cfg.save_interval} in {cfg.output_dir}")
        if self.acc.is_main_process:
            for line in self.notes + lines:
                log.info(line)

    def train(self) -> Path | None:
        """Run to ``num_iterations``; returns the last checkpoint. Ctrl-C saves, then raises KeyboardInterrupt."""
        cfg = self.cfg
        from dpok.draft import draft_iteration

        if self.acc.is_main_process and cfg.report_to not in ("none", ""):
            self.acc.init_trackers("dpok", config=_scalars(cfg.to_dict()))
            if cfg.sample_grid_interval > 0:  # a captioned sample grid every N iterations (dpok/observe.py)
                self.after_iteration.append(SampleGridLogger(self, cfg.sample_grid_interval, cfg.sample_grid_prompts,
                                                             seed=self.seed))
        self.log_start()
        total = cfg.num_iterations()
        old_handler = None
        with contextlib.suppress(ValueError):  # not in the main thread: no handler
            old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        bar = tqdm(total=total, initial=self.counters.iteration, desc="iterations",
                   disable=not (cfg.progress and self.acc.is_local_main_process))
        last = None
        try:
            while self.counters.iteration < total:
                it = self.counters.iteration
                metrics = draft_iteration(self, it) if cfg.algorithm == "draft" else self.iteration(it)
                self.counters.iteration += 1
                self.acc.log(metrics, step=self.counters.iteration)
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward/mean']:.4g}", kl=f"{metrics.get('kl', 0):.3g}")
                if self.acc.is_main_process and (self.counters.iteration % cfg.log_interval == 0
                                                 or self.counters.iteration == total):
                    log.info(phase_line(self.counters.iteration, total, metrics))
                for cb in self.after_iteration:
                    cb(self, metrics)
                stop = self._stop_requested()
                if self.counters.iteration % cfg.save_interval == 0 or self.counters.iteration == total or stop:
                    last = self.save()
                if stop:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            done = ckpt.checkpoint_dir(cfg.output_dir, self.counters.iteration)
            if not ckpt.is_complete(done):
                last = self.save(mid_iteration=True)
            log.warning("interrupted; checkpoint %s; continue with --resume latest", last or done)
            raise
        finally:
            bar.close()
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            if cfg.report_to not in ("none", ""):
                self.acc.end_training()
            self.close()
        return last

    # ------------------------------------------------------------------ checkpoints
    def training_state(self) -> dict:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        state = {
            "iteration": self.counters.iteration, "samples_seen": self.counters.samples_seen,
            "optimizer_steps": self.counters.optimizer_steps, "extra": self.counters.extra, "seed": self.seed,
            "lora": {n: p.detach().cpu().clone() for n, p in self.unet.named_parameters() if p.requires_grad},
            "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": cuda},
            "config": self.cfg.to_dict(), "num_processes": self.world,
        }
        if self.value is not None:
            state["value"] = self.acc.unwrap_model(self.value).state_dict()
            state["value_optimizer"] = self.value_opt.state_dict()
        return state

    def manifest(self, files: dict[str, str], mid_iteration: bool) -> dict:
        cfg = self.cfg
        from dbcore.io import sha256_file

        return {
            "kind": "diffusion-blend LoRA checkpoint", "format_version": 1, "algorithm": cfg.algorithm,
            "adapter_file": "pytorch_lora_weights.safetensors",
            # the loader's one spelling of the base (absolute path, maintained hub id), and the flag as typed
            "base_model": canonical_base_model(cfg.base_model), "base_model_given": cfg.base_model,
            # the base's UNet weights where its own manifest records them (toy bases): a base rebuilt at the same path
            # is then told apart (blend.run_plan.check_checkpoint)
            "base_unet_sha256": base_unet_sha256(cfg.base_model),
            "rewards": self.reward.weights, "reward_weight": cfg.reward_weight,
            "kl_weight": cfg.kl_weight,
            "lora": {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha or cfg.lora_rank, "targets": list(self.targets),
                     "init": cfg.lora_init, "modules": len(self.lora_modules),
                     "parameters": sum(p.numel() for p in self.lora_params)},
            "iteration": self.counters.iteration, "total_iterations": cfg.num_iterations(),
            "samples_seen": self.counters.samples_seen, "optimizer_steps": self.counters.optimizer_steps,
            "seed": self.seed, "num_processes": self.world, "mixed_precision": self.mixed_precision,
            "interrupted_mid_iteration": mid_iteration,
            "settings_changes": self.counters.extra.get("settings_changes", []),
            "files": {Path(f).name: sha256_file(f) for f in files.values()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **provenance(), "config": cfg.to_dict(),
        }

    def save(self, mid_iteration: bool = False) -> Path:
        cfg, it = self.cfg, self.counters.iteration
        if self.acc.is_main_process:
            tmp = ckpt.begin(cfg.output_dir, it)
        self.acc.wait_for_everyone()
        tmp = ckpt.tmp_dir(cfg.output_dir, it)
        ckpt.save_rank_state(tmp, self.rank, self.training_state())
        self.acc.wait_for_everyone()
        final = ckpt.checkpoint_dir(cfg.output_dir, it)
        if self.acc.is_main_process:
            formats = ("diffusers", "legacy") if cfg.save_legacy_bin else ("diffusers",)
            lora = extract_lora(self.unet, ADAPTER)
            files = save_lora(lora, tmp, formats=formats)
            manifest = {**self.manifest(files, mid_iteration), "adapter_sha256": content_sha256(lora)}
            ckpt.finish(cfg.output_dir, it, manifest, cfg.checkpoints_total_limit)
            log.info("saved %s (iteration %d, %d samples)", final, it, self.counters.samples_seen)
        self.acc.wait_for_everyone()
        return final

    def _check_resume(self, path: Path, state: dict) -> dict[str, dict]:
        """The checkpoint must come from as many processes and, unless allowed, the same training settings
        (every config field but the run-length/saving/logging ones, ``dpok.checkpoint.training_settings``);
        → the allowed changes."""
        from diffusion.sources import training_cwd

        if state.get("num_processes", 1) != self.world:
            raise ValueError(f"{path} was written by {state['num_processes']} process(es), this run has {self.world}: "
                             f"resume with the same number of processes for an exact continuation")
        old = dict(state.get("config") or {})
        old["seed"] = state.get("seed", old.get("seed"))  # the seed it ran with (drawn when not given)
        new = self.cfg.to_dict()
        if new["seed"] is None:  # not given: the checkpoint's is used
            new["seed"] = old["seed"]
        ran_in = training_cwd(path, old.get("output_dir"))
        changes = ckpt.changed_settings(old, new, old_search=[ran_in] if ran_in else [])
        return ckpt.check_resume_settings(path, changes, self.cfg.allow_changed_settings)

    def _load(self, path: Path, state: dict) -> None:
        params = dict(self.unet.named_parameters())
        missing = [n for n in state["lora"] if n not in params]
        if missing or len(state["lora"]) != len(self.lora_params):
            raise ValueError(f"{path}: its LoRA does not match this run's (--lora_rank/--lora_targets changed?)")
        with torch.no_grad():
            for n, t in state["lora"].items():
                params[n].copy_(t.to(params[n].device, params[n].dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.buffer.load_state_dict(state["buffer"])
        if self.value is not None:
            if "value" not in state:
                raise ValueError(f"{path} has no value function (--v_flag 0); resume with --v_flag 0")
            self.acc.unwrap_model(self.value).load_state_dict(state["value"])
            self.value_opt.load_state_dict(state["value_optimizer"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.counters = Counters(state["iteration"], state["samples_seen"], state["optimizer_steps"],
                                 dict(state.get("extra") or {}))
        self._apply_setting_changes(path)
        log.info("resumed from %s at iteration %d", path, self.counters.iteration)

    # ------------------------------------------------------------------ output-dir and resume guards
    def _guard_output_dir(self) -> None:
        """A fresh run never overwrites another run's checkpoints (see ``--overwrite_output_dir``)."""
        if self.cfg.resume:
            return
        found = ckpt.check_fresh_start(self.cfg.output_dir, self.cfg.overwrite_output_dir)
        if found and self.acc.is_main_process:
            log.warning("--overwrite_output_dir: deleting %d checkpoint(s) of the earlier run in %s", len(found),
                        self.cfg.output_dir)
            for p in found:
                shutil.rmtree(p)
        self.acc.wait_for_everyone()

    def _apply_setting_changes(self, path: Path) -> None:
        """After an allowed change of settings on resume: record it, and let the new values take effect where the
        loaded states carry the old ones (optimizer hyper-parameters, learning-rate schedule, buffer size)."""
        changes = self.setting_changes
        if not changes:
            return
        log.warning("--allow_changed_settings: continuing %s with %s", path, ckpt.describe_changes(changes))
        history = list(self.counters.extra.get("settings_changes", []))
        history.append({"iteration": self.counters.iteration, "from_checkpoint": str(path), "changes": changes})
        self.counters.extra["settings_changes"] = history
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group.update(betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.adam_weight_decay,
                         eps=cfg.adam_epsilon)
        if self.value is not None:
            for group in self.value_opt.param_groups:
                group.update(lr=cfg.v_lr, initial_lr=cfg.v_lr)
        if self.buffer.capacity != cfg.buffer_size:
            keep = min(len(self.buffer), cfg.buffer_size)
            self.buffer.capacity = cfg.buffer_size
            self.buffer.data = {k: v[len(self.buffer) - keep:] for k, v in self.buffer.data.items()}
            self.buffer.prompts = self.buffer.prompts[len(self.buffer.prompts) - keep:]
        if {"learning_rate", "lr_scheduler", "lr_warmup_steps"} & set(changes):
            lr = cfg.learning_rate
            sched = self.lr_scheduler
            sched.base_lrs = [lr] * len(self.optimizer.param_groups)
            lambdas = getattr(sched, "lr_lambdas", None) or [lambda _: 1.0] * len(self.optimizer.param_groups)
            for group, fn in zip(self.optimizer.param_groups, lambdas):
                group["initial_lr"] = lr
                group["lr"] = lr * fn(sched.last_epoch)
            sched._last_lr = [g["lr"] for g in self.optimizer.param_groups]


PHASES = ("rollout", "reward", "value", "policy")


def phase_line(iteration: int, total: int, metrics: dict) -> str:
    """One log line per (logged) iteration: the reward, the KL and the seconds of each phase that ran (DPOK:
    rollout, reward, value, policy; DRaFT only has the iteration's total)."""
    parts = [f"iteration {iteration}/{total}: reward {metrics.get('reward/mean', float('nan')):.4g} "
             f"± {metrics.get('reward/std', float('nan')):.3g}"]
    if "kl" in metrics:
        parts.append(f"kl {metrics['kl']:.3g}")
    phases = [f"{p} {metrics[f'{p}_seconds']:.2f}" for p in PHASES if f"{p}_seconds" in metrics]
    parts.append("seconds: " + ", ".join([*phases, f"total {metrics.get('iteration_seconds', float('nan')):.2f}"]))
    return "; ".join(parts)


def _scalars(d: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in d.items()}


def run(cfg: TrainConfig) -> Path | None:
    return Trainer(cfg).train()


__all__ = ["ADAPTER", "RewardSum", "Trainer", "run"]
