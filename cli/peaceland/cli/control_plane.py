"""A client of the control plane's REST API: what the CLI and the demo do through it.

It speaks HTTP only (the CLI never imports the API's code): what it sends and reads is the
API's published contract, so the commands work against any PeaceLand control plane.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2

from peaceland.cli.errors import CommandError


class ControlPlane:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx2.Client(base_url=self.url, timeout=timeout)
        self.token = token

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
    ) -> httpx2.Response:
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        try:
            answer = self._client.request(method, path, json=json, headers=sent)
        except httpx2.HTTPError as exc:
            raise CommandError(f"the control plane at {self.url} did not answer: {exc}") from None
        if answer.status_code not in ok:
            raise CommandError(f"{method} {path}: {answer.status_code} {_reason(answer)}")
        return answer

    def sign_in(self, email: str, password: str) -> str:
        answer = self.call("POST", "/v1/auth/token", json={"email": email, "password": password})
        self.token = str(answer.json()["access_token"])
        return self.token

    def ensure_plan(self, plan: dict[str, Any]) -> None:
        if self.call("GET", f"/v1/plans/{plan['id']}", ok=(200, 404)).status_code == 404:
            self.call("POST", "/v1/plans", json=plan)

    def force(self, force_id: str) -> dict[str, Any] | None:
        answer = self.call("GET", f"/v1/forces/{force_id}", ok=(200, 404))
        return answer.json() if answer.status_code == 200 else None

    def create_force(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/v1/forces", json=body).json()
        return result

    def change_force(self, force_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        etag = self.call("GET", f"/v1/forces/{force_id}").headers["etag"]
        result: dict[str, Any] = self.call(
            "PATCH", f"/v1/forces/{force_id}", json=changes, headers={"If-Match": etag}
        ).json()
        return result

    def wait_ready(
        self, force_id: str, say: Callable[[str], None], timeout: float = 180.0
    ) -> float:
        began = time.monotonic()
        seen = None
        while True:
            force = self.force(force_id)
            if force is None:
                raise CommandError(f"police force {force_id} is gone")
            status = force["status"]
            if status["phase"] != seen:
                say(f"police force {force_id}: {status['phase']}")
                seen = status["phase"]
            if status["ready"]:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                waiting = "; ".join(
                    f"{c['type']}: {c['message']}"
                    for c in status["conditions"]
                    if c["status"] != "True"
                )
                raise CommandError(f"police force {force_id} is not Ready: {waiting}")
            time.sleep(0.5)

    def register_drone(self, force_id: str, drone_id: str) -> bool:
        """Register a drone; False when it was registered already."""
        answer = self.call(
            "POST", f"/v1/forces/{force_id}/drones", json={"id": drone_id}, ok=(201, 409)
        )
        return answer.status_code == 201

    def issue_key(self, force_id: str, drone_id: str, *, replace: bool = False) -> dict[str, Any]:
        """A new key for the drone; ``replace``: its live keys are revoked first."""
        path = f"/v1/forces/{force_id}/drones/{drone_id}/keys"
        if replace:
            for key in self.call("GET", path).json():
                if key["state"] == "live":
                    self.call("DELETE", f"{path}/{key['key_id']}")
        issued: dict[str, Any] = self.call("POST", path, json={"expires_in_days": 30}).json()
        return issued

    def add_member(self, force_id: str, email: str, name: str, role: str) -> dict[str, Any]:
        added: dict[str, Any] = self.call(
            "POST",
            f"/v1/forces/{force_id}/members",
            json={"email": email, "display_name": name, "role": role},
        ).json()
        return added


def _reason(answer: httpx2.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:300]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:300]
