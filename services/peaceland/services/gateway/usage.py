"""Counting what each force sends, where it is accepted, for the control plane's invoices.

Accepted reports are counted per force and UTC day, and keys seen are noted; every
``interval`` the counts go to the control plane as one batch with an id of its own. A
batch the control plane did not acknowledge is sent again with the same id (it counts it
once) before anything newer, so a control plane outage delays counts, never loses or doubles
them. What a crashed gateway had not posted yet (at most one interval's counts) is lost:
docs/api.md, "Usage".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime

import httpx2

from peaceland.services import metrics

log = logging.getLogger(__name__)


class UsageMeter:
    def __init__(self) -> None:
        self._reports: Counter[tuple[str, date]] = Counter()
        self._keys: dict[str, datetime] = {}

    def count(self, force_id: str, at: datetime, accepted: int, key_id: str | None) -> None:
        if accepted:
            self._reports[(force_id, at.date())] += accepted
            metrics.GATEWAY_USAGE_PENDING.inc(accepted)
        if key_id is not None:
            self._keys[key_id] = at

    def take(self) -> tuple[dict[str, object], int] | None:
        """The counts so far as a batch and its number of reports (and a fresh start), or
        None when there is none."""
        if not self._reports and not self._keys:
            return None
        reports: dict[str, dict[str, int]] = {}
        for (force_id, day), count in self._reports.items():
            reports.setdefault(force_id, {})[day.isoformat()] = count
        batch: dict[str, object] = {
            "batch_id": uuid.uuid4().hex,
            "reports": reports,
            "keys_used": {k: at.isoformat() for k, at in self._keys.items()},
        }
        total = sum(self._reports.values())
        self._reports, self._keys = Counter(), {}
        return batch, total


class UsagePoster:
    """Posts the meter's batches to the control plane, one at a time, in order."""

    def __init__(
        self,
        meter: UsageMeter,
        url: str,
        token: Callable[[], str],
        interval: float,
        client: httpx2.AsyncClient | None = None,
    ) -> None:
        self._meter = meter
        self._url = url.rstrip("/") + "/v1/internal/usage"
        self._token = token
        self._interval = interval
        self._client = client or httpx2.AsyncClient(timeout=httpx2.Timeout(10.0))
        self._pending: tuple[dict[str, object], int] | None = None

    async def flush(self) -> bool:
        """Post the pending batch, or a new one; True when nothing is left unposted."""
        if self._pending is None:
            self._pending = self._meter.take()
        if self._pending is None:
            return True
        batch, total = self._pending
        answer = await self._client.post(
            self._url, json=batch, headers={"Authorization": f"Bearer {self._token()}"}
        )
        answer.raise_for_status()
        metrics.GATEWAY_USAGE_PENDING.dec(total)
        self._pending = None
        return False

    async def run(self) -> None:
        """Post for ever: no failure ends the loop; a batch the control plane refuses for
        good (422: its body breaks the contract) is logged whole and dropped, so that it
        cannot block the later ones; any other failure keeps it (a wrong token is fixed, a
        proxy's limit raised, then it goes)."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                # The batch left from a failure, then at most one new one: one post per
                # interval in the steady state, however busy the gateway.
                if not await self.flush():
                    await self.flush()
            except asyncio.CancelledError:
                raise
            except httpx2.HTTPStatusError as exc:
                if exc.response.status_code == 422 and self._pending is not None:
                    log.error(
                        "the control plane refused a usage batch for good (%s): %s; dropped",
                        exc.response.status_code,
                        self._pending[0],
                    )
                    metrics.GATEWAY_USAGE_PENDING.dec(self._pending[1])
                    self._pending = None
                else:
                    log.warning("usage not posted to the control plane yet (kept): %s", exc)
            except (httpx2.HTTPError, ValueError, OSError) as exc:  # a token being replaced
                log.warning("usage not posted to the control plane yet (kept): %s", exc)
            except Exception:
                log.exception("unexpected failure posting usage (kept)")

    async def close(self) -> None:
        """Post what is left (best effort, a few seconds at most), then close."""
        try:
            async with asyncio.timeout(5):
                while not await self.flush():
                    pass
        except (httpx2.HTTPError, TimeoutError) as exc:
            log.error("usage lost at shutdown, the control plane did not take it: %s", exc)
        await self._client.aclose()
