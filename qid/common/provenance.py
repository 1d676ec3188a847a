"""Provenance recorded next to every result: package versions, git commit, machine, date."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path

from qid.common.paths import REPO_ROOT

# The packages whose versions can change a number in the book.
TRACKED_PACKAGES = ("qid", "torch", "transformers", "tokenizers", "numpy", "scipy", "lmfit", "pandas")


def package_versions(packages=TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def package_versions_string(packages=TRACKED_PACKAGES) -> str:
    """One compact field for a CSV row: 'torch=2.13.0;transformers=5.23.0;...'."""
    return ";".join(f"{name}={version}" for name, version in package_versions(packages).items())


def git_commit(short: bool = True) -> str:
    """The repository's HEAD commit, with '+dirty' when the working tree has changes; 'unknown' outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short" if short else "--verify", "HEAD"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows ('x86_64' at worst)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """CPU model, the vector instructions torch's CPU kernels use (they set the floating-point summation order, so
    float results can differ in the last digits between machines with different ones) and the core count, plus the
    GPU name when CUDA is present."""
    import os

    import torch

    text = f"{platform.system()} {cpu_model()} ({torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
