"""Base URLs and cursors, without a server."""

from __future__ import annotations

import pytest

from mcp_ledger.tools.github._backend import api_base_url, next_page


@pytest.mark.parametrize(
    ("host", "env", "expected"),
    [
        (None, {}, "https://api.github.com"),
        (None, {"GITHUB_API_URL": "https://ghes.corp.example/api/v3/"}, "https://ghes.corp.example/api/v3"),
        ("ghes.corp.example", {"GITHUB_API_URL": "https://api.github.com"}, "https://ghes.corp.example/api/v3"),
        ("https://ghes.corp.example/", {}, "https://ghes.corp.example/api/v3"),
        ("http://127.0.0.1:8080", {}, "http://127.0.0.1:8080/api/v3"),
        ("octocorp.ghe.com", {}, "https://api.octocorp.ghe.com"),
        ("github.com", {"GITHUB_API_URL": "https://ghes.corp.example/api/v3"}, "https://api.github.com"),
    ],
)
def test_api_base_url(host: str | None, env: dict[str, str], expected: str) -> None:
    assert api_base_url(host, env) == expected


def test_next_page_reads_the_next_link_only() -> None:
    link = (
        '<https://api.github.com/repos/o/r/issues?per_page=2&page=3>; rel="next", '
        '<https://api.github.com/repos/o/r/issues?per_page=2&page=9>; rel="last"'
    )
    assert next_page(link) == "3"
    assert next_page('<https://api.github.com/x?page=1>; rel="prev"') is None
    assert next_page(None) is None
