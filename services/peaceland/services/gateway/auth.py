"""Which police force a drone key belongs to: the only way a request names its force."""

from __future__ import annotations

import hmac

from peaceland.services.gateway.settings import GatewaySettings, key_digest


class DroneKeys:
    """The drone keys the gateway knows, kept as digests only, by force."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._forces = settings.force_by_key_digest()

    def force_of(self, key: str) -> str | None:
        """The force whose key ``key`` is, or None; compared in constant time."""
        digest = key_digest(key)
        found = None
        for known, force_id in self._forces.items():
            if hmac.compare_digest(known, digest):
                found = force_id
        return found
