"""The launcher's last line of defence against pod processes a dead kubelet left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inshape_hack.cluster import kill_pod_orphans


def test_kills_only_processes_of_this_clusters_pods(tmp_path: Path) -> None:
    kubelet_dir = tmp_path / "kubelet"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = subprocess.Popen(
        sleeper, env={**os.environ, "INSHAPE_POD_DIR": f"{kubelet_dir}/pods/ns_p_uid"}
    )
    other = subprocess.Popen(
        sleeper, env={**os.environ, "INSHAPE_POD_DIR": f"{tmp_path}/elsewhere/pods/x"}
    )
    try:
        killed = kill_pod_orphans(kubelet_dir)
        assert ours.wait(timeout=10) == -9
        assert killed == [ours.pid]
        assert other.poll() is None
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()
