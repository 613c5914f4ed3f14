"""The VAE assignment: grader (trusted) and adapter (runs in the worker)."""
