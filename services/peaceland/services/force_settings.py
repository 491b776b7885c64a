"""A force's run-time settings, re-read while the consumer runs.

The operator writes the force's settings into a ConfigMap mounted as a file; Kubernetes
updates the file in place when the PoliceForce changes. Consumers look at the file's
modification time at most once a second (never per record) and switch to the new settings
without a restart. A file that fails to parse is logged and ignored: the last good
settings stay in force.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pydantic import ValidationError

from peaceland.tenants.forces import ForceSettings

log = logging.getLogger(__name__)


class SettingsSource:
    """The force's settings now: from ``path`` when given, else ``default``."""

    def __init__(
        self,
        default: ForceSettings,
        path: Path | None = None,
        check_every: float = 1.0,
    ) -> None:
        self._force_id = default.force_id
        self._current = default
        self._path = path
        self._check_every = check_every
        self._checked = 0.0
        self._mtime: float | None = None
        self.current()

    def current(self) -> ForceSettings:
        now = time.monotonic()
        if self._path is None or now - self._checked < self._check_every:
            return self._current
        self._checked = now
        try:
            mtime = self._path.stat().st_mtime
        except OSError as exc:
            log.error(
                "force settings %s unreadable (%s); keeping %s", self._path, exc, self._current
            )
            return self._current
        if mtime != self._mtime:
            self._mtime = mtime
            self._load()
        return self._current

    def _load(self) -> None:
        assert self._path is not None
        try:
            settings = ForceSettings.read(self._path)
        except (OSError, ValidationError) as exc:
            log.error("force settings %s invalid, keeping %s: %s", self._path, self._current, exc)
            return
        if settings.force_id != self._force_id:
            log.error(
                "force settings %s are for force %r, not %r; ignored",
                self._path,
                settings.force_id,
                self._force_id,
            )
            return
        if settings != self._current:
            log.info("settings of %s now %s", self._force_id, settings)
        self._current = settings
