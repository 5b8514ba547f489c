"""Every seed derivation of the project in one place: which random stream an image, a chain, a draw or a training
step gets from the user's seed.

Streams are kept apart by a tag word mixed into ``numpy.random.SeedSequence`` (or, for the observer, XOR-ed into the
seed), so a draw of one kind never shifts another kind's stream. The values are pinned by tests/test_seeding.py;
changing any of them changes every stored result, so a change needs a new tag, not an edit.

* the noise of an image (x_T and the step noises z_1..z_T): ``noise_seed`` / ``initial_noise``, keyed by
  (prompt text, seed) under the per-image noise design and by the seed alone under the paper's per-seed design
  (``blend.sampler`` explains both); ``step_generators`` for schedulers that draw their own step noise;
* DB-MPA-LS adapter draws: ``adapter_draw_rng`` (tag ``LS_TAG``);
* the baselines' extra chains and branches: ``derive_seed`` (offset by 2³² so they never coincide with a user
  seed), ``branch_noise`` (CoDe), ``resample_rng`` (SMC resampling);
* training: ``training_seed`` (seed, rank, iteration, purpose, …) and ``observe_generator`` (the sample grid).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch

LS_TAG = 0x4C53  # "LS": DB-MPA-LS adapter draws, apart from the noise stream
CHAIN_TAG = 0xB0E  # extra chains of a baseline (best-of-N candidates, SMC particles)
BRANCH_TAG = 0xC0DE  # CoDe's extra branches
RESAMPLE_TAG = 0x5EC  # SMC resampling
OBSERVE_TAG = 0x6F6273  # "obs": the trainer's sample grid
STEP_TAG = 0x5354  # "ST": per-image generators of schedulers that draw their own noise
DERIVED_OFFSET = 2**32  # derived chain seeds lie above every 32-bit user seed


def prompt_key(prompt: str) -> tuple[int, int]:
    """A stable 64-bit key of the prompt text (two 32-bit words; the same on every machine and run)."""
    h = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(h[:4], "little"), int.from_bytes(h[4:8], "little")


def noise_seed(seed: int, prompt: str | None = None) -> int:
    """The generator seed of an image: ``seed`` itself (per-seed design) or a hash of (prompt, seed) (per image)."""
    if prompt is None:
        return int(seed)
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *prompt_key(prompt)]).generate_state(2)
    return int(state[0]) | (int(state[1]) << 32)


def initial_noise(seed: int, shape: Sequence[int], steps: int,
                  prompt: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x_T (C, H, W) and the step noises z (steps, C, H, W) from one CPU generator.

    The generator is seeded by ``seed`` alone when ``prompt`` is None (the paper's per-seed sharing) and
    by (prompt, seed) otherwise (``noise_seed``), so each (prompt, seed) gets its own noise.
    """
    gen = torch.Generator("cpu").manual_seed(noise_seed(seed, prompt))
    x_t = torch.randn(tuple(shape), generator=gen)
    z = torch.randn((steps, *shape), generator=gen)
    return x_t, z


def step_generators(seeds: Sequence[int], device: str | torch.device = "cpu",
                    prompts: Sequence[str] | None = None) -> list[torch.Generator]:
    """One generator per image for schedulers that draw their step noise themselves, keyed like the noise:
    by (prompt, seed) when ``prompts`` are given, by the seed alone otherwise."""
    keys = [noise_seed(s, p) for s, p in zip(seeds, prompts)] if prompts is not None else [int(s) for s in seeds]
    return [torch.Generator(device).manual_seed((k * 1_000_003 + STEP_TAG) % (2**63)) for k in keys]


def adapter_draw_rng(seeds: Sequence[int], prompt: str | None = None) -> np.random.Generator:
    """The generator of DB-MPA-LS adapter draws, keyed by (prompt, seed) for one image, or by the seed(s) alone when
    ``prompt`` is None (several seeds: one draw sequence for a whole batch)."""
    words = [int(s) & 0xFFFFFFFF for s in seeds] + ([*prompt_key(prompt)] if prompt is not None else [])
    return np.random.default_rng(np.random.SeedSequence([*words, LS_TAG]))


def derive_seed(seed: int, index: int, tag: int = CHAIN_TAG) -> int:
    """A seed for extra chain ``index`` ≥ 1 of ``seed`` (index 0 is the seed itself), ≥ ``DERIVED_OFFSET``."""
    if index == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed) % 2**63, int(index), int(tag)]).generate_state(2, dtype=np.uint32)
    return DERIVED_OFFSET + (int(state[0]) << 30 ^ int(state[1]))


def branch_noise(seed: int, n_extra: int, n_branch: int, shape: Sequence[int]) -> torch.Tensor:
    """CoDe's extra candidate noises: (n_branch, n_extra, C, H, W) from one generator per seed."""
    gen = torch.Generator("cpu").manual_seed(derive_seed(seed, 1, tag=BRANCH_TAG))
    return torch.randn((n_branch, n_extra, *shape), generator=gen)


def resample_rng(seed: int) -> np.random.Generator:
    """The generator of SMC resampling for the chains of one seed."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, RESAMPLE_TAG]))


def training_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, rank, iteration, purpose, ...), stable across machines."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def observe_generator(seed: int) -> torch.Generator:
    """The private CPU generator of the trainer's sample grid (apart from every training stream)."""
    return torch.Generator("cpu").manual_seed(int(seed) ^ OBSERVE_TAG)
