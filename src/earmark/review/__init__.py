"""Reviewing a model's output and learning from it; active-learning suggestions, the
windows to review next: :mod:`earmark.review.suggest`."""
