"""Evaluation: the metric protocols and per-image evaluation of trained runs."""
