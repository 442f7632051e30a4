"""Headless rendering of a motion stream or bag to PNG/MP4 (``render``)."""
