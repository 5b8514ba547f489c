"""Fine-tune a LoRA on a diffusion model's UNet with DPOK (online policy gradient + KL to the base model).

    accelerate launch train_online_pg.py --p_batch_size 2 --reward_weight 1000 --kl_weight 0.1 \
        --learning_rate 1e-5 --single_flag 0 --prompt_path ./dataset/test_prompts.json \
        --gradient_accumulation_steps 12 --clip_norm 0.1 --g_batch_size 6 --multi_gpu 1 \
        --max_train_steps 100000 --v_flag 1 --cache_dir .cache/

The original DPOK / Diffusion Blend flags keep their meanings (``--help`` lists them, and the ones
that have no effect here). One reward or a weighted sum: ``--reward image_reward`` or
``--reward image_reward:0.5,vila:0.5`` (the MORL oracle). Continue a run with ``--resume latest``.
Checkpoints (``<output_dir>/checkpoint-<N>/``) plug into ``run_DB.py --lora NAME=<checkpoint dir>``.
See dpok/README.md.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from dbcore.logging import get_logger, setup_logging
    from dpok.config import check_values, parse_args

    setup_logging()
    log = get_logger("dpok")
    cfg, ignored = parse_args(argv)
    for msg in ignored:
        log.warning(msg)
    try:  # bad flag values are refused before torch and the models are imported
        check_values(cfg)
    except ValueError as exc:
        log.error("error: %s", exc)
        return 2

    from dpok.run_lock import OutputDirInUse
    from dpok.trainer import Trainer

    try:
        trainer = Trainer(cfg)
        last = trainer.train()
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, OutputDirInUse) as exc:
        log.error("error: %s", exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        return 2
    if trainer.acc.is_main_process:
        log.info("done; last checkpoint: %s", last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
