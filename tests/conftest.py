"""Fixtures shared by several test modules."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def cli_isolated(monkeypatch, tmp_path):
    """A command-line test's own folder and environment: no ``.env`` from the developer's
    checkout, no ``PAPERBOT_*`` variables. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("cli_isolated")``."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("PAPERBOT_"):
            monkeypatch.delenv(key)
