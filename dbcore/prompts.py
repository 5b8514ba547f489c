"""Prompt files in the two formats in use.

* a JSON list of strings (the original project's ``dataset/*.json``);
* DPOK's dict ``{prompt: {"category": ...}, ...}`` (``data_meta.json``), read in file order;
* a plain-text file, one prompt per line (``.txt``);
* ``db:NAME``: an official set of the paper (``dbcore.official_prompts``), e.g. ``db:test``.
"""

from __future__ import annotations

import json
from pathlib import Path


class PromptFileError(ValueError):
    pass


def load_prompts(path: str | Path) -> list[str]:
    """The prompts of ``path``; raises :class:`PromptFileError` naming the problem and the accepted formats."""
    if str(path).startswith("db:"):  # the paper's official sets by name (dbcore.official_prompts)
        from dbcore.official_prompts import official_prompts

        return official_prompts(str(path))
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"prompt file not found: {path} (pass --prompt_file with a JSON list of strings "
                                f"or a DPOK {{prompt: {{...}}}} dict)")
    if path.is_dir():
        raise PromptFileError(f"--prompt_file {path} is a directory; pass a prompt file (.json or .txt) in it")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is not text
    except UnicodeDecodeError as exc:
        raise PromptFileError(f"prompt file {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
                              f"UTF-8") from None
    if path.suffix == ".txt":
        prompts = [line.strip().lstrip("\ufeff") for line in text.splitlines() if line.strip()]
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"{path} is not valid JSON ({exc}); expected a JSON list of prompt strings or a "
                                  f"DPOK dict {{prompt: {{\"category\": ...}}}}") from exc
        if isinstance(data, list):
            bad = [p for p in data if not isinstance(p, str)]
            if bad:
                raise PromptFileError(f"{path}: a prompt list must hold strings only, found {type(bad[0]).__name__} "
                                      f"{bad[0]!r}")
            prompts = [p.strip() for p in data]
        elif isinstance(data, dict):
            prompts = [str(k).strip() for k in data]
        else:
            raise PromptFileError(f"{path} holds a JSON {type(data).__name__}; expected a list of prompt strings or "
                                  f"a DPOK dict {{prompt: {{...}}}}")
        blank = [i for i, p in enumerate(prompts) if not p]
        if blank:
            raise PromptFileError(f"{path}: prompt #{blank[0]} is blank ({len(blank)} blank in all); remove the "
                                  f"empty strings")
    prompts = [p for p in prompts if p]
    if not prompts:
        raise PromptFileError(f"{path} contains no prompts")
    return prompts
