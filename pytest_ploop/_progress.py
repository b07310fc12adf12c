"""A progress display for the loop API: tqdm where it is installed, a plain line otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Call with (done, total) as tasks settle; :meth:`close` at the end."""

    def __init__(self, desc: str = "ploop") -> None:
        self._bar: Any = None
        self._last = 0.0
        self._desc = desc
        self._done = 0
        self._total: int | None = None
        try:
            import tqdm
        except ImportError:
            return
        tqdm.tqdm.monitor_interval = 0  # no monitor thread: the main process stays one thread
        self._bar = tqdm.tqdm(desc=desc, unit="task", dynamic_ncols=True)

    def __call__(self, done: int, total: int | None) -> None:
        self._done, self._total = done, total
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.update(done - self._bar.n)
            return
        now = time.monotonic()
        if now - self._last >= 0.2 and sys.stderr.isatty():
            self._last = now
            sys.stderr.write(f"\r{self._line()}")
            sys.stderr.flush()

    def _line(self) -> str:
        of = f"/{self._total}" if self._total is not None else ""
        return f"{self._desc}: {self._done}{of} tasks"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            return
        sys.stderr.write(("\r" if sys.stderr.isatty() else "") + self._line() + "\n")
        sys.stderr.flush()
