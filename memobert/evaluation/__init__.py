"""Metrics, results tables and plots (numpy, scikit-learn and matplotlib only)."""
