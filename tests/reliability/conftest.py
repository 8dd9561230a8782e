"""Fixtures of the reliability suite (helpers live in reliability_tools.py)."""

import pytest
from reliability_tools import TINY, kill_started, write


@pytest.fixture
def tiny(tmp_path):
    """The tiny config written to ``tmp_path/cfg.yaml``."""
    return write(tmp_path, TINY)


@pytest.fixture(autouse=True)
def _no_process_left():
    """A real process a test started never outlives it (a paused one would wait forever)."""
    yield
    kill_started()
