"""Reviewing what a model finds, and finding more like it: the similarity index over a
corpus's windows (:mod:`earmark.review.index`)."""

from earmark._lazy import lazy_attributes

_NAMES = {"SearchIndex": "index", "build_index": "index", "open_index": "index"}
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
__all__ = list(_NAMES)
