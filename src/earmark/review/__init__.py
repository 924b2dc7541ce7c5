"""Reviewing a model's output and learning from it: reviews in SQLite
(:mod:`earmark.review.store`), the windows reviews add to training
(:mod:`earmark.review.training`), annotation tables written from them
(:mod:`earmark.review.export`), the windows to review next (:mod:`earmark.review.suggest`,
active learning), the suggestion lists the server walks through
(:mod:`earmark.review.suggestions`), and the similarity index over a corpus's windows
(:mod:`earmark.review.index`)."""

from earmark._lazy import lazy_attributes

_NAMES = {
    "Review": "store",
    "ReviewStore": "store",
    "SearchIndex": "index",
    "build_index": "index",
    "open_index": "index",
}
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
__all__ = list(_NAMES)
