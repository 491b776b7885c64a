"""What every route reading a force's police data shares: who may (the force's own
officers and analysts, never the platform's admins), and the data servers' failures told
as statuses (404, 409, 503), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from cassandra import DriverException, RequestExecutionException, Unauthorized
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import ErrorMessage
from confluent_kafka import KafkaException
from fastapi import Depends, Request

from peaceland.api.auth import ForceCaller, force_role
from peaceland.api.force_data import (
    ForceData,
    ForceDataUnavailableError,
    ForceNotProvisionedError,
    describe,
)
from peaceland.api.forces import unavailable
from peaceland.api.kube import KubernetesUnavailableError
from peaceland.api.models import Role
from peaceland.api.problems import Problem

# Police data: the force's own officers and analysts only, not the platform's admins.
Reader = Annotated[
    ForceCaller, Depends(force_role(Role.officer, Role.analyst, platform_admin=False))
]
Officer = Annotated[ForceCaller, Depends(force_role(Role.officer, platform_admin=False))]


def force_data(request: Request) -> ForceData:
    data: ForceData | None = request.app.state.force_data
    if data is None:
        raise Problem(503, "the control plane is not connected to the forces' data servers")
    return data


@contextmanager
def served(request: Request, force_id: str) -> Iterator[None]:
    """A force not provisioned as 404 (none) or 409 (not yet); the data servers' failures
    as 503 (try again), never a 500."""
    try:
        yield
    except ForceNotProvisionedError as exc:
        try:
            found = request.app.state.forces.get(force_id)
        except KubernetesUnavailableError as error:
            raise unavailable(error) from None
        if found is None:
            raise Problem(404, f"no police force {force_id}") from None
        raise Problem(409, f"{exc}: its alerts are served once it is") from None
    except ForceDataUnavailableError as exc:
        raise Problem(503, str(exc), headers={"Retry-After": "5"}) from None
    except (
        NoHostAvailable,
        Unauthorized,
        DriverException,
        RequestExecutionException,
        ErrorMessage,  # CAS_WRITE_UNKNOWN and other codes the driver does not map
        KafkaException,
    ) as exc:
        raise Problem(
            503, f"the force's data servers did not answer: {describe(exc)}",
            headers={"Retry-After": "5"},
        ) from None  # fmt: skip
