"""The page as a second button: started and closed with the real one, pressing through the same on_press."""

from __future__ import annotations

from collections.abc import Callable

from ..ports import Button, Press
from .server import WebPage


class ButtonWithPage:
    """The daemon starts and closes its button; this starts the page with it and stops it after."""

    def __init__(self, inner: Button, page: WebPage) -> None:
        self.inner, self.web = inner, page

    def start(self, on_press: Callable[[Press], object]) -> None:
        self.inner.start(on_press)
        self.web.start(on_press)

    def close(self) -> None:
        try:
            self.web.close()
        finally:
            self.inner.close()
