"""Where a force's drones are: each one's last position, read from the force's reports."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from peaceland.api.drones import DroneWatch, DroneWatches, position_out
from peaceland.api.problems import Problem, responses
from peaceland.api.routes.police_data import Reader, force_data, served
from peaceland.api.schemas import DronePositions

router = APIRouter(prefix="/v1/forces/{force_id}/positions", tags=["alerts"])

#: How often a request waiting for a reader that just started looks again.
_LOOK_SECONDS = 0.1


@router.get("", response_model=DronePositions, responses=responses(401, 403, 404, 409, 503))
async def drone_positions(
    request: Request,
    caller: Reader,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=30,
            description="Seconds to wait, at most, for a reader that has just started to "
            "read the force's recent reports (`complete`).",
        ),
    ] = 10.0,
) -> Response:
    """The last position of each of the force's drones that reported lately, newest first.
    The dashboard gets the same, live, as `drones` events of its feed."""
    force_data(request)
    watches: DroneWatches = request.app.state.drones
    with served(request, caller.force_id):
        watch = await run_in_threadpool(watches.attach, caller.force_id)
    try:
        # Waited for on the loop, not in a worker thread: waiting requests hold none of the
        # threads every other route needs.
        deadline = time.monotonic() + wait
        while not watch.ready.is_set():
            if watch.trouble is not None:
                raise Problem(
                    503, f"the force's reports cannot be read now: {watch.trouble}",
                    headers={"Retry-After": "5"},
                )  # fmt: skip
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(_LOOK_SECONDS)
        lookback = watches.lookback.total_seconds()
        body = await run_in_threadpool(_encoded, watch, lookback)
    finally:
        watches.detach(watch)  # never blocks
    return Response(body, media_type="application/json")


def _encoded(watch: DroneWatch, lookback: float) -> bytes:
    """The answer, encoded off the loop (a fleet may be large)."""
    complete = watch.ready.is_set()
    _, positions = watch.positions.since(0)
    body = {
        "drones": [position_out(p) for p in positions],
        "complete": complete,
        "lookback_seconds": lookback,
    }
    return json.dumps(body, separators=(",", ":")).encode()
