"""The bounded log tail that tools showing logs share (tools/_logtail.py)."""

from __future__ import annotations

from mcp_ledger.tools._logtail import Grep, LogTail


def test_log_tail_cuts_very_long_lines_and_says_so() -> None:
    tail = LogTail(2, Grep("boom"))
    for line in ["ok", "boom " + "x" * 10_000, "fine", "boom again"]:
        tail.feed(line)
    result = tail.result(max_bytes=100_000)
    assert result.matches == 2 and result.lines_total == 4
    first, second = result.text.splitlines()
    assert first.startswith("2: boom ") and first.endswith("…[line cut]") and second == "4: boom again"
    assert result.truncated and "1 lines longer than 4096 characters were cut" in result.notes


def test_log_tail_keeps_the_last_lines_within_max_bytes_and_says_what_it_left_out() -> None:
    tail = LogTail(3, None)
    for i in range(10):
        tail.feed(f"line {i} " + "y" * 20)
    result = tail.result(max_bytes=60)
    assert result.lines_total == 10 and result.matches is None
    assert result.text.splitlines() == [f"line {i} " + "y" * 20 for i in (8, 9)]
    assert result.notes == ["showing the last 2 of 10 lines", "1 earlier lines dropped to stay within max_bytes=60"]


def test_a_grep_that_does_not_compile_is_refused_with_the_reason() -> None:
    import pytest

    from mcp_ledger.tools._logtail import check_pattern

    assert check_pattern(None) is None and check_pattern("err(or)?") == "err(or)?"
    with pytest.raises(ValueError, match=r"not a regular expression \(missing \)\)"):
        check_pattern("(")


def test_a_pattern_that_backtracks_exponentially_is_stopped_within_the_budget_with_a_reason() -> None:
    import pytest

    from mcp_ledger.tools.group import ToolFailure

    grep = Grep(r"(a|aa)+$", seconds=0.2)
    tail = LogTail(10, grep)
    tail.feed("a" * 10 + "b")  # short enough to finish within the budget
    # The same pattern on a longer line runs for hours (re or regex alike); here the budget runs out.
    with pytest.raises(ToolFailure, match=r"took more than 0.2 s over the log; use a simpler pattern"):
        tail.feed("a" * 40 + "b")
