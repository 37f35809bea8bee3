"""The option validators the plugins share, under the names this library first gave them.

They are :mod:`lightmem_hookspecs.options` (the one vocabulary the core and every plugin
use); import them from there. These names are kept so that code written against this module
keeps working.
"""

from __future__ import annotations

from lightmem_hookspecs.options import at_least, non_negative, not_blank, positive, unit_interval

__all__ = [
    "at_least_one",
    "b_in_unit_interval",
    "k1_positive",
    "non_negative",
    "path_not_empty",
    "positive",
    "unit_interval",
]

at_least_one = at_least(1)
k1_positive = positive
b_in_unit_interval = unit_interval
path_not_empty = not_blank
