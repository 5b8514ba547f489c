"""One DPOK iteration of a Stable-Diffusion-v1.5-sized model with random weights: time and peak memory.

    python scripts/gpu_dpok.py sd_iteration                 # on a GPU: SD-v1.5 sizes, fp16, DPOK's defaults
    python scripts/gpu_dpok.py sd_iteration --tiny          # the same code path at tiny sizes (CPU, seconds)

The model has SD v1.5's architecture (UNet 860 M parameters: blocks 320/640/1280/1280, cross-attention
768; CLIP-L-sized text encoder; SD's VAE; 64×64×4 latents decoded to 512×512), built from configs
with random weights, so nothing is downloaded. One iteration of train_online_pg.py's trainer with
the paper's settings (docs/method.md §4: 6 prompts × 50 DDIM steps with CFG 7.5, value step 5 × 256, 5
policy steps × 12 micro-batches × 2 transitions, LoRA r 4, fp16, gradient checkpointing) runs on
the black-box ``jpeg_compressibility`` reward; the script prints the time of the rollout, reward,
value and policy update, and the peak GPU memory, and writes them as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def sd15_sized_bundle(tiny: bool, seed: int = 0):
    """SD v1.5's architecture with random weights (``tiny``: the same classes scaled down)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from dbcore.clip_tokenizer import clip_tokenizer
    from diffusion.bundle import ModelBundle
    from diffusion.tiny import SD15_SCHEDULER

    torch.manual_seed(seed)
    if tiny:
        unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=8, norm_num_groups=16)
        text = CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=77)
        vae = AutoencoderKL(block_out_channels=(16, 32), layers_per_block=1, latent_channels=4, norm_num_groups=16,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            sample_size=16)
    else:  # the diffusers defaults of UNet2DConditionModel are SD v1.5's UNet
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        text = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                              max_position_embeddings=77)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            sample_size=512)
    text_encoder = CLIPTextModel(CLIPTextConfig(**{**text.to_dict(), "vocab_size": 49408, "bos_token_id": 49406,
                                                   "eos_token_id": 49407, "pad_token_id": 49407}))
    bundle = ModelBundle(unet, text_encoder, clip_tokenizer(model_max_length=77), DDIMScheduler(**SD15_SCHEDULER),
                         vae, source="random SD-v1.5-sized" + (" (tiny)" if tiny else ""))
    for m in (unet, vae, text_encoder):
        m.eval().requires_grad_(False)
    return bundle


def sd_iteration(args) -> dict:
    from dpok.config import TrainConfig
    from dpok.trainer import Trainer

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        raise SystemExit("sd_iteration needs a GPU at SD-v1.5 size; use --tiny to check the code path on the CPU")
    dtype = torch.float16 if cuda else torch.float32
    bundle = sd15_sized_bundle(args.tiny).to("cuda" if cuda else "cpu", dtype)
    n_unet = sum(p.numel() for p in bundle.unet.parameters())
    steps = 4 if args.tiny else 50
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_dpok_"))
    cfg = TrainConfig(base_model="random-sd15", output_dir=str(out), reward="jpeg_compressibility",
                      single_flag=1, num_inference_steps=steps, iterations=args.iterations,
                      g_batch_size=6, p_step=5, gradient_accumulation_steps=12, p_batch_size=2,
                      v_batch_size=256, v_step=5, mixed_precision="fp16" if cuda else "no",
                      gradient_checkpointing=True, seed=0, report_to="none", progress=False,
                      save_interval=10**6, reward_weight=1000, kl_weight=0.1, learning_rate=1e-5)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer = Trainer(cfg, bundle=bundle)
    setup = time.perf_counter() - t0
    metrics = []
    trainer.after_iteration.append(lambda t, m: metrics.append(m))
    trainer.train()
    last = metrics[-1]
    res = {"model": bundle.source, "unet_parameters": n_unet, "device": str(trainer.acc.device),
           "dtype": str(dtype), "iterations": len(metrics), "setup_seconds": setup,
           **{k: last[k] for k in ("rollout_seconds", "reward_seconds", "value_seconds", "policy_seconds",
                                   "iteration_seconds")},
           "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
           "lora_parameters": sum(p.numel() for p in trainer.lora_params)}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sd = sub.add_parser("sd_iteration", help="one DPOK iteration of an SD-v1.5-sized UNet with random weights")
    sd.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU check of the code path)")
    sd.add_argument("--iterations", type=int, default=1)
    sd.add_argument("--out", default=None, help="trainer output directory (default: a temporary one)")
    sd.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args(argv)
    res = sd_iteration(args)
    for k, v in res.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
