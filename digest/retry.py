"""The one retry policy: exponential backoff with equal jitter, capped.

Feeds (before an edition freezes), SMTP and SendGrid all wait this way between attempts, so a
burst of failures never turns into a burst of retries at the same moment.
"""

from __future__ import annotations

import random

CAP = 60.0


def backoff(attempt: int, first: float, *, cap: float = CAP) -> float:
    """Seconds to wait before retry ``attempt`` (0 = the first retry).

    The step doubles each attempt up to ``cap``; "equal jitter" waits between half the step and
    the whole of it, so retries spread out but never come back sooner than half the step.
    """
    step = min(cap, first * 2 ** max(attempt, 0))
    return step * random.uniform(0.5, 1.0)
