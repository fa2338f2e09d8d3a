"""Adapters are context managers: `with make_camera(cfg) as camera:` closes it however the block ends."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """`close()` on leaving the block; each adapter's close is idempotent, so closing again is harmless."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
