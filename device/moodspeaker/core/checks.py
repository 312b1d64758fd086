"""Checks of settings that report every problem at once, so a config file lists all its mistakes, not the first."""

from __future__ import annotations

from collections.abc import Iterable


class InvalidSettings(ValueError):
    """One or more problems with a set of values; `problems` holds each message, the text joins them."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def raise_problems(problems: list[str]) -> None:
    """Raise InvalidSettings with every problem found, if there is any."""
    if problems:
        raise InvalidSettings(problems)
