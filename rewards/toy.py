"""Rewards of the built-in toy world (``toy/``; docs/toy_world.md, probes 4 and 6).

* ``toy_alignment`` — the toy's ImageReward: a small CNN judge (``rewards/toy_judge.py``, trained on the
  procedural set) reads colour, shape and background; the reward is the sum over the three
  attributes of the judge's log-probability of the prompted value (≤ 0; 0 = the judge is sure all
  three match; base-model samples score about −10 ± 9). Differentiable. The plain log-probability is
  used on purpose: a label-smoothed ``log((1−ε)p + ε/K)`` (bounded below) was tried first and its
  gradient vanishes exactly on the confidently wrong images that fine-tuning should fix (at ε = 0.05
  a 50-iteration DRaFT run gained +0.35 ± 0.30 on held-out prompts, against +2.3 nats for the plain
  log-probability in 20 iterations). Pass ``smoothing=ε`` to the factory for the bounded variant.
* ``toy_smoothness`` — minus the total variation: the mean absolute difference between horizontal
  and vertical neighbours, on the image in [−1, 1]. Differentiable; it is the training surrogate of
  ``jpeg_compressibility`` (the evaluation reward: −kB of the 128-px upsample at q95), which it
  tracks closely on this toy (docs/toy_world.md, probe 6: −TV +0.073 came with −0.75 kB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rewards.registry import check_images, register
from rewards.toy_judge import HEADS, TOY_WEIGHTS_DIR, load_judge
from rewards.toy_truth import parse_caption, truth_attributes

SMOOTHING = 0.0  # ε of log((1 − ε)·p + ε/K); 0 = the plain log-probability (see the module docstring)


class ToyAlignment:
    name = "toy_alignment"

    def __init__(self, judge_dir: str | Path | None = None, device="cpu", dtype=torch.float32,
                 smoothing: float = SMOOTHING) -> None:
        self.smoothing = float(smoothing)
        self.judge = load_judge(judge_dir or TOY_WEIGHTS_DIR / "judge").to(device, torch.float32)
        self.device = device

    def attribute_logprobs(self, images: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        check_images(images, prompts)
        labels = torch.tensor([parse_caption(p) for p in prompts], dtype=torch.long, device=images.device)
        logits = self.judge(images.float().to(self.device).clamp(0, 1))
        out = {}
        for i, (k, n_cls) in enumerate(HEADS.items()):
            p = logits[k].softmax(-1).gather(1, labels[:, i : i + 1].to(self.device))[:, 0]
            if self.smoothing:
                out[k] = torch.log((1 - self.smoothing) * p + self.smoothing / n_cls)
            else:
                out[k] = logits[k].log_softmax(-1).gather(1, labels[:, i : i + 1].to(self.device))[:, 0]
        return out

    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return sum(self.attribute_logprobs(images, prompts).values()).to(images.device)


ALIGN_TEMPERATURE = 4.0  # T of the toy_align rewards: log softmax(logits / T); see ToyAlign


class ToyAlign:
    """The toy world's alignment score (since v2): the mean over colour, shape and background of a judge's tempered
    log-probability of the prompted value, log softmax(logits / T)[prompted], T = 4.

    ≤ 0 (0 = the judge is certain all three match); about −1.28 ± 0.76 on base samples (training judge, the toy
    sampler of toy/model.py). Bounded above, so its spread shrinks as a model aligns (saturation: what lets a
    compromise beat both single models, docs/method.md); the temperature compresses the heavy lower tail of the
    plain log-probability (a confidently wrong judge gives −4 to −6 instead of −20) while keeping a gradient
    of (1 − p_T)/T on exactly those images.
    """

    def __init__(self, name: str, judge_dir: str | Path, device="cpu", temperature: float = ALIGN_TEMPERATURE) -> None:
        self.name, self.temperature, self.device = name, float(temperature), device
        self.judge = load_judge(judge_dir).to(device, torch.float32)

    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        check_images(images, prompts)
        labels = torch.tensor([parse_caption(p) for p in prompts], dtype=torch.long, device=self.device)
        logits = self.judge(images.float().to(self.device).clamp(0, 1))
        logp = [(lg / self.temperature).log_softmax(-1).gather(1, labels[:, i : i + 1])[:, 0]
                for i, lg in enumerate(logits.values())]
        return torch.stack(logp).mean(0).to(images.device)


def _judge_dir(which: str, judge_dir: str | Path | None) -> Path:
    return Path(judge_dir) if judge_dir else TOY_WEIGHTS_DIR / which


@register("toy_align", differentiable=True,
          scale="mean over colour/shape/background of the TRAINING judge's log-probability (logits / 4) of the"
                " prompted value; ≤ 0, higher is better, about −1.28 ± 0.76 on base samples",
          description="the toy world's alignment reward (since v2) for training and guidance (the judge that is climbed)",
          needs="toy/weights/judge (committed; rebuilt by scripts/build_toy.sh)")
def _toy_align(device="cpu", judge_dir=None, **_: object) -> ToyAlign:
    return ToyAlign("toy_align", _judge_dir("judge", judge_dir), device=device)


@register("toy_align_heldout", differentiable=True,
          scale="as toy_align, read by the HELD-OUT judge (another architecture, seed and training set); ≤ 0, higher"
                " is better, about −1.10 ± 0.61 on base samples",
          description="the toy world's alignment score (since v2) for evaluation only: nothing trains or guides on this judge",
          needs="toy/weights/judge_heldout (committed; rebuilt by scripts/build_toy.sh)")
def _toy_align_heldout(device="cpu", judge_dir=None, **_: object) -> ToyAlign:
    return ToyAlign("toy_align_heldout", _judge_dir("judge_heldout", judge_dir), device=device)


class ToySmoothness:
    name = "toy_smoothness"

    def __call__(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        check_images(images, prompts)
        x = images.float() * 2 - 1
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
        return -(dx + dy) / 2


@register("toy_alignment", differentiable=True,
          scale="Σ over colour/shape/background of the judge's log p of the prompted value; ≤ 0, higher is better"
                " (0 = judge sure all three match), about −10 ± 9 on base samples",
          description="the toy world's ImageReward: a CNN judge trained on the procedural set (toy captions only)",
          needs="toy/weights/judge (committed; rebuilt by scripts/build_toy.sh)")
def _toy_alignment(device="cpu", dtype=torch.float32, judge_dir=None, smoothing=SMOOTHING, **_: object) -> ToyAlignment:
    return ToyAlignment(judge_dir, device=device, dtype=dtype, smoothing=float(smoothing))


@register("toy_smoothness", differentiable=True,
          scale="−(mean |neighbour difference|) on the image in [−1, 1]; higher is smoother, 0 = flat image,"
                " about −0.056 on base samples",
          description="minus total variation: the differentiable surrogate of jpeg_compressibility for the toy")
def _toy_smoothness(**_: object) -> ToySmoothness:
    return ToySmoothness()


class ToyRandomProjection:
    """⟨2·image − 1, v⟩ / √d with a fresh v ~ N(0, I) on every call (seeded by the call count)."""

    name = "toy_random_projection"

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.calls = int(seed), 0

    def __call__(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        check_images(images, prompts)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.calls)
        self.calls += 1
        v = torch.randn(images.shape[1:], generator=g).to(images.device, images.dtype)
        x = images * 2 - 1
        return (x * v).flatten(1).sum(1) / v.numel() ** 0.5


@register("toy_random_projection", differentiable=True,
          scale="⟨image in [−1, 1], v⟩/√d with a fresh v ~ N(0, I) per call; higher is 'better' only for that call"
                " (a control), std ≈ 0.5, mean 0",
          description="a control reward with no consistent direction: fine-tuning on it measures optimiser drift "
                      "(docs/toy_world.md, probe 6)")
def _toy_random_projection(seed=0, **_: object) -> ToyRandomProjection:
    return ToyRandomProjection(int(seed))


class Standardised:
    """(r − μ) / σ with μ, σ of the toy base model's samples (``toy/weights/reward_stats.json``)."""

    def __init__(self, name: str, inner, key: str, stats_path: str | Path | None = None) -> None:
        import json

        path = Path(stats_path) if stats_path else TOY_WEIGHTS_DIR / "reward_stats.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; build it with `python -m toy.stats` "
                                    f"(or `bash scripts/build_toy.sh`)")
        st = json.loads(path.read_text())[key]
        self.name, self.inner, self.mean, self.std = name, inner, float(st["mean"]), float(st["std"])

    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return (self.inner(images, prompts) - self.mean) / self.std


