"""Reviews of a model's output and what they feed: active-learning suggestions
(:mod:`earmark.review.suggest`: which windows to review next)."""

from earmark._lazy import lazy_attributes

# ``suggest`` (the function) is not lazy here: its name is its module's
_NAMES = {
    "SuggestSettings": "suggest",
    "Suggestions": "suggest",
    "read_suggestions": "suggest",
    "write_suggestions": "suggest",
}
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
__all__ = list(_NAMES)
