"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (tests/conftest.py)."""
