"""What the container list reads from the engine's status text, and how engine errors lose env values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_ledger.tools.docker._backend import NotFound
from mcp_ledger.tools.docker.containers import _env_kept_out, _exit_code_from_status, _scrub_env, _status_age

HOUR = 3600.0


def human_duration(seconds: float, *, rounded_hours: bool) -> str:
    """docker/go-units HumanDuration: newer versions round the hour count, older ones truncate it."""
    if int(seconds) < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if int(seconds) < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / HOUR + 0.5) if rounded_hours else int(seconds / HOUR)  # Go rounds half up
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * (2 if rounded_hours else 3):
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / HOUR) // 24 // 365} years"


@given(seconds=st.floats(0, 30 * 365 * 24 * HOUR), rounded=st.booleans(), code=st.integers(-1, 255))
def test_status_age_bounds_hold_for_every_duration(seconds: float, rounded: bool, code: int) -> None:
    status = f"Exited ({code}) {human_duration(seconds, rounded_hours=rounded)} ago"
    low, high = _status_age(status)
    assert low <= seconds < high
    assert high - low <= max(2.0, 0.6 * high)  # tight enough to settle most containers without an inspect
    assert _exit_code_from_status(status) == code


def test_status_without_an_age_says_nothing() -> None:
    for status in ("Up 5 minutes", "Created", "Dead", "Removal In Progress", "Exited (1)", "Exited (1) soon ago"):
        assert _status_age(status) == (0.0, math.inf)
    assert _status_age("Restarting (1) 3 seconds ago") == (3.0, 4.0)
    assert _exit_code_from_status("Restarting (2) Less than a second ago") == 2
    assert _exit_code_from_status("Up 2 hours") is None


def test_scrub_env_removes_values_as_written_quoted_and_escaped() -> None:
    env = ["API_KEY=line1\nline2-s3cret", "SHORT=ab", "EMPTY=", "PLAIN=value-in-text"]
    message = (
        'runc: bad "API_KEY=line1\\nline2-s3cret"; raw line1\nline2-s3cret; '
        "SHORT=ab stays short: ab; value-in-text; EMPTY= stays"
    )
    scrubbed = _scrub_env(message, env)
    assert scrubbed == (
        'runc: bad "API_KEY=[REDACTED]"; raw [REDACTED]; SHORT=[REDACTED] stays short: ab; [REDACTED]; EMPTY= stays'
    )


def test_env_kept_out_rewrites_the_error_and_keeps_its_type() -> None:
    expected = r"^container 'x' not found: TOKEN=\[REDACTED\]$"
    with pytest.raises(NotFound, match=expected), _env_kept_out({"TOKEN": "hunter2-value"}):
        raise NotFound("container 'x' not found: TOKEN=hunter2-value")
