"""VILA aesthetic score (Ke et al. 2023), the paper's aesthetic reward, from the official TF-Hub SavedModel.

Official use (tfhub.dev/google/vila/image/1, now kaggle.com/models/google/vila): load the SavedModel,
take ``signatures["serving_default"]``, call it on ``tf.constant(<PNG or JPEG bytes>)``, read
``["predictions"]`` ∈ [0, 1]. The paper (DB ``reward_vila``) rescales it like ImageReward:
**reward = 4·p − 2** ∈ [−2, 2]; higher = more aesthetic. Images are rounded to uint8 and
PNG-encoded one at a time. Not differentiable (TensorFlow; the paper's RGG baseline uses a JAX VILA).

TensorFlow is optional: ``pip install tensorflow-cpu`` (2.21 installs beside the pinned stack without
changing any pin; see rewards/README.md). The model directory is looked for at the explicit
``model_dir=``, then ``<cache_dir>/vila/`` (the unpacked SavedModel: ``saved_model.pb`` + ``variables/``).
There is no hub download: TF-Hub/Kaggle downloads need their own client.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewards.checkpoints import cache_root, resolve_dir
from rewards.registry import check_images, register

INSTALL = ("pip install tensorflow-cpu; download the SavedModel from https://tfhub.dev/google/vila/image/1 "
           "(https://www.kaggle.com/models/google/vila/tensorFlow2/image) and unpack it into <cache_dir>/vila/ "
           "(or pass model_dir=/path/to/vila)")


class OptionalDependencyError(ImportError):
    """An optional package (TensorFlow for VILA) is not installed; the message says how to install it."""


def png_bytes(images: torch.Tensor) -> list[bytes]:
    """(N, 3, H, W) in [0, 1] → N PNG encodings of the uint8-rounded RGB images."""
    arr = (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    out = []
    for a in arr:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _call_signature(predict_fn: Callable, x: Any) -> Any:
    try:
        return predict_fn(x)
    except TypeError:  # signatures that accept keyword arguments only
        kwargs = getattr(predict_fn, "structured_input_signature", ((), {}))[1]
        if len(kwargs) != 1:
            raise
        return predict_fn(**{next(iter(kwargs)): x})


class VilaScorer:
    """Scores images with a VILA ``serving_default`` signature: 4·predictions − 2. → (N,) float32 on CPU."""

    name = "vila"

    def __init__(self, predict_fn: Callable, constant: Callable[[bytes], Any]) -> None:
        self.predict_fn, self.constant = predict_fn, constant

    def __call__(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        check_images(images, prompts)
        scores = []
        for b in png_bytes(images):
            pred = _call_signature(self.predict_fn, self.constant(b))["predictions"]
            p = np.asarray(pred.numpy() if hasattr(pred, "numpy") else pred, dtype=np.float64).reshape(-1)
            if p.size != 1:
                raise ValueError(f"VILA returned {p.size} predictions for one image; expected 1")
            scores.append(4.0 * p[0] - 2.0)
        return torch.tensor(scores, dtype=torch.float32)


def import_tensorflow():
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as e:
        raise OptionalDependencyError(f"the VILA reward needs TensorFlow, which is not installed ({e}). "
                                      "Install it with: pip install tensorflow-cpu   (see rewards/README.md)") from e
    return tf


def load_vila(model_dir: str | Path | None = None, *, cache_dir: str | Path | None = None,
              **_: object) -> VilaScorer:
    """Load the VILA SavedModel from ``model_dir`` or ``<cache_dir>/vila``. ``device``/``dtype`` are ignored (TF, CPU)."""
    path = resolve_dir("VILA SavedModel", explicit=model_dir, candidates=[cache_root(cache_dir) / "vila"],
                       install=INSTALL, marker="saved_model.pb")
    tf = import_tensorflow()
    model = tf.saved_model.load(str(path))
    if "serving_default" not in model.signatures:
        raise ValueError(f"{path} has no 'serving_default' signature (has {list(model.signatures)}); not VILA")
    scorer = VilaScorer(model.signatures["serving_default"], tf.constant)
    scorer._model = model  # keep the loaded object alive with its signature
    return scorer


@register("vila",
          scale="4·p − 2 ∈ [−2, 2] with p the VILA aesthetic prediction ∈ [0, 1]; higher = more aesthetic "
                "(the paper's convention)",
          description="VILA aesthetic score (official TF-Hub SavedModel; needs TensorFlow)",
          needs="TensorFlow (pip install tensorflow-cpu) + the VILA SavedModel in <cache_dir>/vila")
def _vila(**kwargs) -> VilaScorer:
    return load_vila(**kwargs)
