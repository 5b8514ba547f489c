"""The real CLIP tokenizer (49408 tokens), built offline from the vendored BPE merge list.

Stable Diffusion v1.x uses OpenAI CLIP's tokenizer. Its vocabulary is defined by the merge list
``bpe_simple_vocab_16e6.txt.gz`` (``assets/``, MIT): 256 byte symbols, the same with the word-end
marker ``</w>``, one token per merge (the first 48894 merges), then ``<|startoftext|>`` and
``<|endoftext|>``. Building it here means no hub access is ever needed for the tokenizer.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from transformers import CLIPTokenizer

BPE_PATH = Path(__file__).with_name("assets") / "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
_N_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2  # 48894


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for raw bytes used by byte-level BPE (GPT-2 / CLIP), in vocabulary order.

    Printable bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves and come first; the
    other 68 bytes follow, in byte order, mapped to code points 256, 257, ….
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


@functools.lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token → id, merges as (left, right) pairs) of OpenAI CLIP."""
    lines = gzip.open(BPE_PATH, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(m.split()) for m in lines[1 : _N_MERGES + 1]]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"CLIP vocabulary built with {len(tokens)} tokens, expected {CLIP_VOCAB_SIZE}")
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """OpenAI CLIP's tokenizer with ``model_max_length`` positions; no network access."""
    vocab, merges = clip_vocab_and_merges()
    tok = CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)
    check_clip_tokenizer(tok)
    return tok


def check_clip_tokenizer(tok, source: str = "built-in") -> None:
    """Raise if ``tok`` is not a full CLIP vocabulary (transformers silently builds 2-token ones offline)."""
    if len(tok) != CLIP_VOCAB_SIZE:
        raise ValueError(f"the {source} CLIP tokenizer has {len(tok)} tokens, expected {CLIP_VOCAB_SIZE}; "
                         "its vocab.json/merges.txt are missing or truncated")
