"""Which drone of which police force a key speaks for: the only way a request names them.

Two sources fill the book. In production, the control plane's drone-key feed
(:class:`KeyFeed`): every key is one drone's, and can send only that drone's reports; a
revocation reaches the book within ``key_refresh_seconds``. For the development harness
(benchmarks, fault tests), keys from the gateway's settings: each speaks for every drone of
its force. Only digests are kept, compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx2

from peaceland.services import metrics
from peaceland.services.gateway.quotas import ReportQuotas
from peaceland.tenants.drone_keys import KeyChanges, KeyGrant, key_digest, key_id_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who a key speaks for: a force and, for a control-plane key, one of its drones."""

    force_id: str
    drone_id: str | None
    key_id: str | None


class DroneKeys:
    """The keys the gateway knows."""

    def __init__(self, configured: dict[str, str] | None = None) -> None:
        #: Configured keys, force by digest.
        self._configured = dict(configured or {})
        self._grants: dict[str, KeyGrant] = {}
        #: Keys granted per force, kept with the grants (``forces`` is asked every second).
        self._per_force: Counter[str] = Counter()
        self.cursor = 0
        #: When the feed was last read whole (monotonic), None before the first time.
        self.synced_at: float | None = None

    def holder(self, key: str, at: datetime | None = None) -> Holder | None:
        """Who ``key`` speaks for, or None (unknown, revoked, expired)."""
        digest = key_digest(key)
        key_id = key_id_of(key)
        if key_id is not None:
            grant = self._grants.get(key_id)
            if grant is None or not hmac.compare_digest(grant.digest, digest):
                return None
            if grant.expires_at is not None and grant.expires_at <= (at or datetime.now(UTC)):
                return None
            return Holder(grant.force_id, grant.drone_id, grant.key_id)
        found = None
        for known, force_id in self._configured.items():
            if hmac.compare_digest(known, digest):
                found = Holder(force_id, None, None)
        return found

    def apply(self, changes: KeyChanges) -> None:
        for grant in changes.grants:
            self._drop(grant.key_id)
            self._grants[grant.key_id] = grant
            self._per_force[grant.force_id] += 1
        for key_id in changes.revoked:
            self._drop(key_id)
        self.cursor = changes.cursor

    def _drop(self, key_id: str) -> None:
        gone = self._grants.pop(key_id, None)
        if gone is not None:
            self._per_force[gone.force_id] -= 1
            if self._per_force[gone.force_id] <= 0:
                del self._per_force[gone.force_id]

    def forces(self) -> set[str]:
        """The forces some key speaks for (expired keys included)."""
        return set(self._configured.values()) | set(self._per_force)

    def __len__(self) -> int:
        return len(self._grants) + len(self._configured)


class KeyFeed:
    """Keeps a :class:`DroneKeys` up to date from the control plane, every ``interval``.

    While the control plane cannot be reached the gateway goes on with the keys it has
    (reports keep flowing during an outage of the control plane), says so in its log, and
    ``peaceland_gateway_key_feed_age_seconds`` grows; revocations then wait for its return.
    """

    def __init__(
        self,
        keys: DroneKeys,
        quotas: ReportQuotas,
        url: str,
        token: Callable[[], str],
        interval: float,
        client: httpx2.AsyncClient | None = None,
    ) -> None:
        self._keys = keys
        self._quotas = quotas
        self._url = url.rstrip("/") + "/v1/internal/drone-keys"
        self._token = token
        self._interval = interval
        self._client = client or httpx2.AsyncClient(timeout=httpx2.Timeout(10.0))
        self._failing_since: float | None = None
        # The age is computed when scraped: it grows even if this loop were stuck.
        metrics.GATEWAY_KEY_FEED_AGE.set_function(self._age)

    def _age(self) -> float:
        synced = self._keys.synced_at
        return float("nan") if synced is None else time.monotonic() - synced

    async def refresh(self) -> None:
        """Read every change after the book's cursor (several pages if need be)."""
        while True:
            answer = await self._client.get(
                self._url,
                params={"cursor": self._keys.cursor},
                headers={"Authorization": f"Bearer {self._token()}"},
            )
            answer.raise_for_status()
            changes = KeyChanges.model_validate_json(answer.content)
            self._keys.apply(changes)
            self._quotas.set_rates(
                {force: limits.max_reports_per_second for force, limits in changes.limits.items()}
            )
            if not changes.more:
                break
        self._keys.synced_at = time.monotonic()

    async def run(self) -> None:
        """Read the feed for ever: no failure ends the loop (a loop that died would stop
        revocations silently), each is logged once until the feed answers again."""
        while True:
            try:
                await self.refresh()
                if self._failing_since is not None:
                    log.info("the drone-key feed answers again")
                    self._failing_since = None
            except asyncio.CancelledError:
                raise
            except (httpx2.HTTPError, ValueError, OSError) as exc:  # ValidationError too
                self._failed(exc)
            except Exception as exc:
                log.exception("unexpected failure reading the drone-key feed")
                self._failed(exc)
            await asyncio.sleep(self._interval)

    def _failed(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error("cannot read the drone-key feed at %s: %s", self._url, exc)

    async def close(self) -> None:
        await self._client.aclose()
