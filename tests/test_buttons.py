"""Skip/like buttons and the LED through gpiozero's MockFactory: press, hold, decided on release, debounced."""

from __future__ import annotations

import queue

import pytest
from gpiozero.pins.mock import MockFactory

from moodspeaker.adapters.gpio_buttons import GpioButtons, GpioUnavailable
from moodspeaker.config import ButtonsConfig
from moodspeaker.core.domain import ButtonAction

CONFIG = ButtonsConfig(skip_pin=17, like_pin=27, led_pin=22, hold_s=1.0, debounce_s=0.05)
DECIDED_WITHIN = 1.0  # s of real time for the release timer (debounce_s) to deliver an action


class Clock:
    """Seconds the test sets by hand, so a 'hold' needs no real waiting."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig():
    factory = MockFactory()
    actions: queue.Queue[ButtonAction] = queue.Queue()
    clock = Clock()
    buttons = GpioButtons(CONFIG, actions.put, pin_factory=factory, clock=clock)
    yield factory, actions, clock, buttons
    buttons.close()
    factory.close()


def _pulse(factory: MockFactory, clock: Clock, pin: int, seconds: float) -> None:
    p = factory.pin(pin)
    p.drive_low()  # buttons pull up; pressed = pulled to ground
    clock.t += seconds
    p.drive_high()


def _drain(actions: queue.Queue[ButtonAction], settle: float = 0.2) -> list[ButtonAction]:
    got = []
    try:
        got.append(actions.get(timeout=DECIDED_WITHIN))
        while True:
            got.append(actions.get(timeout=settle))
    except queue.Empty:
        return got


def test_short_presses_skip_and_like(rig) -> None:
    factory, actions, clock, _ = rig
    _pulse(factory, clock, 17, 0.2)
    assert _drain(actions) == [ButtonAction.SKIP]
    _pulse(factory, clock, 27, 0.2)
    assert _drain(actions) == [ButtonAction.LIKE]


def test_holds_pause_and_toggle_privacy(rig) -> None:
    factory, actions, clock, _ = rig
    _pulse(factory, clock, 17, 1.5)
    assert _drain(actions) == [ButtonAction.PAUSE]
    _pulse(factory, clock, 27, 2.0)
    assert _drain(actions) == [ButtonAction.PRIVACY]


def test_press_vs_hold_is_decided_on_release_not_on_press(rig) -> None:
    factory, actions, clock, _ = rig
    pin = factory.pin(27)
    pin.drive_low()
    clock.t += 5.0  # held for a long time, still down
    _pulse(factory, clock, 17, 0.2)  # the other button's whole press is decided meanwhile ...
    assert _drain(actions) == [ButtonAction.SKIP]  # ... and it alone: nothing fired for the one still down
    pin.drive_high()
    assert _drain(actions) == [ButtonAction.PRIVACY]


def test_contact_bounce_is_one_press_and_glitches_are_none(rig) -> None:
    factory, actions, clock, _ = rig
    pin = factory.pin(17)
    # bouncy press: a 2 ms glitch, then a real 300 ms press, then release bounce of 2 ms on/off
    _pulse(factory, clock, 17, 0.002)
    clock.t += 0.002
    _pulse(factory, clock, 17, 0.3)
    pin.drive_low()  # bounce right after the release
    clock.t += 0.002
    pin.drive_high()
    assert _drain(actions) == [ButtonAction.SKIP]
    _pulse(factory, clock, 17, 0.01)  # a lone glitch shorter than debounce_s
    _pulse(factory, clock, 27, 0.3)  # a press after it: decided after the glitch would have been
    assert _drain(actions) == [ButtonAction.LIKE]


def test_a_bounce_in_the_middle_of_a_hold_does_not_split_it_into_press_and_hold(rig) -> None:
    factory, actions, clock, _ = rig
    pin = factory.pin(27)
    pin.drive_low()
    clock.t += 0.6
    pin.drive_high()  # contact lost for a moment...
    pin.drive_low()  # ...and back within debounce_s
    clock.t += 0.8
    pin.drive_high()
    assert _drain(actions) == [ButtonAction.PRIVACY]


def test_led_follows_set_led(rig) -> None:
    factory, _, _, buttons = rig
    buttons.set_led(True)
    assert factory.pin(22).state
    buttons.set_led(False)
    assert not factory.pin(22).state


def test_the_environment_pin_factory_is_used_when_none_is_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpiozero import Device

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setattr(Device, "pin_factory", None)
    buttons = GpioButtons(CONFIG, lambda action: None)
    try:
        assert type(Device.pin_factory).__name__ == "MockFactory"
    finally:
        buttons.close()
        Device.pin_factory.close()


def test_a_pin_in_use_gives_an_actionable_error(rig) -> None:
    factory = rig[0]
    with pytest.raises(GpioUnavailable, match=r"\[buttons\] enabled = false"):
        GpioButtons(CONFIG, lambda action: None, pin_factory=factory)  # pins 17/27/22 are taken by the rig


def test_no_gpio_is_one_line_with_every_pin_factory_tried_and_no_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from gpiozero import Device

    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)  # gpiozero looks for lgpio, RPi.GPIO, pigpio, native: none works here
    with warnings.catch_warnings(record=True) as seen, pytest.raises(GpioUnavailable) as error:
        warnings.simplefilter("always")
        GpioButtons(CONFIG, lambda action: None)
    assert not seen, [str(w.message) for w in seen]
    message = str(error.value)
    assert "\n" not in message and message.startswith("buttons and LED off")
    assert "Falling back from lgpio" in message and "[buttons] enabled = false" in message
