"""The shared core every package may import: clock, errors, settings, metrics, logging and
the clock-paced loop. It imports nothing of gridwatch above it."""
