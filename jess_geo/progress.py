"""Progress reporting for long work: a bar on a terminal, JSON lines for programs, or nothing."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, TextIO

ProgressCallback = Callable[[str, int, int, str], None]
"""``callback(stage, done, total, message)``; may raise :class:`jess_geo.errors.Cancelled`."""


class Reporter:
    """Turns progress callbacks into a terminal bar (tqdm), JSON lines, or silence."""

    def __init__(self, mode: str = "bar", stream: TextIO | None = None) -> None:
        if mode not in ("bar", "json", "quiet"):
            raise ValueError(mode)
        self.mode = mode
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self._bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.mode == "json":
            pct = round(100.0 * done / total, 1) if total else 0.0
            self.emit({"stage": stage, "done": done, "total": total, "percent": pct, "message": message})
        elif self.mode == "bar":
            from tqdm import tqdm

            bar = self._bars.get(stage)
            if bar is None:
                bar = self._bars[stage] = tqdm(total=total, desc=stage, file=self.stream, leave=True, dynamic_ncols=True)
            bar.total = total
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

    def emit(self, obj: dict[str, Any]) -> None:
        """Write one JSON object as one line (json mode only)."""
        if self.mode == "json":
            self.stream.write(json.dumps(obj) + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A human message: stderr in bar mode, a JSON line in json mode."""
        if self.mode == "json":
            self.emit({"stage": "message", "message": text})
        elif self.mode == "bar":
            print(text, file=sys.stderr)

    def close(self) -> None:
        """Close any open bars."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


class StopFlag:
    """A stop request set by a signal handler (which does nothing else) and polled by long work.

    A command that polls it ``arm()``s it; the handler then only sets the flag, and the work
    stops at its next safe point (between batches, strips or files), closing what it opened.
    Once the work's outputs are final the command calls ``finish()``: a signal after that changes
    nothing (the outputs stay, the exit code stays 0) instead of reporting a stop.
    """

    def __init__(self) -> None:
        self.armed = False
        self.finished = False
        self.reason: str | None = None

    def reset(self) -> None:
        """A new command: signals act at once until it arms the flag."""
        self.armed, self.finished, self.reason = False, False, None

    def arm(self) -> None:
        """Start polling (signals only set the flag from now on)."""
        self.armed, self.finished, self.reason = True, False, None

    def disarm(self) -> None:
        """Stop polling (signals act at once again)."""
        self.armed = False

    def finish(self) -> None:
        """The outputs are final: signals from now on are ignored."""
        self.armed, self.finished = False, True

    def request(self, reason: str) -> None:
        """Called from the signal handler."""
        self.reason = reason

    def __call__(self) -> bool:
        """True once a stop was requested (usable as a ``cancel`` callback)."""
        return self.reason is not None


STOP = StopFlag()
