"""Review flags: which results need a look (a copy of the source, a blank frame, another picture,
a squeezed aspect, a duplicate), found in the background when results are stored."""

from .flagger import Flagger
from .judge import FLAGS, Twins, judge, requested_aspect
from .look import Look, Mark, look_at

__all__ = ["Flagger", "FLAGS", "judge", "Look", "look_at", "Mark", "requested_aspect", "Twins"]
