"""Shared helper for the trainer tests: a seconds-long ``TrainConfig`` on a tiny model (the paper's values except
the sizes). Each test file passes only what it changes."""

from __future__ import annotations

from dpok.config import TrainConfig

TINY_TRAINING = dict(reward="brightness", num_inference_steps=3, g_batch_size=2, p_step=1, gradient_accumulation_steps=1,
                     p_batch_size=2, v_batch_size=4, v_step=1, iterations=1, seed=0, report_to="none", progress=False,
                     save_interval=100, gradient_checkpointing=False)


def tiny_train_config(out, base: str, **changes) -> TrainConfig:
    """``TrainConfig`` for base model ``base`` writing to ``out``: ``TINY_TRAINING`` updated with ``changes``."""
    return TrainConfig(base_model=base, output_dir=str(out), **{**TINY_TRAINING, **changes})
