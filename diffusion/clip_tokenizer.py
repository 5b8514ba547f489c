"""The CLIP tokenizer builder moved to the ground floor (``dbcore/clip_tokenizer.py``), shared by the text encoders
and the CLIP rewards; its names stay importable from here."""

from dbcore.clip_tokenizer import (
           BPE_PATH,
           CLIP_VOCAB_SIZE,
           byte_symbols,
           check_clip_tokenizer,
           clip_tokenizer,
           clip_vocab_and_merges,
)

__all__ = ["BPE_PATH", "CLIP_VOCAB_SIZE", "byte_symbols", "check_clip_tokenizer", "clip_tokenizer",
           "clip_vocab_and_merges"]
