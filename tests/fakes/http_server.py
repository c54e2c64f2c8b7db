"""The threaded HTTP server every fake in the tests runs on."""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class FakeHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a listen backlog that fits the tests' bursts.

    http.server listens with a backlog of 5. Tests send a few dozen requests at once (webhook
    senders, bulk jobs), and on a loaded machine an overflowing backlog resets connections,
    which our clients rightly record as network errors: a failure of the fake, not of the code
    under test (seen in CI as a webhook "network_error" after 1 s).
    """

    request_queue_size = 128
    daemon_threads = True
