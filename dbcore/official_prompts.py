"""The official prompt sets of the Diffusion Blend paper, by name: ``db:train``, ``db:test``, ``db:short_color_test``,
``db:short_drawbench_1k``.

The official repository (bluewoods127/DB-2025, ``datasets/``) builds its colour prompts from 10 colours and
30 objects with two templates, "A {c} colored {o}." and "A {c1} {o1} and a {c2} {o2}." (``GPT_prompt.py``;
docs/method.md §7). Its 1k file is 1,000 draws from an unseeded random generator kept in set order, so no
generator can reproduce it; each set is therefore recorded here as facts: the two word lists (in the
official order) and, per prompt, the indices of its words. This module writes the sentences itself and
``tests/test_official_prompts.py`` checks every set against the sha256 of the official list.

Encoding of one prompt: two characters ``c o`` (colour digit, object in base 31) for "A {c} colored {o}.",
four characters ``c1 o1 c2 o2`` for "A {c1} {o1} and a {c2} {o2}.", and a trailing ``*`` for the one
official variant "A {c1} {o1} and a {c2} colored {o2}." (in ``short_color_test.json``).

``db:train`` is the DrawBench colour subset the paper trains on (25 prompts); ``db:test`` its 25 held-out
colour prompts (``db:short_color_test`` is the same 25 in another order, one worded differently);
``db:short_drawbench_1k`` the 1,000-prompt Short-DrawBench test set of Tables 1 and 5.
"""

from __future__ import annotations

COLORS = ("red", "white", "black", "purple", "pink", "yellow", "green", "blue", "orange", "brown")
OBJECTS = ("car", "dog", "apple", "banana", "cup", "sandwich", "giraffe", "backpack", "sheep", "bird", "bear",
           "cell phone", "book", "vase", "hat", "clock", "chair", "table", "cat", "shoe", "laptop", "bottle", "pen",
           "notebook", "pillow", "blanket", "mug", "camera", "tree", "bench")
_DIGITS = "0123456789abcdefghijklmnopqrstu"
PREFIX = "db:"

