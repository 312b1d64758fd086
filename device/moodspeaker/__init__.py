"""moodspeaker: an emotion-aware smart speaker for the Raspberry Pi."""

__version__ = "0.1.0"
