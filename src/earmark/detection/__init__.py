"""Detect and count events in long recordings: windows slid over the audio are scored by any
trained model (:mod:`.scores`), the score tracks become events (:mod:`.events`), written as
tables other tools read (:mod:`.tables`), and compared with a reference (:mod:`.truth`).

Names load on first use, so ``earmark.detection.windows`` imports without the scoring code
(the predictor interface, :mod:`earmark.predict`, is built on the windows).
"""

from earmark._lazy import lazy_attributes

_NAMES = {
    "ScoreTrack": "scores",
    "score_file": "scores",
    "Windowing": "windows",
    "window_starts": "windows",
}
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
__all__ = list(_NAMES)
