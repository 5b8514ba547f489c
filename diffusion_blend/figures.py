"""Kept for backward compatibility: the figure machinery moved to the ground floor (``dbcore.figures``) and the
methods' styles to ``blend.styles``; this module is the two together under the old name."""

from blend import styles as _styles
from dbcore import figures as _ground
from dbcore.figures import *  # noqa: F403
from dbcore.figures import _overlaps  # noqa: F401 - used by tests of the label placement

style = _styles.style  # the methods' own styles first (after the star import, which brings the ground floor's)
forest = _styles.forest

__all__ = list(_ground.__all__)
