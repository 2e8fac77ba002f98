"""The one retry policy: how long to wait before trying again, and the waiting.

Between attempts: exponential backoff with equal jitter, capped, so that a burst of failures
never turns into a burst of retries at the same moment. When the server says when to come
back (``Retry-After``, in seconds or as an HTTP date; SendGrid's ``X-RateLimit-Reset``, in unix
time), that moment instead, within a cap of its own. Feeds (before an edition freezes), SMTP and
SendGrid all wait this way. The clock, the sleep and the jitter are injected, so that tests see
exact waits and a five-minute outage passes in no time.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

CAP = 60.0
# A server may ask for a longer wait than our own backoff would take, but not for just any wait.
SERVER_CAP = 120.0
# 2**32 first delays is past any cap: a larger exponent only risks overflowing the float.
_MAX_DOUBLINGS = 32


class Headers(Protocol):
    """A response's headers: a dict, or http.client's HTTPMessage (which is no Mapping)."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The waits between attempts; how many attempts there are is the caller's to say."""

    first: float
    """Seconds before the first retry; the step doubles with each retry, up to ``cap``."""
    cap: float = CAP
    server_cap: float = SERVER_CAP
    clock: Callable[[], float] = time.time
    """Unix time: a server's wait is a moment (an HTTP date, a reset time)."""
    sleep: Callable[[float], object] = time.sleep
    jitter: Callable[[float, float], float] = random.uniform

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (0 = the first retry).

        "Equal jitter": between half the step and the whole of it, so retries spread out but
        never come back sooner than half the step.
        """
        step = min(self.cap, self.first * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS))
        return step * self.jitter(0.5, 1.0)

    def server_wait(self, headers: Headers | None, attempt: int) -> float:
        """The wait the server's answer asks for, else the backoff of ``attempt``.

        ``Retry-After`` first (the standard), then ``X-RateLimit-Reset``. A moment already past
        means at once; a header that says nothing readable is as good as none.
        """
        until = _asked_until(headers or {}, self.clock)
        if until is None:
            return self.backoff(attempt)
        return min(max(until - self.clock(), 0.0), self.server_cap)


def _asked_until(headers: Headers, clock: Callable[[], float]) -> float | None:
    """The unix time the headers say to come back at, or None."""
    retry_after = _header(headers, "Retry-After")
    if retry_after is not None:
        if retry_after.isdigit():  # delay-seconds: digits only, so never negative
            return clock() + int(retry_after)
        try:
            moment = parsedate_to_datetime(retry_after)
        except (TypeError, ValueError, IndexError):
            pass  # a malformed date: perhaps the reset header says more
        else:
            # HTTP dates are GMT; "-0000" (no zone said) parses without one.
            return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    reset = _header(headers, "X-RateLimit-Reset")
    try:
        until = float(reset) if reset is not None else None
    except ValueError:
        return None
    return until if until is not None and math.isfinite(until) else None


def _header(headers: Headers, name: str) -> str | None:
    # Header names are case-insensitive; http.client's HTTPMessage knows, a plain dict does not.
    wanted = name.casefold()
    value = next((value for key, value in headers.items() if key.casefold() == wanted), None)
    return value.strip() if isinstance(value, str) else None
