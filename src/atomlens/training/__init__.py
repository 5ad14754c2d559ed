"""Training: the loop, checkpoints, metrics, multi-process set-up."""
