"""The skip and like buttons and the status LED, on gpiozero.

Skip: press = next track (and negative feedback), hold = pause/resume. Like: press = like, hold = privacy
mode. Press vs hold is decided on release from how long the button was down; gpiozero's when_pressed fires
before anyone can know, and when_held would fire from a background thread mid-press.

Debounce is done here, on both edges, because gpiozero's bounce_time is not honoured by every pin factory
(MockFactory ignores it): a pulse shorter than `debounce_s` is noise, and a release followed within
`debounce_s` by a new press was a bounce, so the press goes on. The decision therefore comes `debounce_s`
after the release, from a timer thread; `on_action` must be thread-safe (PlayerService.submit_action is).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from moodspeaker.config import ButtonsConfig
from moodspeaker.core.domain import ButtonAction
from moodspeaker.errors import SetupError

log = logging.getLogger(__name__)


class GpioUnavailable(SetupError):
    """No GPIO on this machine (or no permission); the message says what to do."""


class _PressOrHold:
    """Turns one button's raw edges into a press or a hold, decided on (debounced) release."""

    def __init__(self, button: Any, on_press: Callable[[], None], on_hold: Callable[[], None], hold_s: float,
                 debounce_s: float, clock: Callable[[], float]) -> None:
        self._on_press, self._on_hold = on_press, on_hold
        self._hold_s, self._debounce_s, self._clock = hold_s, debounce_s, clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._release_timer: threading.Timer | None = None
        self._generation = 0  # bumped when a bounce cancels a pending decision
        button.when_pressed = self._pressed
        button.when_released = self._released

    def _pressed(self) -> None:
        with self._lock:
            if self._release_timer is not None:  # pressed again within debounce_s of a release: a bounce
                self._release_timer.cancel()
                self._release_timer = None
                self._generation += 1
                return
            self._down_since = self._clock()

    def _released(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            down_for = self._clock() - self._down_since
            if down_for < self._debounce_s:  # a glitch, not a press
                self._down_since = None
                return
            timer = threading.Timer(self._debounce_s, self._decide, args=(self._generation, down_for))
            timer.daemon = True
            self._release_timer = timer
            timer.start()

    def _decide(self, generation: int, down_for: float) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._release_timer, self._down_since = None, None
        (self._on_hold if down_for >= self._hold_s else self._on_press)()

    def cancel(self) -> None:
        with self._lock:
            if self._release_timer is not None:
                self._release_timer.cancel()
                self._release_timer = None


class GpioButtons:
    """Skip and like buttons (to ground, internal pull-ups) and the status LED, with pins from [buttons]."""

    def __init__(self, config: ButtonsConfig, on_action: Callable[[ButtonAction], None], pin_factory: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # gpiozero tries its pin factories in turn and warns once per factory it falls back from; those
        # warnings are caught here and folded into one line (the error below, or a debug line on success).
        with warnings.catch_warnings(record=True) as fallbacks:
            warnings.simplefilter("always")
            try:
                from gpiozero import LED, Button
                from gpiozero.exc import GPIOZeroError

                self._skip = Button(config.skip_pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
                self._like = Button(config.like_pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
                self._led = LED(config.led_pin, pin_factory=pin_factory) if config.led_pin != -1 else None
                failure = None
            except (GPIOZeroError, OSError, ImportError) as exc:
                self._close_devices()
                failure = exc
        tried = "; ".join(str(w.message) for w in fallbacks if type(w.message).__name__ == "PinFactoryFallback")
        if failure is not None:
            raise GpioUnavailable(f"buttons and LED off: cannot use GPIO pins {config.skip_pin}/{config.like_pin}/"
                                  f"{config.led_pin} ({failure}{': ' + tried if tried else ''}); on a Pi add this user "
                                  "to the gpio group, elsewhere set [buttons] enabled = false") from None
        if tried:
            log.debug("gpiozero: %s", tried)

        def act(action: ButtonAction) -> Callable[[], None]:
            def fire() -> None:
                log.info("button: %s", action)
                on_action(action)
            return fire

        self._deciders = [
            _PressOrHold(self._skip, act(ButtonAction.SKIP), act(ButtonAction.PAUSE), config.hold_s, config.debounce_s, clock),
            _PressOrHold(self._like, act(ButtonAction.LIKE), act(ButtonAction.PRIVACY), config.hold_s, config.debounce_s,
                         clock),
        ]

    def set_led(self, on: bool) -> None:
        if self._led is not None:
            self._led.value = on

    def _close_devices(self) -> None:
        for name in ("_skip", "_like", "_led"):
            device = getattr(self, name, None)
            if device is not None:
                device.close()

    def close(self) -> None:
        for decider in self._deciders:
            decider.cancel()
        self._close_devices()
