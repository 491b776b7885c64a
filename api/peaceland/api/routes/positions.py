"""Where a force's drones are: each one's last position, read from the force's reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from peaceland.api.drones import DroneWatches, position_out
from peaceland.api.problems import Problem, responses
from peaceland.api.routes.police_data import Reader, force_data, served
from peaceland.api.schemas import DronePositionOut, DronePositions

router = APIRouter(prefix="/v1/forces/{force_id}/positions", tags=["alerts"])


def watches(request: Request) -> DroneWatches:
    force_data(request)
    found: DroneWatches = request.app.state.drones
    return found


@router.get("", responses=responses(401, 403, 404, 409, 503))
def drone_positions(
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
) -> DronePositions:
    """The last position of each of the force's drones that reported lately, newest first.
    The dashboard gets the same, live, as `drones` events of its feed."""
    with served(request, caller.force_id), watches(request).watching(caller.force_id) as watch:
        complete = watch.ready.wait(wait)
        if not complete and watch.trouble is not None:
            raise Problem(
                503, f"the force's reports cannot be read now: {watch.trouble}",
                headers={"Retry-After": "5"},
            )  # fmt: skip
        _, positions = watch.positions.since(0)
    return DronePositions(
        drones=[DronePositionOut.model_validate(position_out(p)) for p in positions],
        complete=complete,
        lookback_seconds=request.app.state.settings.drones_lookback_seconds,
    )
