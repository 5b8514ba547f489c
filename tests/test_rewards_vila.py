"""VILA: the wrapping logic (PNG bytes in, 'predictions' out, 4p − 2) with a fake signature; with TensorFlow
installed, a real SavedModel with a VILA-shaped serving_default signature is written and loaded."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from rewards import get_reward
from rewards.vila import VilaScorer, png_bytes


def mean_of_png(b: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float64).mean() / 255.0)


def test_vila_wrapping_with_fake_signature():
    calls = []

    def predict_fn(x):
        calls.append(x)
        assert isinstance(x, bytes) and x[:8] == b"\x89PNG\r\n\x1a\n"
        return {"predictions": np.array([[mean_of_png(x)]], dtype=np.float32)}

    images = torch.stack([torch.full((3, 16, 24), 0.25), torch.full((3, 16, 24), 1.0)])
    scores = VilaScorer(predict_fn, constant=lambda b: b)(images, ["a", "b"])
    assert len(calls) == 2
    want = torch.tensor([4 * round(0.25 * 255) / 255 - 2, 2.0])
    torch.testing.assert_close(scores, want, atol=1e-6, rtol=0)


def test_png_bytes_round_trip():
    images = torch.rand(2, 3, 8, 8)
    for b, im in zip(png_bytes(images), images):
        arr = np.asarray(Image.open(io.BytesIO(b)))
        np.testing.assert_array_equal(arr, (im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def test_vila_real_savedmodel(tmp_path):
    tf = pytest.importorskip(
        "tensorflow",
        reason="TensorFlow is optional (pip install tensorflow-cpu; it installs beside the pinned stack without "
               "changing a pin but adds ~1.5 GB, so the default environment does not include it)")

    class FakeVila(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            img = tf.cast(tf.io.decode_image(image_bytes, channels=3, expand_animations=False), tf.float32)
            return {"predictions": tf.reshape(tf.reduce_mean(img) / 255.0, [1, 1])}

    m = FakeVila()
    tf.saved_model.save(m, str(tmp_path / "vila"), signatures={"serving_default": m.serve})
    scorer = get_reward("vila", cache_dir=tmp_path)
    images = torch.rand(2, 3, 20, 30)
    want = torch.tensor([4 * mean_of_png(b) - 2 for b in png_bytes(images)], dtype=torch.float32)
    torch.testing.assert_close(scorer(images, ["a", "b"]), want, atol=1e-5, rtol=0)


def test_vila_without_tensorflow_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from rewards.vila import OptionalDependencyError

    (tmp_path / "vila").mkdir()
    (tmp_path / "vila" / "saved_model.pb").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(OptionalDependencyError, match="pip install tensorflow-cpu"):
        get_reward("vila", cache_dir=tmp_path)
