"""Autograders for the deep-RL and VAE assignments; `python -m graders --help`."""
