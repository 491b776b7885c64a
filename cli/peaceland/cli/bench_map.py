"""``peaceland bench map``: how smoothly an officer's dashboard runs with a large fleet and
a long history, measured inside a real browser.

A platform in a namespace of its own and a force sold through the API (as ``bench
dashboard``); ``drones`` drones registered, each with its key, reporting through the gateway;
``history`` alerts raised through the platform beforehand (reports of one citizen each at
the lowest score, spread over the city, in batches). Then an officer signs in to the
dashboard in Debian's Chromium and the page is timed: until every open alert and every
drone is on the map, then its frames (the intervals between animation frames, which a busy
main thread stretches) while the drones move, and while the officer drags and zooms it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx2
from playwright.sync_api import Page, sync_playwright

from peaceland.cli.bench_api import _Load, bench_force
from peaceland.cli.bench_dashboard import signed_in_page, until_true
from peaceland.cli.control_plane import ControlPlane
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.stats import percentiles
from peaceland.stack import Stack
from peaceland.stack.fetch import CHROMIUM_ARGS, chromium
from peaceland.tenants.reports import Citizen, Report

Say = Callable[[str], None]

#: Reports of the history in one request (each sees one citizen at the lowest score, at a
#: place of its own: the alerts spread over the city as real ones do).
_PER_REQUEST = 100

# Installed in the page before its own scripts run (through the DevTools protocol, which
# the page's CSP does not govern): every animation frame's interval, and the main thread's
# long tasks (50 ms or more: shorter ones are not reported by the browser).
_MONITOR = """(() => {
  const m = { frames: [], long: [], on: true };
  let last = performance.now();
  const tick = (now) => { if (m.on) m.frames.push(now - last); last = now;
                          requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  new PerformanceObserver((list) => { for (const e of list.getEntries())
    m.long.push([e.startTime, e.startTime + e.duration]); })
    .observe({ entryTypes: ["longtask"] });
  window.benchMonitor = m;
})();"""


def run(
    stack: Stack, *, drones: int, history: int, rate: float, seconds: float, say: Say
) -> dict[str, Any]:
    with bench_force(stack, "bench-map", say, partitions=6) as (api, force_id, gateway):
        officer = f"officer@{force_id}.bench"
        added = api.add_member(force_id, officer, "Bench officer", "officer")
        # No alert but the history's: what is on the map is what the benchmark made.
        fleet = Fleet(drones=drones, seed=12, low_score_share=0.0)
        keys = _keys(api, force_id, fleet, say)
        # Police data: the officer counts the alerts, the platform's admin may not.
        police = ControlPlane(api.url)
        police.sign_in(officer, str(added["initial_password"]))
        raised = _history(police, gateway, force_id, fleet.drone_ids[0], keys, history, say)
        load = _Load(fleet, gateway, keys, rate)
        load.start()
        try:
            # Every drone reports once before the page opens, as a fleet in the air has.
            time.sleep(max(5.0, drones / rate * 1.2))
            figures = _in_a_browser(
                api.url, (officer, str(added["initial_password"])), drones, history, seconds,
                say,
            )  # fmt: skip
        finally:
            background = load.stop()
    return {
        "benchmark": "map",
        "what": "an officer's dashboard with a fleet reporting and a history of open alerts",
        "drones": drones,
        "alerts_raised_before": raised,
        **figures,
        "background_load": background,
    }


def _keys(api: ControlPlane, force_id: str, fleet: Fleet, say: Say) -> dict[str, str]:
    keys = {}
    for n, drone in enumerate(fleet.drone_ids, start=1):
        api.register_drone(force_id, drone)
        keys[drone] = str(api.issue_key(force_id, drone)["key"])
        if n % 250 == 0 or n == fleet.drones:
            say(f"{n} of {fleet.drones} drones registered with a key")
    return keys


def _history(
    police: ControlPlane,
    gateway: str,
    force_id: str,
    drone: str,
    keys: dict[str, str],
    alerts: int,
    say: Say,
) -> int:
    """``alerts`` alerts raised through the gateway and the alerter: reports of a hundred
    citizens each, every one at the lowest score. Returns how many the force counts."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    rng = random.Random(13)
    with httpx2.Client(timeout=30) as client:
        for start in range(0, alerts, _PER_REQUEST):
            batch = [
                Report(
                    report_id=uuid.uuid4(),
                    drone_id=drone,
                    timestamp=datetime.now(UTC),
                    latitude=48.8566 + rng.uniform(-0.06, 0.06),
                    longitude=2.3522 + rng.uniform(-0.1, 0.1),
                    citizens=[Citizen(name=f"History Citizen {n:06d}", score=0.0)],
                    words=["history"],
                ).model_dump(mode="json")
                for n in range(start, min(start + _PER_REQUEST, alerts))
            ]
            # Past the gateway's first keys read: its first answers may still be 401.
            deadline = time.monotonic() + 30
            while True:
                answer = client.post(
                    f"{gateway}/v1/reports",
                    json=batch,
                    headers={"Authorization": f"Bearer {keys[drone]}"},
                )
                if answer.status_code == 202:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway refused history: {answer.status_code}")
                time.sleep(0.5)
    deadline = time.monotonic() + 600
    raised = 0
    while time.monotonic() < deadline:
        query = urlencode({"since": since.isoformat()})
        figures = police.call("GET", f"/v1/forces/{force_id}/alerts/reaction?{query}").json()
        raised = int(figures["raised"])
        if raised >= alerts:
            say(f"{raised} alerts raised for the history")
            return raised
        time.sleep(2)
    raise TimeoutError(f"only {raised} of {alerts} history alerts raised in 10 minutes")


def _in_a_browser(
    control_plane: str, login: tuple[str, str], drones: int, history: int, seconds: float,
    say: Say,
) -> dict[str, Any]:  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium(say)), args=list(CHROMIUM_ARGS)
        )
        try:
            began = time.monotonic()
            page = signed_in_page(
                browser, control_plane, login, live_within=600, init_script=_MONITOR
            )
            live_at = time.monotonic() - began
            until_true(
                page, f"() => Object.keys(window.peaceland.onMap).length >= {history}", 300, 0.5
            )
            alerts_at = time.monotonic() - began
            until_true(page, f"() => window.peaceland.drones >= {drones}", 120, 0.5)
            drones_at = time.monotonic() - began
            loading = _collected(page)
            say(f"{history} alerts on the map after {alerts_at:.1f} s, "
                f"{drones} drones after {drones_at:.1f} s")  # fmt: skip
            # The open alerts' pages the page asked for, as the browser timed them.
            pages = page.evaluate(
                "() => performance.getEntriesByType('resource')"
                ".filter((e) => e.name.includes('/alerts?'))"
                ".map((e) => [e.startTime, e.responseEnd])"
            )
            live = _watch(page, seconds)
            say(f"frames while the drones move: p50 {live['frame_ms']['p50']} ms")
            panning = _watch(page, seconds, _drag_and_zoom)
            say(f"frames while the map is dragged: p50 {panning['frame_ms']['p50']} ms")
            on_map = page.evaluate("() => Object.keys(window.peaceland.onMap).length")
        finally:
            browser.close()
    return {
        "alerts_on_map": on_map,
        "open_alert_pages": {
            "pages": len(pages),
            "answer_ms": percentiles(sorted(end - start for start, end in pages)),
            "first_asked_to_last_answered_ms": round(pages[-1][1] - pages[0][0], 1)
            if pages
            else None,
        },
        "seconds_until_feed_live": round(live_at, 2),
        "seconds_until_alerts_on_map": round(alerts_at, 2),
        "seconds_until_drones_on_map": round(drones_at, 2),
        "while_loading": loading,
        "while_drones_move": live,
        "while_dragging_and_zooming": panning,
    }


