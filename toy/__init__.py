"""The built-in toy world: procedural captioned shapes, a 32×32 pixel-space SD-family model, a learned
prompt-alignment judge (the toy's ImageReward) and the fine-tuned adapters, all rebuilt by
``scripts/build_toy.sh`` on two CPU cores (see docs/toy_world.md)."""

from pathlib import Path

TOY_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = TOY_DIR / "weights"