@register("toy_alignment_z", differentiable=True,
          scale="(toy_alignment − μ)/σ, μ = −9.74, σ = 9.15 nats over base-model samples on the training prompts;"
                " higher is better, base ≈ 0 (normalised like ImageReward)",
          description="toy_alignment standardised by the toy base model's statistics (toy/weights/reward_stats.json)",
          needs="toy/weights/judge and toy/weights/reward_stats.json (committed)")
def _toy_alignment_z(device="cpu", dtype=torch.float32, judge_dir=None, stats=None, **_: object) -> Standardised:
    return Standardised("toy_alignment_z", ToyAlignment(judge_dir, device=device, dtype=dtype), "toy_alignment", stats)


@register("toy_align_z", differentiable=True,
          scale="(toy_align − μ)/σ over base-model samples (10-step sampler, training prompts); higher is better, base ≈ 0",
          description="toy_align standardised by the toy base model's statistics (training judge)",
          needs="toy/weights/judge and toy/weights/reward_stats.json (committed)")
def _toy_align_z(device="cpu", judge_dir=None, stats=None, **_: object) -> Standardised:
    return Standardised("toy_align_z", _toy_align(device=device, judge_dir=judge_dir), "toy_align", stats)


@register("toy_align_heldout_z", differentiable=True,
          scale="(toy_align_heldout − μ)/σ over base-model samples (10-step sampler, training prompts); higher is better,"
                " base ≈ 0",
          description="toy_align_heldout standardised by the toy base model's statistics (held-out judge:"
                      " for evaluation only)",
          needs="toy/weights/judge_heldout and toy/weights/reward_stats.json (committed)")
