"""Kept for backward compatibility: the module moved to the ground floor, ``dbcore.logging`` (this name is the same module
object, so attributes set on either are seen by both)."""

import sys

from dbcore import logging as _moved

sys.modules[__name__] = _moved
