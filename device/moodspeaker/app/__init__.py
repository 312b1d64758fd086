"""Wiring (config -> adapters) and the daemons' one lifecycle: vision, player, and both in one process (`run`)."""
