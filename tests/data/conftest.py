"""Fixtures for the data tests (the `network` skip lives in tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# the format writers (datafmt.py) sit next to the tests; make them importable under rootdir import mode
sys.path.insert(0, str(Path(__file__).parent))


