"""Context managers and pytest fixtures for the fake servers in tests/fakes.

Import the context manager where a test needs its own server, or import the fixture into a
conftest.py (``from tests.fakes.fixtures import image_host``) to make it available everywhere.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.fakes.image_host import FakeImageHost


@contextmanager
def running_image_host(ssl_context: ssl.SSLContext | None = None) -> Iterator[FakeImageHost]:
    """A started :class:`FakeImageHost` on 127.0.0.1, stopped (stalls released) on exit."""
    host = FakeImageHost(ssl_context)
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def image_host() -> Iterator[FakeImageHost]:
    with running_image_host() as host:
        yield host
