"""Training: the loop, EMA, checkpoints, distributed set-up."""
