"""``peaceland bench dashboard``: from the gateway accepting a low-score report to the alert
drawn on an officer's dashboard, measured inside a real browser.

A platform in a namespace of its own (operator, node running the force's consumers,
control plane, all processes of this machine), a force sold through the API and Ready, an
officer signed in to its dashboard in Debian's Chromium (Playwright). Drones report through
the gateway at ``rate`` meanwhile. Each probe is one report of a citizen of its own at the
lowest score: the time the gateway accepted it (its 202) is taken here, the time the page
drew its alert is what the page records (``window.peaceland.drawn``), both on this
machine's clock; the alert's id is known beforehand (derived from the force, the citizen
and the report).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx2
from playwright.sync_api import Browser, Page, sync_playwright

from peaceland.cli.bench_api import _fleet_keys, _Load, bench_force
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.stats import percentiles
from peaceland.stack import Stack
from peaceland.stack.fetch import CHROMIUM_ARGS, chromium
from peaceland.tenants.alerts import alert_id_for
from peaceland.tenants.reports import Citizen, Report

Say = Callable[[str], None]


def run(stack: Stack, *, probes: int, rate: float, say: Say) -> dict[str, Any]:
    with bench_force(stack, "bench-dash", say, partitions=6) as (api, force_id, gateway):
        officer = f"officer@{force_id}.bench"
        added = api.add_member(force_id, officer, "Bench officer", "officer")
        fleet = Fleet(drones=100, seed=11)
        keys = _fleet_keys(api, gateway, force_id, fleet)
        latencies, hops, background = _in_a_browser(
            api.url,
            (officer, str(added["initial_password"])),
            gateway,
            keys,
            fleet,
            force_id,
            probes,
            rate,
            say,
        )
    return {
        "benchmark": "dashboard",
        "what": "gateway 202 of a low-score report -> its alert drawn in the officer's page",
        "alerts": len(latencies),
        "latency_ms": percentiles(latencies),
        "hops_ms": {name: percentiles(values) for name, values in hops.items()},
        "background_load": background,
    }


def _in_a_browser(
    control_plane: str,
    login: tuple[str, str],
    gateway: str,
    keys: dict[str, str],
    fleet: Fleet,
    force_id: str,
    probes: int,
    rate: float,
    say: Say,
) -> tuple[list[float], dict[str, list[float]], dict[str, Any]]:
    """The officer's page open in Chromium while drones report; the probes' latencies."""
    probe_drone = fleet.drone_ids[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium(say)), args=list(CHROMIUM_ARGS)
        )
        page = signed_in_page(browser, control_plane, login)
        say(f"an officer of {force_id} signed in to the dashboard in Chromium")
        # The same feed read by a plain HTTP client beside the page: the platform's share
        # of the time, without the browser's.
        token = str(page.evaluate("() => sessionStorage.getItem('peaceland.token')"))
        plain = _PlainReader(f"{control_plane}/v1/forces/{force_id}/alerts/feed?drones=true", token)
        plain.start()
        load = _Load(fleet, gateway, keys, rate)
        load.start()
        try:
            time.sleep(3)  # the load settles
            accepted = _probes(gateway, keys[probe_drone], probe_drone, probes)
            wanted = {str(alert_id_for(force_id, c, r)): at for c, r, at in accepted}
            deadline = time.monotonic() + 120
            drawn: dict[str, float] = {}
            while time.monotonic() < deadline:
                drawn = page.evaluate("() => window.peaceland.drawn")
                if all(a in drawn for a in wanted):
                    break
                time.sleep(0.5)
            received = page.evaluate("() => window.peaceland.received")
            raised = page.evaluate("() => window.peaceland.raised")
        finally:
            background = load.stop()
            plain.stopping.set()
            browser.close()
    if plain.error is not None:
        raise RuntimeError(f"the plain feed reader failed: {plain.error}")
    missing = [a for a in wanted if a not in drawn]
    if missing:
        raise TimeoutError(f"{len(missing)} of {len(wanted)} probe alerts never drawn")
    latencies = sorted(drawn[a] - at for a, at in wanted.items())
    # Each hop on this machine's clock: the alerter's raised_at is taken before its
    # transaction commits, so the commit is in the feed's hop.
    hops = {
        "gateway_to_raised": sorted(raised[a] - at for a, at in wanted.items()),
        "raised_to_received": sorted(received[a] - raised[a] for a in wanted),
        "received_to_drawn": sorted(drawn[a] - received[a] for a in wanted),
        "raised_to_plain_http_client": sorted(
            plain.seen[a] - raised[a] for a in wanted if a in plain.seen
        ),
    }
    say(f"{len(latencies)} alerts drawn; p50 {percentiles(latencies)['p50']} ms")
    return latencies, hops, background


class _PlainReader(threading.Thread):
    """A reader of the live feed over plain HTTP: when each alert's first event came."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(name="plain-feed", daemon=True)
        self.url, self.token = url, token
        self.seen: dict[str, float] = {}
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._read()
        except httpx2.HTTPError as exc:
            if not self.stopping.is_set():
                self.error = str(exc)  # else the control plane went with the benchmark's end

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with (
            httpx2.Client(timeout=httpx2.Timeout(10, read=30)) as client,
            client.stream("GET", self.url, headers=headers) as answer,
        ):
            answer.raise_for_status()
            for line in answer.iter_lines():
                if self.stopping.is_set():
                    return
                if line.startswith("data:") and '"alert_id"' in line:
                    alert_id = json.loads(line[5:])["alert_id"]
                    self.seen.setdefault(alert_id, time.time() * 1000)


def signed_in_page(
    browser: Browser,
    control_plane: str,
    login: tuple[str, str],
    live_within: float = 60,
    init_script: str | None = None,
) -> Page:
    """A page of the dashboard, signed in as ``login`` (email, password), its feed live
    (the page loads the open alerts first: with many, that takes a while);
    ``init_script`` runs in it before its own scripts."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    if init_script is not None:
        page.add_init_script(init_script)
    page.goto(f"{control_plane}/dashboard/")
    page.fill("#email", login[0])
    page.fill("#password", login[1])
    page.click("button[type=submit]")
    until_true(page, "() => window.peaceland && window.peaceland.feed === 'live'", live_within)
    return page


def until_true(page: Page, function: str, timeout: float, interval: float = 0.1) -> None:
    """Poll ``function`` in the page until it is true. Polled from here: wait_for_function
    evaluates strings in the page, which the page's CSP forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(function):
        if time.monotonic() > deadline:
            raise TimeoutError(f"never true in the page after {timeout:.0f} s: {function}")
        time.sleep(interval)


def _probes(gateway: str, key: str, drone: str, count: int) -> list[tuple[str, uuid.UUID, float]]:
    """One report a tenth of a second, each seeing a citizen of its own at the lowest score:
    (citizen, report id, epoch ms of the gateway's 202)."""
    sent = []
    with httpx2.Client(timeout=10) as client:
        for n in range(count):
            citizen = f"Probe Citizen {n:05d}"
            report = Report(
                report_id=uuid.uuid4(),
                drone_id=drone,
                timestamp=datetime.now(UTC),
                latitude=48.8566,
                longitude=2.3522,
                citizens=[Citizen(name=citizen, score=0.0)],
                words=["probe"],
            )
            answer = client.post(
                f"{gateway}/v1/reports",
                content=report.model_dump_json().encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            at = time.time() * 1000
            if answer.status_code != 202:
                raise RuntimeError(
                    f"the gateway refused a probe: {answer.status_code} {answer.text}"
                )
            sent.append((citizen, report.report_id, at))
            time.sleep(0.1)
    return sent
