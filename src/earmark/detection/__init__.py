"""Detect and count events in long recordings: windows slid over the audio are scored by any
trained model (:mod:`.scores`), the score tracks become events (:mod:`.events`), written as
tables other tools read (:mod:`.tables`), and compared with a reference (:mod:`.truth`)."""

from earmark.detection.scores import ScoreTrack, score_file
from earmark.detection.windows import Windowing, window_starts

__all__ = ["ScoreTrack", "Windowing", "score_file", "window_starts"]
