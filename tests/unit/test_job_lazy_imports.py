"""The update Job reaches its first Kafka fetch without importing the heavy libraries (seconds
of imports): what its CLI loads up to start.start_drain must stay light."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# What `python -m inshape_jobs update` imports before its first fetch (__main__._update).
STARTUP_MODULES = (
    "inshape_jobs.__main__",
    "inshape_api.kafka_link",
    "inshape_api.result",
    "inshape_jobs.drain",
    "inshape_jobs.result",
    "inshape_jobs.start",
)
HEAVY = ("sklearn", "mlflow", "matplotlib", "scipy", "pandas", "skops")

PROBE = """
import importlib, json, sys
def loaded():
    return sorted(m for m in {heavy!r} if m in sys.modules)
for name in {startup!r}:
    importlib.import_module(name)
sys.modules["inshape_jobs.__main__"].parser().parse_args(["update", "--policy", "p.yaml"])
before = loaded()
importlib.import_module("inshape_jobs.update")  # the rest of the run, once reading
print(json.dumps({{"before": before, "after": loaded()}}))
"""


def _loaded_heavy_modules() -> dict[str, list[str]]:
    code = PROBE.format(heavy=HEAVY, startup=STARTUP_MODULES)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: dict[str, list[str]] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


def test_the_startup_path_imports_none_of_the_heavy_libraries() -> None:
    loaded = _loaded_heavy_modules()
    assert loaded["before"] == []
    # The same probe sees them once the rest of the run is imported: it can tell.
    assert {"sklearn", "mlflow", "matplotlib", "scipy", "pandas"} <= set(loaded["after"])
