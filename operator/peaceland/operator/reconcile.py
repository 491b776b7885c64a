"""Reconciling one police force: its topics, its keyspace, its credentials and its
consumers.

A reconcile, as the kopf handlers run it, is three moves:

1. fetch: the force as the API server holds it, its spec typed (``handlers._force``);
2. run the steps: :func:`reconcile`, below, one module of ``peaceland.operator.steps`` each;
3. build the status: :func:`peaceland.operator.conditions.status_after` turns the outcome
   into the typed ``PoliceForceStatus``, which the handler patches when it changed.

Plain, typed and idempotent. Each step runs even when another fails, so the status says
everything that is wrong at once, and a Kafka outage does not stop the keyspace or the
consumers from being made.
"""

from __future__ import annotations

from peaceland.operator.kube import Workloads
from peaceland.operator.progress import Progress
from peaceland.operator.results import Cause, Force, Outcome
from peaceland.operator.servers import Servers
from peaceland.operator.steps.claim import claim_step
from peaceland.operator.steps.consumers import consumers_step
from peaceland.operator.steps.credentials import credentials_step, retire_step
from peaceland.operator.steps.keyspace import keyspace_step
from peaceland.operator.steps.progress import progress_step
from peaceland.operator.steps.topics import topics_step


def reconcile(
    force: Force, servers: Servers, workloads: Workloads, cause: Cause, progress: Progress
) -> Outcome:
    """Make the force's topics, keyspace and consumers match its spec; say how it went,
    and whether the consumers keep up.

    First the force's claim on its id: until it is held, nothing is touched, for another
    namespace's PoliceForce of the same name may own those topics and that keyspace.
    """
    refused = claim_step(force, servers, workloads)
    if refused is not None:
        return refused
    outcome = Outcome(steps=[])
    outcome.steps.append(topics_step(force, servers, outcome.events, cause))
    outcome.steps.append(keyspace_step(force, servers, outcome.events))
    issued, credentials = credentials_step(force, servers, workloads, outcome.events)
    version = credentials.version if credentials is not None else None
    consumers = consumers_step(force, servers.settings, workloads, outcome.events, cause, version)
    if issued.ok and consumers.ok and credentials is not None:
        # Every consumer runs on this generation: the others may go.
        issued = retire_step(force, servers, credentials, outcome.events) or issued
    outcome.steps += [issued, consumers]
    step, outcome.verdicts = progress_step(force, servers, progress)
    if step is not None:
        outcome.steps.append(step)
    return outcome
