"""The base of the views built from ipywidgets boxes: how they stop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from nbstream.views.throttle import Throttle


class ViewBox(w.VBox):  # type: ignore[misc]
    """A view that listens to a source, refreshes through a :class:`Throttle` and owns
    the widgets it made. :meth:`close` undoes all three."""

    _unsubscribe: Callable[[], None]
    _throttle: Throttle
    _owned: Sequence[Any]

    def _stop_listening(self) -> None:
        """Stop receiving what the view follows (events, progress)."""
        self._unsubscribe()

    def close(self) -> None:
        """Stop listening and remove the view (what it watches goes on). Safe twice."""
        if hasattr(self, "_unsubscribe"):  # not there when __init__ failed early
            self._stop_listening()
            self._throttle.close()
        for widget in getattr(self, "_owned", ()):
            widget.close()
        super().close()
