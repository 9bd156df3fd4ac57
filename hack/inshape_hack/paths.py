"""Where the dev tooling keeps built tools (a cache that outlives checkouts) and run state."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK_DIR = REPO_ROOT / "hack"


def cache_dir() -> Path:
    """$INSHAPE_CACHE, else ~/.cache/inshape: jars and binaries, keyed by version."""
    root = os.environ.get("INSHAPE_CACHE") or Path.home() / ".cache" / "inshape"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir() -> Path:
    """$INSHAPE_RUN_DIR, else <repo>/.run: data and logs of the services started from this tree."""
    path = Path(os.environ.get("INSHAPE_RUN_DIR") or REPO_ROOT / ".run")
    path.mkdir(parents=True, exist_ok=True)
    return path
