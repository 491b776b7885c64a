"""The force's claim on its id: until it is held, nothing is touched, for another namespace's
PoliceForce of the same name may own those topics and that keyspace."""

from __future__ import annotations

import logging

from peaceland.operator.kube import Workloads
from peaceland.operator.results import Event, Force, Outcome, Step
from peaceland.operator.servers import Servers
from peaceland.tenants.errors import NameTakenError, ProvisioningError
from peaceland.tenants.provisioning.claims import claim

log = logging.getLogger(__name__)


def claim_step(force: Force, servers: Servers, workloads: Workloads) -> Outcome | None:
    """None once the force holds its id; else the outcome to report, every condition saying
    why (nothing was touched)."""
    try:
        claim(servers.claims(), force.name, force.owner, workloads.force_exists)
    except ProvisioningError as exc:
        if isinstance(exc, NameTakenError):  # who holds it: for us, not for the tenant
            log.warning("%s asks for the id held by %s: refused", force.owner, exc.holder)
        failed = Step("TopicsReady", False, exc.reason, str(exc))
        return Outcome(
            steps=[
                failed,
                failed.as_condition("KeyspaceReady"),
                failed.as_condition("ConsumersReady"),
            ],
            events=[Event("Warning", exc.reason, str(exc))],
            permanent=str(exc),
        )
    except Exception as exc:  # the driver raises several types; every one means "not now"
        waiting = Step(
            "TopicsReady",
            False,
            "CassandraUnavailable",
            f"cannot check who owns the id {force.name!r} (Cassandra "
            f"{servers.settings.cassandra_contact_points}): {exc}",
            retry=True,
        )
        return Outcome(
            steps=[
                waiting,
                waiting.as_condition("KeyspaceReady"),
                waiting.as_condition("ConsumersReady"),
            ]
        )
    return None
