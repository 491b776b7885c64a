"""What a deleted force's deletion policy asks for its data."""

from __future__ import annotations

import logging

from peaceland.analytics.lake import delete_force_lake
from peaceland.operator.results import Event
from peaceland.operator.servers import Servers
from peaceland.operator.steps.credentials import retire
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning.claims import owner_of, release
from peaceland.tenants.provisioning.keyspace import drop_keyspace
from peaceland.tenants.provisioning.topics import delete_topics

log = logging.getLogger(__name__)


def teardown(force_name: str, namespace: str, policy: str, servers: Servers) -> list[Event]:
    """What the deletion policy asks for the force's data: ``Delete`` removes its topics,
    keyspace and analytics lake, ``Retain`` keeps them all; its credentials are removed from
    the servers and the id's claim released either way (a PoliceForce of that name created
    later adopts retained data). Only the owner's data is touched. Raises while a server is
    unreachable (retry)."""
    resources = resources_for(force_name)
    owner = f"{namespace}/{force_name}"
    session = servers.claims()
    holder = owner_of(session, force_name)
    if holder != owner:
        # Never its data (NameTaken), or its claim is gone (a Retain force's data released
        # for adoption): either way, not this resource's to delete. Who holds it is another
        # tenant's business: our log says, the tenant's Event does not.
        log.info("deleting %s: the id is held by %s, its data is left alone", owner, holder)
        whose = "is held by another police force" if holder else "is claimed by no PoliceForce"
        return [Event("Normal", "NotOwner", f"the id {whose}: its data is left alone")]
    # The force's principals and role go whatever the policy: retained data is kept for a
    # force made again later, which is issued credentials of its own.
    retire(servers, force_name, keep=None)
    if policy != "Delete":
        release(session, force_name, owner)
        return [
            Event(
                "Normal",
                "DataRetained",
                f"deletionPolicy Retain: kept topics {', '.join(resources.topics)} and keyspace "
                f"{resources.keyspace}",
            )
        ]
    delete_topics(servers.kafka(), resources, timeout=servers.settings.request_timeout)
    drop_keyspace(session, resources.keyspace)
    # Its lake last: on an object store, its users are gone already (retired above), so a
    # lake consumer still running cannot write anything back.
    lake = servers.lake_storage()
    files = delete_force_lake(lake, force_name) if lake is not None else None
    release(session, force_name, owner)
    said = f" and its analytics lake ({files} files)" if files is not None else ""
    return [
        Event(
            "Normal",
            "DataDeleted",
            f"deletionPolicy Delete: deleted topics {', '.join(resources.topics)}, keyspace "
            f"{resources.keyspace}{said}",
        )
    ]
