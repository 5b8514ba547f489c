"""Everything about one diffusion model: bundles, LoRA adapters, prompt encoding, the DDIM step."""
