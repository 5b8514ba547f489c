"""Training observability: a captioned sample grid in TensorBoard every N iterations; unknown trackers fail."""

from __future__ import annotations

import importlib.util

import pytest
from conftest_dpok import tiny_train_config

from diffusion.bundle import save_bundle
from diffusion.tiny import make_tiny_sd
from dpok.config import TrainConfig, validate
from dpok.observe import check_trackers
from dpok.trainer import Trainer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(save_bundle(make_tiny_sd(seed=0, latent_size=8), tmp_path_factory.mktemp("tiny8obs") / "model"))


def _cfg(out, base, **kw) -> TrainConfig:
    return tiny_train_config(out, base, **{**dict(iterations=2, report_to="tensorboard", single_flag=1,
                                                  single_prompt="a red square", sample_grid_interval=2,
                                                  sample_grid_prompts=1), **kw})


def test_tensorboard_gets_a_captioned_sample_grid(tmp_path, tiny_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = Trainer(_cfg(tmp_path / "run", tiny_dir))
    trainer.train()
    events = list((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))
    assert events
    tags = {}
    for ev in events:
        acc = EventAccumulator(str(ev.parent), size_guidance={"images": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["images"]:
            tags[tag] = acc.Images(tag)
    assert "samples" in tags
    steps = [im.step for im in tags["samples"]]
    assert steps == [2]  # every 2 iterations of 2
    assert tags["samples"][0].width > 2 * 96 and tags["samples"][0].height > 96  # labels + 1 prompt × 2 samples


def test_grid_does_not_change_the_training(tmp_path, tiny_dir):
    """The grid uses its own noise: the trained adapter is the same with and without it."""
    import torch

    a = Trainer(_cfg(tmp_path / "a", tiny_dir, iterations=1, sample_grid_interval=1))
    a.train()
    b = Trainer(_cfg(tmp_path / "b", tiny_dir, iterations=1, sample_grid_interval=0))
    b.train()
    sa = {k: v for k, v in a.acc.unwrap_model(a.unet).state_dict().items() if "lora" in k}
    sb = {k: v for k, v in b.acc.unwrap_model(b.unet).state_dict().items() if "lora" in k}
    assert sa and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_uninstalled_or_unknown_tracker_is_an_error(tmp_path, tiny_dir):
    check_trackers("tensorboard")
    check_trackers("none")
    check_trackers("all")
    with pytest.raises(ValueError, match="not a tracker"):
        check_trackers("tensorbored")
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ValueError, match="'wandb' is not installed"):
            validate(_cfg(tmp_path, tiny_dir, report_to="wandb"))
    with pytest.raises(ValueError, match="sample_grid_interval"):
        validate(_cfg(tmp_path, tiny_dir, sample_grid_interval=-1))
