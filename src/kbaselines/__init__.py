"""K-Baselines."""
