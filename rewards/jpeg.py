"""JPEG (in)compressibility: ∓ the size in kilobytes of the image saved as JPEG at quality 95.

The definition of DDPO and DAS (``jpeg_compressibility`` = −kB). Not differentiable. Images
smaller than ``min_side`` are first upsampled (bicubic) so that the ~0.6 kB JPEG header does not
swamp the signal on tiny images (docs/toy_world.md, probe 4); at 512² nothing is resized.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from PIL import Image

from dbcore.images import to_pil
from rewards.registry import check_images, register

JPEG_QUALITY = 95


def jpeg_kilobytes(images: torch.Tensor, quality: int = JPEG_QUALITY, min_side: int = 128) -> torch.Tensor:
    """Size of each image as JPEG at ``quality``, in kB (1 kB = 1000 bytes). → (N,) float32."""
    check_images(images)
    sizes = []
    for img in to_pil(images):
        if min(img.size) < min_side:
            factor = -(-min_side // min(img.size))
            img = img.resize((img.width * factor, img.height * factor), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        sizes.append(buf.tell() / 1000.0)
    return torch.tensor(sizes, dtype=torch.float32)


class JpegReward:
    def __init__(self, name: str, sign: float, min_side: int) -> None:
        self.name, self.sign, self.min_side = name, sign, min_side

    def __call__(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        return self.sign * jpeg_kilobytes(images, min_side=self.min_side)


@register("jpeg_compressibility",
          scale="−kB of the JPEG at quality 95 (higher = smaller file); about −5…−1 at 32² upsampled to 128²,"
                " −150…−20 at 512²",
          description="JPEG compressibility as DDPO/DAS define it (the paper's Table 5 reward)")
def _jpeg_compressibility(min_side: int = 128, **_: object) -> JpegReward:
    return JpegReward("jpeg_compressibility", -1.0, min_side)


@register("jpeg_incompressibility",
          scale="+kB of the JPEG at quality 95 (higher = larger file)",
          description="JPEG incompressibility, the opposite of jpeg_compressibility")
def _jpeg_incompressibility(min_side: int = 128, **_: object) -> JpegReward:
    return JpegReward("jpeg_incompressibility", 1.0, min_side)
