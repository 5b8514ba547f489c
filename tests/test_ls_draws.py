"""DB-MPA-LS draws and the noise design: independent per (prompt, seed), reproducible, paired across methods."""

from __future__ import annotations

import pytest
import torch

from blend.sampler import SamplerConfig, adapter_choices, draw_adapter_choices, initial_noise, sample
from blend.spec import BlendSpec

PROMPTS = ["a red square", "a blue circle", "a green triangle", "a yellow star"]


def _ls(w=(0.5, 0.5)):
    return BlendSpec("mpa_ls", ("a", "b"), tuple(w))


def test_ls_sequences_differ_across_prompts_of_one_seed_and_reproduce():
    spec = _ls()
    seeds = [0] * len(PROMPTS)
    first = adapter_choices(spec, PROMPTS, seeds, 20)
    again = adapter_choices(spec, PROMPTS, seeds, 20)
    assert first == again
    assert len({"".join(c) for c in first}) == len(PROMPTS)  # 2^-20 chance per pair of a clash
    # the draw of an image does not depend on its batch neighbours or its position in the batch
    alone = adapter_choices(spec, PROMPTS[2:3], [0], 20)
    assert alone[0] == first[2]
    # another seed, another sequence
    assert adapter_choices(spec, PROMPTS[:1], [1], 20)[0] != first[0]


def test_per_batch_step_is_one_sequence_for_the_whole_batch():
    spec = _ls()
    seeds = [0, 1, 2, 3]
    batch = adapter_choices(spec, PROMPTS, seeds, 30, mode="per_batch_step")
    assert all(c == batch[0] for c in batch)
    assert set(batch[0]) == {"a", "b"}
    # a batch of one image (run_DB.py's one image per call) depends on the seed alone, as in the official code
    one = adapter_choices(spec, PROMPTS[:1], [5], 30, mode="per_batch_step")[0]
    assert one == adapter_choices(spec, PROMPTS[3:], [5], 30, mode="per_batch_step")[0]
    assert one == draw_adapter_choices(5, ("a", "b"), (0.5, 0.5), 30)
    with pytest.raises(ValueError, match="ls_draw"):
        adapter_choices(spec, PROMPTS, seeds, 5, mode="per_prompt")


def test_noise_is_per_prompt_and_seed_by_default_and_per_seed_on_request():
    shape = (4, 8, 8)
    xa, za = initial_noise(3, shape, 5, prompt=PROMPTS[0])
    xb, zb = initial_noise(3, shape, 5, prompt=PROMPTS[1])
    assert not torch.equal(xa, xb) and not torch.equal(za, zb)
    xa2, za2 = initial_noise(3, shape, 5, prompt=PROMPTS[0])
    assert torch.equal(xa, xa2) and torch.equal(za, za2)
    xs1, _ = initial_noise(3, shape, 5)
    xs2, _ = initial_noise(3, shape, 5)
    assert torch.equal(xs1, xs2)
    with pytest.raises(ValueError, match="noise"):
        SamplerConfig(noise="per_batch")
    with pytest.raises(ValueError, match="ls_draw"):
        SamplerConfig(ls_draw="per_seed")


def test_sampler_pairs_images_across_methods_and_batches(tiny_with_adapters):
    bundle, _ = tiny_with_adapters
    cfg = SamplerConfig(steps=4, guidance=3.0)
    prompts, seeds = PROMPTS[:2], [0, 0]
    base = sample(bundle, BlendSpec("base"), prompts, seeds, cfg).images
    # one seed, two prompts: different images (own noise); the same image when sampled alone
    assert not torch.allclose(base[0], base[1])
    alone = sample(bundle, BlendSpec("base"), prompts[1:], seeds[1:], cfg).images
    torch.testing.assert_close(alone[0], base[1], rtol=0, atol=1e-5)
    # the per-seed design shares x_T and z between the prompts of a seed
    shared = SamplerConfig(steps=4, guidance=0.0, noise="per_seed")
    same = sample(bundle, BlendSpec("base"), ["", ""], [2, 2], shared).images
    torch.testing.assert_close(same[0], same[1], rtol=0, atol=0)
    ls = sample(bundle, _ls(), prompts, seeds, cfg)
    assert ls.choices == adapter_choices(_ls(), prompts, seeds, 4)
    batch = sample(bundle, _ls(), prompts, seeds, SamplerConfig(steps=4, guidance=3.0, ls_draw="per_batch_step"))
    assert batch.choices[0] == batch.choices[1]
