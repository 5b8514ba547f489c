"""DPOK fine-tuning of a diffusion model's UNet with a LoRA (and the DRaFT-K mode); see dpok/README.md."""
