"""Measure whether a model learned: held-out accuracy on built-in tasks, HTML reports."""
