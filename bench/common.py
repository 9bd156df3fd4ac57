"""Shared pieces of the benchmarks: services in a scratch dir, fast topic loading, JSON lines."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

from inshape_hack.kafka import KafkaBroker
from inshape_jobs.streams import DIGITS_FEATURES
from inshape_jobs.topics import ensure_topic


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cpu python {platform.python_version()}"


def emit(
    bench: str,
    metric: str,
    *,
    ours: float,
    reference: float,
    reference_name: str,
    unit: str,
    target: str,
    **extra: Any,
) -> None:
    """One result line: our figure, the reference's from the same run, and their ratio."""
    line = {
        "bench": bench,
        "metric": metric,
        "unit": unit,
        "ours": round(ours, 3),
        "reference": round(reference, 3),
        "reference_name": reference_name,
        "ratio": round(ours / reference, 3) if reference else None,
        "target": target,
        "machine": machine(),
        **extra,
    }
    print(json.dumps(line), flush=True)


@contextmanager
def scratch_broker() -> Iterator[KafkaBroker]:
    root = Path(tempfile.mkdtemp(prefix="inshape-bench-"))
    try:
        with KafkaBroker(root / "kafka", heap="2g") as broker:
            yield broker
    finally:
        shutil.rmtree(root, ignore_errors=True)


def digits_lines(count: int, seed: int = 0) -> Iterator[bytes]:
    """count JSON records of the digits set (shuffled passes), as newline-free lines."""
    data = load_digits()
    rng = np.random.default_rng(seed)
    encoded = [
        json.dumps(
            {
                **{n: float(v) for n, v in zip(DIGITS_FEATURES, row, strict=True)},
                "label": int(label),
            },
            separators=(",", ":"),
        ).encode()
        for row, label in zip(data.data, data.target, strict=True)
    ]
    produced = 0
    while produced < count:
        for index in rng.permutation(len(encoded))[: count - produced]:
            yield encoded[index]
            produced += 1


def load_topic(
    broker: KafkaBroker, topic: str, lines: Iterator[bytes], partitions: int, workdir: Path
) -> float:
    """Fill a topic fast with kcat's producer (kafka-python's would take minutes)."""
    ensure_topic(broker.bootstrap_servers, topic, partitions)
    path = workdir / f"{topic}.jsonl"
    with path.open("wb") as out:
        for line in lines:
            out.write(line + b"\n")
    started = time.monotonic()
    subprocess.run(
        [
            "kcat",
            "-P",
            "-b",
            broker.bootstrap_servers,
            "-t",
            topic,
            "-z",
            "none",
            "-X",
            "linger.ms=20",
            "-X",
            "batch.num.messages=10000",
            "-l",
            str(path),
        ],
        check=True,
    )
    path.unlink()
    return time.monotonic() - started
