"""Fixtures for the workflow tests: a real single-node SLURM (see slurm_cluster.py)."""

from __future__ import annotations

import pytest

from .slurm_cluster import SlurmUnavailable, local_slurm


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM; skips when SLURM cannot be installed or run here (not root, no apt)."""
    try:
        with local_slurm() as cluster:
            yield cluster
    except SlurmUnavailable as exc:
        pytest.skip(f"no local SLURM: {exc}")
