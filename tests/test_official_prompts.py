"""The official prompt sets (db:...) are written exactly: each matches the sha256 of the official list.

Hashes: sha256 of the official JSON list's prompts joined by "\\n" (UTF-8), taken from bluewoods127/DB-2025
``datasets/*.json`` (commit fac2d35).
"""

from __future__ import annotations

import hashlib

import pytest

from dbcore.official_prompts import COLORS, OBJECTS, names, official_prompts
from dbcore.prompts import load_prompts

OFFICIAL = {  # name: (number of prompts, sha256 of "\n".join(prompts)), from the official files
    "db:train": (25, "1efd92e7b5226ba5283bd6acea14ae1896a88c8c9fa7d818b9ed4d3b4fd696ed"),
    "db:test": (25, "757293a30ecd3d2cc78e92d524ccd51cbc46f49ae5895313a3f52513aebf5453"),
    "db:short_color_test": (25, "45f1627c05d475521b7b842c2a052b9dd71b1cd63cb42e8f2413225d3076294a"),
    "db:short_drawbench_1k": (1000, "a453c49761cde13e7e06602362ca8f3ca58b4bed51766f199abb46b3855ad725"),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_each_set_is_the_official_list(name):
    prompts = load_prompts(name)
    n, digest = OFFICIAL[name]
    assert len(prompts) == n == len(set(prompts))
    assert hashlib.sha256("\n".join(prompts).encode()).hexdigest() == digest


def test_every_official_set_is_tested_and_uses_the_official_words():
    assert sorted(names()) == sorted(OFFICIAL)
    assert len(COLORS) == 10 and len(OBJECTS) == 30
    first = official_prompts("db:short_drawbench_1k")[:3]
    assert first == ["A blue colored bear.", "A white tree and a green bottle.", "A brown cup and a red book."]
    assert "An orange colored sandwich." in official_prompts("db:train")


def test_unknown_set_names_the_known_ones():
    with pytest.raises(ValueError, match="db:train"):
        load_prompts("db:nope")
