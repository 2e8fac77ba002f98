"""The one retry policy, on a fake clock: the exact wait before each retry, and the server's own."""

from __future__ import annotations

import email.utils

import pytest

from digest.retry import CAP, SERVER_CAP, RetryPolicy

NOW = 1_795_000_000.0  # a fixed unix time


def clock() -> float:
    return NOW


def whole_step(low: float, high: float) -> float:
    """The jitter at its top: the wait is the whole step."""
    return high


def half_step(low: float, high: float) -> float:
    return low


def policy(first: float = 1.0, **options: object) -> RetryPolicy:
    return RetryPolicy(first, clock=clock, jitter=whole_step, **options)  # type: ignore[arg-type]


def test_each_retry_waits_twice_as_long_up_to_the_cap() -> None:
    assert [policy().backoff(attempt) for attempt in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert [policy(5.0, cap=30.0).backoff(attempt) for attempt in range(4)] == [5, 10, 20, 30]
    assert policy().backoff(10_000) == CAP  # no overflow, however many retries are allowed


def test_jitter_waits_between_half_the_step_and_the_whole_of_it() -> None:
    low = RetryPolicy(4.0, jitter=half_step)
    assert [low.backoff(attempt) for attempt in range(3)] == [2, 4, 8]
    real = RetryPolicy(4.0)
    waits = [real.backoff(2) for _ in range(200)]
    assert all(8 <= wait <= 16 for wait in waits) and len(set(waits)) > 1


def test_no_backoff_means_no_wait() -> None:
    assert policy(0.0).backoff(3) == 0


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "7"}, 7),
        ({"retry-after": " 7 "}, 7),  # header names are case-insensitive
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0),  # already past: at once
        ({"X-RateLimit-Reset": str(int(NOW) + 12)}, 12),
        ({"X-RateLimit-Reset": str(int(NOW) - 5)}, 0),
        ({"Retry-After": "3", "X-RateLimit-Reset": str(int(NOW) + 50)}, 3),  # the standard first
        ({"Retry-After": "soon", "X-RateLimit-Reset": str(int(NOW) + 9)}, 9),
        ({"Retry-After": "100000"}, SERVER_CAP),  # a server may not hold us for a day
        ({"X-RateLimit-Reset": str(int(NOW) + 100_000)}, SERVER_CAP),
    ],
)
def test_the_server_says_how_long(headers: dict[str, str], wait: float) -> None:
    assert policy().server_wait(headers, attempt=0) == wait


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Retry-After": "soon"},
        {"Retry-After": "-5"},
        {"Retry-After": "1.5e3"},
        {"Retry-After": "Wed, 99 Foo 2015"},
        {"X-RateLimit-Reset": "tomorrow"},
        {"X-RateLimit-Reset": "nan"},
        {"X-RateLimit-Reset": "inf"},
    ],
)
def test_a_header_that_says_nothing_readable_falls_back_to_backoff(headers: dict[str, str] | None) -> None:
    assert policy().server_wait(headers, attempt=2) == 4