def _toy_align_heldout_z(device="cpu", judge_dir=None, stats=None, **_: object) -> Standardised:
    return Standardised("toy_align_heldout_z", _toy_align_heldout(device=device, judge_dir=judge_dir),
                        "toy_align_heldout", stats)


@register("toy_smoothness_z", differentiable=True,
          scale="(toy_smoothness − μ)/σ over base-model samples (10-step sampler, training prompts); higher is better,"
                " base ≈ 0",
          description="toy_smoothness standardised by the toy base model's statistics: the compressibility reward that"
                      " training and reward-guided baselines use (JPEG size itself is not differentiable)",
          needs="toy/weights/reward_stats.json (committed)")
def _toy_smoothness_z(stats=None, **_: object) -> Standardised:
    return Standardised("toy_smoothness_z", ToySmoothness(), "toy_smoothness", stats)


COMPRESS_CAP = 1.0  # c of the capped compressibility rewards: a target 1 base-model σ above the base model's mean
CAP_SOFTNESS = 0.25  # τ of their soft minimum, in the same σ units


def soft_cap(z: torch.Tensor, cap: float = COMPRESS_CAP, softness: float = CAP_SOFTNESS) -> torch.Tensor:
    """Soft minimum of ``z`` and ``cap``: −τ·log(e^(−z/τ) + e^(−c/τ)); (N,) → (N,).

    ≈ z well below the cap (within τ·log 2 at z = c), → c above it; the slope σ((c − z)/τ) ∈ (0, 1) fades as an
    image passes the target. So a model that reaches the target gains nothing more by going further (saturation: the
    reward's spread shrinks under its own model, what a winning compromise needs; docs/toy_world.md, toy world v3).
    """
    return -softness * torch.logaddexp(-z / softness, torch.full_like(z, -cap / softness))


