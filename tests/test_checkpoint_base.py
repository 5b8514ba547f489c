"""A checkpoint moved to another machine (or a clone at another path) still passes run_DB.py's base-model check
through the base as the user typed it; another base is still refused."""

from __future__ import annotations

import json

import pytest

from blend.run_plan import PlanError, check_checkpoint


def _checkpoint(tmp_path, **manifest):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "pytorch_lora_weights.safetensors").write_bytes(b"")
    (d / "manifest.json").write_text(json.dumps({"config": {"output_dir": "/gone/run"}, **manifest}))
    return str(d)


def test_moved_checkpoint_is_recognised_by_the_base_as_typed(tmp_path):
    path = _checkpoint(tmp_path, base_model="/machine/that/trained/toy/weights/base",
                       base_model_given="toy/weights/base")
    check_checkpoint(path, "--lora", "builtin:toy", False)  # no error


def test_another_base_is_still_refused(tmp_path):
    path = _checkpoint(tmp_path, base_model="/elsewhere/base", base_model_given="/elsewhere/base")
    with pytest.raises(PlanError, match="trained on base model"):
        check_checkpoint(path, "--lora", "builtin:toy", False)


def test_a_base_rebuilt_at_the_same_path_is_told_apart(tmp_path, caplog):
    """Toy bases record their UNet's SHA-256 in their manifest and the trainer copies it into each adapter's: an
    adapter of the base that was at the same path before (e.g. toy world v2's) is refused, the current one passes."""
    from diffusion.sources import TOY_BASE_DIR, base_unet_sha256

    now = base_unet_sha256("builtin:toy")
    assert now and now == base_unet_sha256(str(TOY_BASE_DIR))
    (tmp_path / "base").mkdir()
    assert base_unet_sha256(str(tmp_path / "base")) is None  # no manifest: nothing to compare, no refusal
    (tmp_path / "a").mkdir()
    check_checkpoint(_checkpoint(tmp_path / "a", base_model="toy/weights/base", base_unet_sha256=now), "--lora",
                     "builtin:toy", False)
    old = _checkpoint(tmp_path, base_model="toy/weights/base", base_unet_sha256="0" * 64)
    with pytest.raises(PlanError, match="other weights of --base_model 'builtin:toy'.*rebuilt or replaced"):
        check_checkpoint(old, "--lora", "builtin:toy", False)
    check_checkpoint(old, "--lora", "builtin:toy", True)  # --allow_other_base: a warning
    assert "rebuilt or replaced" in caplog.text
