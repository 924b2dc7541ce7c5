"""Reviewing a model's output and learning from it: reviews in SQLite
(:mod:`earmark.review.store`), the windows reviews add to training
(:mod:`earmark.review.training`), annotation tables written from them
(:mod:`earmark.review.export`), the windows to review next (:mod:`earmark.review.suggest`,
active learning) and the suggestion lists the server walks through
(:mod:`earmark.review.suggestions`)."""

from earmark.review.store import Review, ReviewStore

__all__ = ["Review", "ReviewStore"]
