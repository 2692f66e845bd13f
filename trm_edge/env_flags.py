"""On/off switches read from the environment, all parsed one way.

A switch is on when its variable holds anything but an empty string, 0, false, no or off (any
case), so `TRM_EDGE_X=0` switches it off as users expect, not on because the variable is set.
"""

from __future__ import annotations

import os

OFF = ("", "0", "false", "no", "off")


def flag_is_set(name: str) -> bool:
    """Whether the switch `name` is on (see the module's rule)."""
    return os.environ.get(name, "").strip().lower() not in OFF
