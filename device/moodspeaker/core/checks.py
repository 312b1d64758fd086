"""Checks of settings that report every problem at once, so a config file lists all its mistakes, not the first."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class InvalidSettings(ValueError):
    """One or more problems with a set of values; `problems` holds each message, the text joins them."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def raise_problems(problems: list[str]) -> None:
    """Raise InvalidSettings with every problem found, if there is any."""
    if problems:
        raise InvalidSettings(problems)


def finite_number(x: Any) -> bool:
    """A JSON or TOML number that is not a bool, NaN or infinite, and fits a float (a 400-digit integer does not:
    `math.isfinite` raises OverflowError on it)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False
