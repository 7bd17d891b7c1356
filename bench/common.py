"""What the benchmark scripts share: where the corpus is, and which code they measured."""

from __future__ import annotations

import subprocess
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"  # ../shared/corpus


def code_revision() -> str:
    """The repository's HEAD, marked ``+dirty`` when worker/ has uncommitted changes."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "worker"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head