class Capped:
    """``soft_cap(inner(images, prompts))``: a standardised reward with the target ``COMPRESS_CAP``."""

    def __init__(self, name: str, inner) -> None:
        self.name, self.inner = name, inner

    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return soft_cap(self.inner(images, prompts))


# a literal, so that `run_DB.py --list_rewards` reads it without importing torch (rewards/catalog.py); the test of
# soft_cap checks that it states COMPRESS_CAP and CAP_SOFTNESS
CAP_SCALE = "1 (−τ·log(e^(−z/τ) + e^(−1/τ)), τ = 0.25); ≤ 1, higher is better, base ≈ −0.06"


@register("toy_smoothness_capped_z", differentiable=True, scale=f"soft minimum of toy_smoothness_z and {CAP_SCALE}",
          description="toy world v3's compressibility reward for training and guidance: smoothness with a target "
                      "(images 1σ smoother than the base model's mean earn nothing more)",
          needs="toy/weights/reward_stats.json (committed)")
def _toy_smoothness_capped_z(stats=None, **_: object) -> Capped:
    return Capped("toy_smoothness_capped_z", _toy_smoothness_z(stats=stats))


@register("toy_jpeg_z",
          scale="(jpeg_compressibility − μ)/σ, μ = −3.68, σ = 0.23 kB over base-model samples on the training prompts;"
                " higher is better (smaller file), base ≈ 0",
          description="jpeg_compressibility (128-px upsample, q95) standardised by the toy base model's statistics",
          needs="toy/weights/reward_stats.json (committed)")
def _toy_jpeg_z(stats=None, **_: object) -> Standardised:
    from rewards.jpeg import JpegReward

    return Standardised("toy_jpeg_z", JpegReward("jpeg_compressibility", -1.0, 128), "jpeg_compressibility", stats)


@register("toy_jpeg_capped_z", scale=f"soft minimum of toy_jpeg_z and {CAP_SCALE}",
          description="toy world v3's compressibility score for evaluation: the true JPEG size with the target of "
                      "toy_smoothness_capped_z (a file 1σ smaller than the base model's mean earns the most)",
          needs="toy/weights/reward_stats.json (committed)")
def _toy_jpeg_capped_z(stats=None, **_: object) -> Capped:
    return Capped("toy_jpeg_capped_z", _toy_jpeg_z(stats=stats))


class ToyTruth:
    """Reward-free check from the generator's ground truth: which attributes of the prompt an image shows,
    read from pixels with the generator's palette and shape geometry (``rewards.toy_truth.truth_attributes``), no
    learned model. ``attribute`` None → the fraction of colour, shape, background that are right (0, ⅓, ⅔, 1)."""

    def __init__(self, name: str, attribute: int | None) -> None:
        self.name, self.attribute = name, attribute

    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        check_images(images, prompts)
        labels = torch.tensor([parse_caption(p) for p in prompts], dtype=torch.long)
        right = (truth_attributes(images.detach().cpu()) == labels).float()
        out = right.mean(1) if self.attribute is None else right[:, self.attribute]
        return out.to(images.device)


TRUTH_SCALE = "read from pixels with the generator's own palette and geometry (no learned model); higher is better"
TRUTH_DESCRIPTION = "toy world ground truth: a check nothing is trained or guided on"


@register("toy_truth", scale=f"the fraction of colour, shape and background that match the prompt, {TRUTH_SCALE}",
          description=TRUTH_DESCRIPTION)
def _toy_truth(**_: object) -> ToyTruth:
    return ToyTruth("toy_truth", None)


@register("toy_truth_colour", scale=f"1 if the object's colour matches the prompt, {TRUTH_SCALE}",
          description=TRUTH_DESCRIPTION)
def _toy_truth_colour(**_: object) -> ToyTruth:
    return ToyTruth("toy_truth_colour", 0)


@register("toy_truth_shape", scale=f"1 if the object's shape matches the prompt, {TRUTH_SCALE}",
          description=TRUTH_DESCRIPTION)
def _toy_truth_shape(**_: object) -> ToyTruth:
    return ToyTruth("toy_truth_shape", 1)
