"""The update Job's first fetch goes out before it imports MLflow or scikit-learn, in a real run
on the session's Kafka and MLflow (the unit test checks the imports; this, the order)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from inshape_api.result import decode
from inshape_api.spec import dumps_policy
from inshape_jobs.start import FIRST_FETCH
from tests.integration.helpers import NewPolicy, fill

pytestmark = pytest.mark.integration

HEAVY = ("sklearn", "mlflow", "matplotlib", "scipy", "pandas")


def test_the_first_fetch_precedes_every_heavy_import(new_policy: NewPolicy) -> None:
    policy = new_policy()
    fill(policy, 1000)
    # -X importtime writes a line as each import finishes, to stderr; with stdout on the same
    # pipe, the lines come in the order they happened.
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "inshape_jobs", "update"],
        env={
            "INSHAPE_POLICY": dumps_policy(policy),
            "INSHAPE_RUN_KEY": "start-1",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, "\n".join(lines[-40:])
    (fetch_at,) = [i for i, line in enumerate(lines) if FIRST_FETCH in line]
    imported = {  # module -> line of its import
        line.rsplit("|", 1)[-1].strip(): i
        for i, line in enumerate(lines)
        if line.startswith("import time:")
    }
    heavy_at = {name: i for name, i in imported.items() if name.split(".")[0] in HEAVY}
    assert heavy_at, "the run imports them after all"
    assert min(heavy_at.values()) > fetch_at, sorted(heavy_at, key=heavy_at.__getitem__)[:5]
    assert decode(lines[-1]).outcome == "Promoted"
