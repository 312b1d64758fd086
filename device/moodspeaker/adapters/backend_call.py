"""One time budget per backend command and the back-off between failed attempts, for MPD and Spotify alike.

A port call is one command: it gets BUDGET_S in all, however many library calls it makes (a call made inside a
command runs in that command's budget). Past it the backend counts as hung. A command that finds the backend away
(PlayerUnavailable, a hang) starts a back-off that doubles from `first_s` to `max_s`, or lasts the server's
Retry-After (RateLimited): until it is over every command fails at once with the failure's message, which says
when the backend is tried again (the same text each time: the player logs a repeated failure once a minute), and
nothing is asked of the backend. The back-off is never slept inside a budget (a back-off longer than the budget
would leave no time for the attempt, and the backend would never be tried again): the track watcher sleeps it out
with `wait_turn` before its next attempt, so a backend down for ten minutes is tried at the back-off's pace and is
back within one back-off period of returning. The limit is `asyncio.timeout`, not `asyncio.wait_for`: Python 3.11's
wait_for drops a cancel that lands in the loop turn its work finishes in (a reload or a stop then hung).
Work in a worker thread reads `remaining()` (the command's budget travels into `asyncio.to_thread` with the context)
so that no request outlives it. The first command to reach the backend after a failed one notes that it is back
(`back`): its watcher reports BackendReturned, since what it played may be lost (a restart, a dropped connection).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from moodspeaker.errors import MoodspeakerError, PlayerUnavailable

R = TypeVar("R")
BUDGET_S = 10.0  # the most one command may take: under half of the player unit's WatchdogSec (30 s)

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("backend_deadline", default=None)


class RateLimited(PlayerUnavailable):
    """The backend asked not to be asked again for `retry_after_s` (HTTP 429's Retry-After)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def remaining() -> float:
    """Seconds left in the running command's budget (monotonic clock; inf outside a command)."""
    deadline = _deadline.get()
    return math.inf if deadline is None else deadline - time.monotonic()


def command(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """A port method run as one command by its backend's `calls` (a BackendCalls)."""
    @functools.wraps(method)
    async def run(self: Any, *args: Any) -> R:
        return await self.calls(method, self, *args)
    return run


class BackendCalls:
    """Runs a backend's commands within BUDGET_S each and keeps its back-off.

    `before` starts every command (MPD connects); `translate` turns a library's exception into one of ours (None: not
    the library's, let it through); `on_hung` runs when a command used up its budget (MPD drops the connection).
    """

    def __init__(self, name: str, *, first_s: float, max_s: float, budget_s: float = BUDGET_S,
                 before: Callable[[], Awaitable[None]] | None = None,
                 translate: Callable[[Exception], MoodspeakerError | None] = lambda exc: None,
                 on_hung: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.name, self.first_s, self.max_s, self.budget_s = name, first_s, max_s, budget_s
        self._before, self._translate, self._on_hung = before, translate, on_hung
        self._clock, self._sleep = clock, sleep
        self.backoff_s = 0.0  # the last back-off (doubles while attempts fail)
        self.retry_at = -math.inf  # no attempt before then (self._clock's time)
        self._refusal = ""  # the failure that started the back-off, and when it ends
        self._failed = False  # the last attempt failed: the next to reach the backend sets `back`
        self.back = False  # the backend was reached again after a failure; the watcher reports it and clears it

    async def __call__(self, work: Callable[..., Awaitable[R]], *args: Any) -> R:
        """`work(*args)` as one command, or within the command it is part of."""
        if _deadline.get() is not None:
            return await work(*args)
        if self.retry_at > self._clock():
            raise PlayerUnavailable(self._refusal)
        token = _deadline.set(time.monotonic() + self.budget_s)
        budget = asyncio.timeout(self.budget_s)
        try:
            async with budget:
                if self._before is not None:
                    await self._before()
                self.back, self._failed = self.back or self._failed, False
                result = await work(*args)
        except Exception as exc:
            if budget.expired():
                self._on_hung()
                error: MoodspeakerError | None = PlayerUnavailable(
                    f"{self.name} did not answer within {self.budget_s:g} s; it may be hung")
            else:
                error = exc if isinstance(exc, MoodspeakerError) else self._translate(exc)
            if error is None:
                raise
            raise self._back_off(error) if isinstance(error, PlayerUnavailable) else error from None
        finally:
            _deadline.reset(token)
        self.backoff_s, self.retry_at = 0.0, -math.inf
        return result

    def _back_off(self, error: PlayerUnavailable) -> PlayerUnavailable:
        self._failed = True
        if isinstance(error, RateLimited):
            wait = error.retry_after_s
        else:
            wait = self.backoff_s = min(max(2 * self.backoff_s, self.first_s), self.max_s)
        self.retry_at, self._refusal = self._clock() + wait, f"{error}; trying again in {wait:.1f} s"
        return PlayerUnavailable(self._refusal)

    async def wait_turn(self) -> None:
        """Sleep out the back-off (outside any budget): the watcher's next attempt comes at the back-off's pace."""
        await self._sleep(max(0.0, self.retry_at - self._clock()))
