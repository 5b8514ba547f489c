"""Training on the model families: a DPOK and a DRaFT-K iteration on builtin:tiny-xl each write a checkpoint that
run_DB.py's loader reads back into the same ε; a flow-matching (SD3) model is refused with a clear message."""

from __future__ import annotations

import pytest
import torch
from conftest_dpok import tiny_train_config

from diffusion.adapters import activate
from diffusion.bundle import save_bundle
from diffusion.loading import load_bundle
from diffusion.lora import load_adapter
from diffusion.tiny import make_tiny_sdxl
from dpok import checkpoint as ckpt
from dpok.trainer import ADAPTER, Trainer


@pytest.fixture(scope="module")
def tiny_xl_dir(tmp_path_factory):
    return str(save_bundle(make_tiny_sdxl(seed=0, latent_size=8), tmp_path_factory.mktemp("tinyxl") / "model"))


_config = tiny_train_config


def _eps(bundle, adapter):
    x = torch.randn(2, *bundle.sample_shape, generator=torch.Generator().manual_seed(3))
    cond = bundle.encode_prompts(["a red cat", "a blue dog"])
    activate(bundle.unet, adapter)
    with torch.no_grad():
        return bundle.denoise(x, 501, cond)


@pytest.mark.parametrize("algorithm", ["dpok", "draft"])
def test_sdxl_iteration_writes_a_checkpoint_run_db_loads(tmp_path, tiny_xl_dir, algorithm):
    extra = {"draft_k": 1} if algorithm == "draft" else {}
    trainer = Trainer(_config(tmp_path / algorithm, tiny_xl_dir, algorithm=algorithm, **extra))
    last = trainer.train()
    assert ckpt.is_complete(last)
    fresh = load_bundle(tiny_xl_dir)
    assert fresh.family == "sdxl"
    load_adapter(fresh.unet, "trained", last)
    ref = _eps(trainer.bundle, ADAPTER)
    torch.testing.assert_close(_eps(fresh, "trained"), ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(_eps(fresh, None), ref, atol=1e-7)  # the adapter moved


def test_flow_model_training_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="flow-matching.*SDXL"):
        Trainer(_config(tmp_path / "sd3", "builtin:tiny-sd3"))
