"""The words a notice uses for where an outage is: the place its customers know.

Customers know their ward or street, not a breaker id. A device's ``area`` says it; a device
without one takes the nearest area up the tree (a feeder's area covers what hangs below it),
then the nearest name that reads as words (a feeder's "Feeder 471"); a grid named only by
ids gives "", and the notice template says "your area" in the customer's language.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# One token of id characters with a digit in it ("Z01-S01-F01-BRK", "BRK7"): an id a
# system made, not a name a person gave. "Feeder 471" and "Downtown" are names.
_ID_LIKE = re.compile(r"^(?=[^0-9]*[0-9])[A-Za-z0-9_.:\-/]+$")


def looks_like_device_id(text: str) -> bool:
    return bool(_ID_LIKE.match(text.strip()))


def place_words(areas_up: Sequence[str | None], names_up: Sequence[str | None]) -> str:
    """The place for a device, from its own and its ancestors' areas and names (nearest
    first); "" when nothing on the path is fit to show a customer."""
    for area in areas_up:
        if area and area.strip():
            return area.strip()
    for name in names_up:
        if name and name.strip() and not looks_like_device_id(name):
            return name.strip()
    return ""
