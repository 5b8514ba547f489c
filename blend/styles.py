"""The figure style of every method, from its module in ``blend.methods`` (``Method.style``; legend
``Method.legend`` or its display name), on top of the ground floor's fixed and hashed styles (``dbcore.figures``)."""

from __future__ import annotations

from dbcore import figures
from dbcore.figures import Style


def method_style(key: str) -> Style | None:
    """The registered method ``key``'s own style, or None (not a method, or a method without one)."""
    from blend.methods import REGISTRY  # light: no torch

    m = REGISTRY.get(key)
    if m is None or m.style is None:
        return None
    return Style(*m.style, m.legend or m.display_name)


def style(key: str) -> Style:
    """The style of ``key``: a method's own (``method_style``), else ``dbcore.figures.style``'s."""
    return figures.style(key, method_style)


def forest(rows, path, title: str, xlabel: str, note: str = ""):
    """``dbcore.figures.forest`` with the methods' styles; a row without a key is drawn as the reference method
    (the one paired differences are taken against)."""
    from blend.methods import reference_method

    return figures.forest(rows, path, title, xlabel, note, style_of=lambda k: style(k or reference_method()))
