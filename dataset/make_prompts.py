"""Write the colour-prompt files of this project (deterministic).

The paper evaluates on colour prompts: the 25 DrawBench colour prompts for training and a
"Short-DrawBench" set of 1,000 prompts built from 10 colours × 30 objects with the templates
"A {c} colored {o}." and "A {c1} {o1} and a {c2} {o2}." (docs/method.md §7). The word lists below are
this project's own; the files are written as JSON lists of strings (the format ``run_DB.py`` and the
trainer read; DPOK's ``{prompt: {...}}`` dict format is read too).

    python dataset/make_prompts.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
OBJECTS = ["apple", "backpack", "banana", "bench", "bicycle", "bird", "boat", "book", "bowl", "car", "cat", "chair",
           "clock", "cup", "dog", "elephant", "guitar", "hat", "horse", "kite", "lamp", "laptop", "motorcycle",
           "pizza", "rabbit", "sheep", "suitcase", "teddy bear", "train", "umbrella"]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def single(c: str, o: str) -> str:
    return f"{article(c).capitalize()} {c} colored {o}."


def pair(c1: str, o1: str, c2: str, o2: str) -> str:
    return f"{article(c1).capitalize()} {c1} {o1} and {article(c2)} {c2} {o2}."


def build(seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    singles = [single(c, o) for c in COLORS for o in OBJECTS]  # 300
    pairs = set()
    while len(pairs) < 700:
        c1, c2 = rng.sample(COLORS, 2)
        o1, o2 = rng.sample(OBJECTS, 2)
        pairs.add(pair(c1, o1, c2, o2))
    short_1k = singles + sorted(pairs)
    rng.shuffle(short_1k)
    pool = singles + sorted(pairs)
    rng.shuffle(pool)
    train = pool[:25]
    test = [p for p in pool[25:] if p not in train][:25]
    return {"train_prompts.json": train, "test_prompts.json": test, "short_drawbench_1k.json": short_1k}


def main() -> None:
    out = Path(__file__).resolve().parent
    for name, prompts in build().items():
        (out / name).write_text(json.dumps(prompts, indent=1) + "\n")
        print(f"wrote {len(prompts)} prompts to {out / name}")


if __name__ == "__main__":
    main()
