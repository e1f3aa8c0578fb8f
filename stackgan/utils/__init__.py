"""Small shared helpers: atomic files and checkpoints, RNG state, devices, run logs, pictures."""
