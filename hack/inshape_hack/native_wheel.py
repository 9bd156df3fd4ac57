"""The compiled record decoder's wheel (jobs/native/inshape_fastdecode): cargo + maturin,
cached by a hash of the crate's sources.

The wheel lands in the cache (~/.cache/inshape/native/<hash>/) and in .build/native/, where
the Dockerfile installs it from (the image itself has no compiler). Without cargo nothing is
built: the Job then parses with msgspec (inshape_jobs.native says which it uses).

    python -m inshape_hack.native_wheel             # build (or find) the wheel
    python -m inshape_hack.native_wheel --install   # ... and install it into this venv
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from inshape_hack.paths import REPO_ROOT, cache_dir

CRATE = Path("jobs/native/inshape_fastdecode")
OUT = Path(".build/native")
# What the wheel is built from; target/ (cargo's output) is not.
CRATE_INPUTS = ("Cargo.toml", "Cargo.lock", "pyproject.toml")
STAMP = ".inshape_fastdecode"  # in the venv: the hash of the wheel installed there


def crate_files(crate: Path) -> Iterator[Path]:
    for name in CRATE_INPUTS:
        yield crate / name
    yield from sorted(p for p in (crate / "src").rglob("*") if p.is_file())


def source_hash(crate: Path) -> str:
    digest = hashlib.sha256()
    for path in crate_files(crate):
        digest.update(b"\0" + path.relative_to(crate).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def find_cargo() -> str | None:
    """cargo on PATH, else rustup's default place."""
    found = shutil.which("cargo")
    rustup = Path.home() / ".cargo" / "bin" / "cargo"
    return found or (str(rustup) if rustup.is_file() else None)


def maturin_argv() -> list[str]:
    """maturin from this venv (the dev group has it), else from PATH."""
    beside = Path(sys.executable).parent / "maturin"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("maturin")
    if found is None:
        raise RuntimeError("maturin is not installed: `make setup` installs the dev group")
    return [found]


def build(crate: Path, into: Path, cargo: str) -> Path:
    """One release build of the crate's wheel (abi3: any CPython >= 3.11) into ``into``."""
    env = {
        **os.environ,
        "PATH": f"{Path(cargo).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Compiled dependencies are kept across checkouts and source changes.
        "CARGO_TARGET_DIR": str(cache_dir() / "native" / "target"),
    }
    with tempfile.TemporaryDirectory() as out:
        argv = ["nice", *maturin_argv(), "build", "--release", "--locked", "--out", out]
        argv += ["--interpreter", sys.executable, "--manifest-path", str(crate / "Cargo.toml")]
        subprocess.run(argv, env=env, check=True, stdout=sys.stderr)
        (wheel,) = Path(out).glob("*.whl")
        into.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, into / wheel.name))


def ensure_wheel(root: Path = REPO_ROOT) -> Path | None:
    """The wheel for the crate as it is now, in .build/native/; None without cargo."""
    crate = root / CRATE
    cached = cache_dir() / "native" / source_hash(crate)
    wheels = sorted(cached.glob("*.whl"))
    if not wheels:
        cargo = find_cargo()
        if cargo is None:
            print("native: no cargo (rustup.rs): the Job parses with msgspec", file=sys.stderr)
            return None
        wheels = [build(crate, cached, cargo)]
    out = root / OUT
    for stale in out.glob("*.whl"):
        stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(wheels[0], out / wheels[0].name))


def install(wheel: Path, venv: Path) -> None:
    """Into this venv, unless this very wheel is there already."""
    stamp = venv / STAMP
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall"]
    subprocess.run([*pip, str(wheel)], check=True, stdout=sys.stderr)
    stamp.write_text(digest)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--install", action="store_true", help="install it into this venv")
    opts = args.parse_args(argv)
    wheel = ensure_wheel()
    if wheel is None:
        return 0
    if opts.install:
        install(wheel, Path(sys.prefix))
    print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
