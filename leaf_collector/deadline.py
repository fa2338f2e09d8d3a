"""A header and body deadline for waitress, which has neither (issue 11: slow clients).

waitress closes a connection only after `channel_timeout` seconds without *any* byte, so a
client that trickles one header line every few seconds holds its connection for ever. This
hooks waitress's own periodic maintenance: a request still incomplete `header_timeout_s` after
its first byte (headers unfinished) or `body_timeout_s` after it (body unfinished) has its
connection closed. An idle keep-alive connection (no request begun) is left to channel_timeout.

It reads waitress's channel attributes `request` (the request being received), `requests`
(those complete) and `will_close`; waitress is pinned below 4 (pyproject) and the tests check it.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

log = logging.getLogger("leaf_collector")


class RequestDeadline:
    """Installed on a waitress server by `install()`; runs inside waitress's event loop thread."""

    def __init__(self, header_timeout_s: float, body_timeout_s: float) -> None:
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.closed = 0
        # the partial request seen on a channel, and when it was first seen (a parser lives for one request)
        self._first_seen: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def install(self, server: Any) -> None:
        """Wraps the server's maintenance(); it must run often enough, so cleanup_interval is shortened."""
        original = server.maintenance
        server.adj.cleanup_interval = max(0.2, min(server.adj.cleanup_interval, self.header_timeout_s / 4))

        def maintenance(now: float) -> None:
            original(now)
            self.check(server.active_channels.values(), time.monotonic())

        server.maintenance = maintenance

    def check(self, channels: Any, now: float) -> None:
        for channel in list(channels):
            request = getattr(channel, "request", None)
            if request is None or channel.requests or channel.will_close:
                continue  # nothing begun, or a request being served: waitress's own rules apply
            first = self._first_seen.setdefault(request, now)
            limit = self.body_timeout_s if request.headers_finished else self.header_timeout_s
            if now - first > limit:
                what = "body" if request.headers_finished else "headers"
                log.warning(
                    "closing a connection from %s: request %s not complete in %.0f s", channel.addr, what, limit
                )
                channel.will_close = True
                self.closed += 1
