"""Fixtures of the reliability suite (helpers live in reliability_tools.py)."""

import pytest
from reliability_tools import TINY, write


@pytest.fixture
def tiny(tmp_path):
    """The tiny config written to ``tmp_path/cfg.yaml``."""
    return write(tmp_path, TINY)
