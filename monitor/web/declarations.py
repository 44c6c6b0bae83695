"""What only the target files say about a page (title, guide, expect, watch), kept fresh.

The files are read again when one of them changes, so edits show without a restart. A broken
target set keeps the last good one and says why: the history stays readable either way.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from monitor.targets import Page, TargetError, load_targets

log = logging.getLogger(__name__)


class Declarations:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.problem: str | None = None
        self._pages: dict[str, Page] = {}
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._lock = threading.Lock()

    def _current_signature(self) -> tuple[tuple[str, int, int], ...]:
        assert self.directory is not None
        try:
            files = sorted([*self.directory.glob("*.yaml"), *self.directory.glob("*.yml")])
            return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
        except OSError:
            return ()

    def pages(self) -> dict[str, Page]:
        """The declared pages by id (reloaded when the files changed)."""
        if self.directory is None:
            return {}
        with self._lock:
            signature = self._current_signature()
            if signature != self._signature:
                self._signature = signature
                try:
                    self._pages = {page.id: page for page in load_targets(self.directory)}
                    self.problem = None
                except TargetError as exc:
                    self.problem = (
                        f"{len(exc.problems)} problem(s) in the target files: " + (exc.problems[0])
                    )
                    log.warning("target files not loaded: %s", exc.problems[0])
            return self._pages

    def get(self, page_id: str) -> Page | None:
        return self.pages().get(page_id)