_SETS = {
    "train": (  # datasets/train_prompts.json
        "00 20 40 21 01 71 63 03 23 15 25 85 46 56 96 0018 799a 6227 647b 5c0d 1008 997a 2267 746b 0c5d "
    ),
    "test": (  # datasets/test_prompts.json
        "11 31 43 22 72 32 35 66 7048 0237 4058 245b 7006 5938 406a 7c85 2g0h 51 62 77 44 0079 6053 4d02 3e2f "
    ),
    "short_color_test": (  # datasets/short_color_test.json
        "11 31 51 62 22 72 32 43 44 35 66 77 7048 0237 4058 245b 7006 5938 406a 3e2f 2g0h 0079 6053 4d02 7c85* "
    ),
    "short_drawbench_1k": (  # datasets/1k_test_prompt.json
        "7a 1s6l 940c 751k 0n35 2j 3p7j 422f 75 5i9d 2k0e 966h 713b 71 4q79 9d30 9a70 1i 8217 8c3a 2i 1a3m 7c2k 8n6b "
        "9d3c 0n6b 340b 3t8c 958o 2q 4m6t 3i 9m 6d3s 9586 9t67 2g0d 4d3n 279e 3h2l 6h2c 2c4h 9d 357c 7l45 1s9n 4l6i "
        "3o78 1c2i 5i0d 0a 1m83 7s46 4n6o 1953 23 153s 6r 9l76 017h 4f1r 4684 2e1p 421a 844q 916j 9i7s 9h37 7o68 854j "
        "5c 40 6n 3o9d 8329 05 1g6m 9t03 9b2t 1n 9j25 0788 6p5s 3d7r 4k 913k 407j 0588 5m62 2b73 7r9d 51 0h8o 324s 3e29 "
        "1g 3m99 2f 705p 8m4h 9h 3623 0174 3p 6n38 9m1q 95 1a 976e 863s 8t00 913l 0552 7n8p 0k8f 288i 5618 1m 5d 450l "
        "2l3k 7f 7k 527o 714r 0d 8c4g 7p8j 9q8g 0o5g 1a39 2d6t 3f 830a 79 2s5q 199t 9m7e 147i 048c 3n 3g 8g 9r2h 240t "
        "9b19 6t7q 0q 1r20 17 4194 996f 82 1r2k 55 9042 685n 2g 9n 9r1g 055b 937k 968q 409b 8f0c 7n94 786c 6j33 4c0i "
        "0s8t 8s7p 9a 0332 14 6k40 9h56 9e1j 06 7m3k 5780 0t1j 0r24 9p69 2o 8o46 512i 5q 37 31 7l5s 7998 7o16 53 15 "
        "3n5a 5e2f 580t 8l1e 7s5l 3b02 7l 1c2a 5e 0f 1m98 7j58 4i 720d 156s 2290 591k 48 955e 520m 625l 62 93 9b 0a9j "
        "425e 1h57 6i2e 068n 091e 6g2t 3n7o 0l 6b2n 3h54 346n 4l5g 8b6q 1i82 2q84 0f8r 862q 86 061t 7h09 8q3h 6s 7p0a "
        "73 4r2a 6o2d 0489 2r 9e7k 4o 2j92 685q 5q0s 42 7g68 43 6s0l 99 0e9h 6h9k 0j 9j17 125h 9j 52 7d6o 6l0h 2h 0a4g "
        "6o5t 156q 6q1h 2100 7s3j 8d6i 754f 520a 0b13 739p 9i7q 6h1q 0n5m 47 3582 6g7c 5c0h 4p87 87 965f 56 640k 4f73 "
        "6r3h 5368 0o41 0t9j 6614 9c65 296q 2d 2q9g 0b3m 753j 5982 5n7i 9d0t 201o 6b 3l24 0b8c 63 8t3b 44 1e 2756 07 "
        "9p4s 486r 5f 2f82 92 2r97 638s 6j 0k 0e 9p3j 0c 497e 7l8k 45 3q 0l69 9g4k 7q38 712t 02 3175 8a 0g 9q8e 2d4e "
        "309q 8g38 8o5g 0c9a 0n41 4r87 19 5493 681d 2a31 1e06 5163 00 0f25 9p3b 2f8r 10 81 619l 6m7o 36 0m 3m 4n1c 1k "
        "3879 7o 776k 570d 8e 1t9h 3p2m 3850 4r9o 3a 9f 8259 85 2q7k 9385 1q 8r71 760g 8k60 6911 3c 6q 0l7b 1n5a 4e 58 "
        "0954 7f2b 1b 7p 507k 859f 136i 1589 5t43 28 2q6k 6i 2c 315i 1m6l 6t 6i3b 7b 2m 7n9t 7t6i 2t3n 9j0c 5i65 6q44 "
        "0j8r 6m1g 8c12 8f5t 0i 8d3g 375b 7q8f 028s 7662 206e 4518 3h0c 4e86 46 7e2a 1c 3h63 9i36 577a 6s2l 8n97 0a38 "
        "3501 69 1m4t 0l3i 2h04 7e 1c5g 7g 7j6m 4t 1r47 26 9t1m 6208 7l40 7i56 8b4i 7q3d 9i7j 9k67 235e 6b1k 859t 6g46 "
        "59 6253 7q9b 2r3b 7p9o 2i1q 882h 03 0b7a 023r 6241 2m7n 2c78 623l 4n 4b 657j 3l 1b4c 250q 6f 6a9b 1p5s 7q12 "
        "6b0o 418h 7f1q 1269 891r 13 5o 2r80 2e62 8c 5e6f 83 738j 643o 6a2c 6a 8j20 8d 4h 3k 3o5i 8q2o 3c00 935l 550j "
        "98 6l 4673 1n9m 0l4n 0i38 5l8t 236i 0h 487d 0o 2169 7k6h 6p 3h57 9e7m 2782 3q65 2s 1p8s 66 32 2p8o 3g74 9r 0b "
        "7r0k 0i2l 8h 6j53 8j7s 9f8h 7162 367a 1t 6k2d 9q 3t7o 3647 173e 3e4m 1j 182i 7p87 1e0q 3e65 4e7c 951g 1e31 "
        "751h 0e12 167o 9k82 1r7c 5a7k 835h 159a 0h6n 2e5o 1f 9t 7a01 7a88 4r31 1c52 874e 156c 1h 2c8k 375q 3k0l 7g15 "
        "7k8l 6m 1d 24 863d 891e 583g 0l7j 5t1e 0731 1s83 326l 7t1d 4g 1k30 1i3o 4q 4d80 04 1926 9q3f 0s 873k 9r4t 351s "
        "4j27 5q90 6m80 5g1j 2477 771o 0h47 318j 9h2b 4c0p 871e 4h3q 4p07 12 1s 1p26 4k7j 5b73 8n 1b92 4i3b 088l 3p0l "
        "6620 057g 6l0o 1o 571s 2k1o 359l 9p 5h65 148t 8s7h 08 2b63 7d 012a 3m9l 0d17 885h 9q4n 0p4q 592q 8r70 33 7713 "
        "7b3p 6k4q 0j65 7d53 7k3r 4h0c 4c 5q1t 9d38 8t12 481a 7m06 8b59 3875 1b6c 9t2o 5i 6l4i 4l8j 559k 4d7p 9q5h 6o "
        "9b5n 4882 2492 6198 25 7g3l 2a 1l68 3t56 8f5i 7s36 9e17 7m84 29 0t8g 8t62 6g 21 973p 6423 3178 1r7m 213p 064j "
        "3d5r 0e6h 3j 5s1o 9o1s 89 4e5j 1973 085c 0t 7i 6k3h 2e46 2p00 8m6t 970e 9g2p 0f5g 578m 68 946o 3r1q 6t23 0o6h "
        "2750 4189 8e09 1g4f 1r27 5m 0d70 927k 20 8i1l 88 990m 5a 785i 945b 9f46 618e 168b 3o 2j95 5h8g 866c 7t 9k0s "
        "0j27 5s1j 859s 718b 5k26 0l4k 6g3m 9s5p 9c2j 1g8i 289h 7s 2e 54 4t32 3h 6o80 066m 5t 089k 16 5p 9h1c 7m 684m "
        "6t75 8k 2f3r 5q70 8f5h 5k 4371 8245 0d90 6o9g 8i 74 1907 1l29 9o 1m8b 97 8h96 2d1f 9g5s 7r 8p9m 9l5k 3n0d 8j98 "
        "3i27 130k 7f6s 0723 7i26 7e6p 907i 3o1n 7n1m 7j 1d4o 2c9f 8p 80 0o89 4280 5a43 9p31 9a5m 0t57 1q4k 6k 9m3c "
        "801k 0n10 8b 210p 5j 1a25 082i 9l 5p35 2b8h 9644 2h3t 4o01 7s16 6g2h 9327 5539 5i0h 9e 6m2k 65 5c9s 0m7o 029t "
        "1b6g 174h 3b 2e33 2649 2b1h 0j72 2p 0n9k 72 3m89 6q74 2i5p 2731 8a98 9c 4d9g 2k 6e 619p 96 615p 7f35 0t5l 5b2d "
        "1k0p 35 5i29 1s5l 0r 1o0s 5m0f 4e7g 3c7i 5g8f 0o2a 3e18 4i0m 84 108n 8q 6t8i 3m5e 4d0n 2j4d 703q 9s 708e 3k72 "
        "5j65 4t14 6h2p 7n 9d34 1c85 0k5q 478r 9f2o 4a 465a 5n 482t 4p32 5l6m 2d00 9l5h 9672 916p 0t2o 5r1o 8214 3e4s "
        "2s4b 8l63 90 5g 18 0544 7165 9935 27 1b2l 945t 920t 4m8l 4p 9p78 4j 117n 8s79 6q7b 9i 8g4h 0p 2s03 9t7h 862a "
        "225m 057k 4e60 5s 9g 3m65 8t1m 1l9h 3c0f 4d 7g0e 0h55 2b 64 6f7c 8o5h 9435 662s 614i 70 3t 3t2e 77 7a1t 3t79 "
        "9s5t 3e 522k 1685 91 6405 5022 6a7b 742h 6k02 8p3k 2n 6d3k 340g 5b 100m 4s 94 8e65 7l9m 4m3l 9s0e 7c 4r6t 6h "
        "1m9g 9i5q 8i0m 8f "
    ),}


def _article(word: str, capital: bool) -> str:
    a = "an" if word[0] in "aeiou" else "a"
    return a.capitalize() if capital else a


def decode(token: str) -> str:
    """One encoded prompt → its sentence (see the module docstring)."""
    c1, o1 = COLORS[int(token[0])], OBJECTS[_DIGITS.index(token[1])]
    if len(token) == 2:
        return f"{_article(c1, True)} {c1} colored {o1}."
    c2, o2 = COLORS[int(token[2])], OBJECTS[_DIGITS.index(token[3])]
    colored = " colored" if token.endswith("*") else ""
    return f"{_article(c1, True)} {c1} {o1} and {_article(c2, False)} {c2}{colored} {o2}."


def names() -> list[str]:
    return [PREFIX + k for k in _SETS]


def official_prompts(name: str) -> list[str]:
    """The prompts of an official set, e.g. ``official_prompts('db:test')`` (the ``db:`` prefix is optional)."""
    key = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if key not in _SETS:
        raise ValueError(f"unknown official prompt set {name!r}; available: {', '.join(names())}")
    return [decode(t) for t in _SETS[key].split()]