def _watch(page: Page, seconds: float, act: Callable[[Page, float], None] | None = None) -> Any:
    """The page's frames and long tasks for ``seconds``, while ``act`` runs (if given)."""
    page.evaluate("() => { const m = window.benchMonitor; m.frames = []; m.long = []; "
                  "m.since = performance.now(); }")  # fmt: skip
    if act is None:
        time.sleep(seconds)
    else:
        act(page, seconds)
    return _collected(page)


def _collected(page: Page) -> dict[str, Any]:
    """The frames and long tasks the page's monitor saw since it started or was last reset
    (the window: from then to now, as the page's clock measures it)."""
    found = page.evaluate("() => { const m = window.benchMonitor; "
                          "return { frames: m.frames, long: m.long, "
                          "since: m.since ?? 0, until: performance.now() }; }")  # fmt: skip
    frames = sorted(float(f) for f in found["frames"])
    window = (float(found["since"]), float(found["until"]))
    length = window[1] - window[0]
    return {
        "seconds": round(length / 1000, 2),
        "frames": len(frames),
        "frames_per_second": round(len(frames) / (length / 1000), 1),
        "frame_ms": percentiles(frames),
        "long_tasks": sum(1 for start, end in found["long"] if end > window[0]),
        "main_thread_in_long_tasks_share": round(covered_ms(found["long"], window) / length, 3),
    }


def covered_ms(spans: list[list[float]], window: tuple[float, float]) -> float:
    """Milliseconds of ``window`` under at least one of ``spans`` (they may overlap)."""
    covered, reached = 0.0, window[0]
    for began, ended in sorted(spans):
        start, end = max(began, reached), min(ended, window[1])
        if end > start:
            covered += end - start
            reached = end
    return covered


def _drag_and_zoom(page: Page, seconds: float) -> None:
    """An officer's hand: drags across the map back and forth, zooming in and out."""
    box = page.locator("#map").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    end = time.monotonic() + seconds
    step = 0
    while time.monotonic() < end:
        page.mouse.move(x, y)
        page.mouse.down()
        dx = 200 if step % 2 == 0 else -200
        page.mouse.move(x + dx, y + dx / 2, steps=20)
        page.mouse.up()
        page.mouse.wheel(0, -240 if step % 2 == 0 else 240)
        step += 1
