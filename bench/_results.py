"""Where benchmark results go: ``bench/results/<name>-<UTC stamp>.json`` and ``<name>-latest.json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "save"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save(name: str, results: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Stamp ``results`` with the time and write both files; returns the stamped one."""
    now = datetime.now(UTC)
    results.setdefault("measured_at", now.isoformat(timespec="seconds"))
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    stamped = directory / f"{name}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    for path in (stamped, directory / f"{name}-latest.json"):
        path.write_text(text)
    return stamped
