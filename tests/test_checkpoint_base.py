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
