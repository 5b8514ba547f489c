"""Prompt normalisation of open_clip's CLIP tokenizer (HPSv2), applied before the transformers tokenizer.

open_clip's ``SimpleTokenizer.encode`` (vendored by HPSv2 as ``hpsv2/src/open_clip/tokenizer.py``) cleans
the text before BPE: ``ftfy.fix_text``, ``html.unescape`` twice, strip; collapse every whitespace run to
one space, strip; lower case. transformers' ``CLIPTokenizer`` only does NFC, whitespace collapsing and
lower casing, so ``"rock &amp; roll"`` or ``"Tom&#39;s"`` give other ids unless cleaned first.

``ftfy`` (listed in requirements.txt) repairs mojibake, curly quotes, ligatures, full-width characters
and similar. When it is not installed, :func:`open_clip_clean` does every other step and
:func:`ftfy_missing_warning` says so once; prompts that ftfy would change (e.g. ``’`` → ``'``) then get
other ids than in hpsv2.
"""

from __future__ import annotations

import html
import warnings

import regex  # what open_clip uses; its \s is Unicode White_Space (stdlib re also matches \x1c-\x1f)

_WHITESPACE = regex.compile(r"\s+")
_warned = False

try:
    import ftfy
except ImportError:  # optional at run time; see the module docstring
    ftfy = None


def open_clip_clean(text: str) -> str:
    """``text`` as open_clip's tokenizer sees it before BPE (lower case, HTML entities decoded, one-space runs)."""
    if ftfy is not None:
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


def ftfy_missing_warning() -> None:
    """Warn once per process when ftfy is absent (the clean-up then skips ``ftfy.fix_text``)."""
    global _warned
    if ftfy is None and not _warned:
        _warned = True
        warnings.warn("ftfy is not installed: HPS prompts are cleaned without ftfy.fix_text (HTML entities, "
                      "whitespace and case are still handled as open_clip does); install it with `pip install ftfy`",
                      stacklevel=3)
