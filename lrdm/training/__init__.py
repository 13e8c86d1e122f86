"""Training: the loop with EMA, accelerate, atomic checkpoints and resume."""
