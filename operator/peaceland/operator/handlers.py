"""The kopf handlers: thin translations between PoliceForce resources and ``reconcile``.

- create, spec update, resume (operator start): reconcile; status and Events say what
  happened; ``TemporaryError`` with exponential backoff while Kafka, Cassandra or the API
  server does not answer; ``PermanentError`` for a spec that can never work.
- a timer per force: until the consumers are available, checks them every
  ``poll_interval``; every ``progress_interval``, whether each consumer group commits while
  reports wait (Kafka's offsets); every ``drift_interval``, a full reconcile that repairs
  drift (a topic deleted by hand, an edited Deployment). A per-force lock keeps it from
  running beside the change or delete handler, and it acts only on the force's live
  generation.
- a timer per force, every ``usage_interval``: the bytes it stores measured into
  ``status.usage``, which the control plane bills.
- delete: the finalizer applies the deletion policy, then lets the resource go.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

import kopf
from pydantic import ValidationError

from peaceland.operator import metrics
from peaceland.operator.conditions import merge_step, read_status, status_after, timestamp, wire
from peaceland.operator.kube import Workloads
from peaceland.operator.limits import refusals
from peaceland.operator.progress import Progress, Verdict
from peaceland.operator.reconcile import reconcile
from peaceland.operator.results import Cause, Event, Force, Outcome
from peaceland.operator.servers import Servers
from peaceland.operator.settings import OperatorSettings
from peaceland.operator.steps.consumers import availability_step
from peaceland.operator.steps.progress import progress_step
from peaceland.operator.teardown import teardown
from peaceland.operator.usage import DiskUsage, measure
from peaceland.tenants.errors import InvalidForceIdError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.policeforce import GROUP, PLURAL, VERSION, Condition, ForceUsage, spec_from
from peaceland.tenants.workloads import status_names

log = logging.getLogger(__name__)

FINALIZER = f"{GROUP}/finalizer"
_RESOURCE = (GROUP, VERSION, PLURAL)


def registry(settings: OperatorSettings, servers: Servers, workloads: Workloads) -> Any:
    """The operator's handlers, bound to its settings and clients."""
    reg = kopf.OperatorRegistry()

    @kopf.on.startup(registry=reg)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        ours = servers.settings
        settings.persistence.finalizer = FINALIZER
        # Kopf's bookkeeping in our own annotations; the status belongs to the schema.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # Our own Events say what happened; kopf's log lines become Events only when
        # something goes wrong.
        settings.posting.level = logging.WARNING
        settings.execution.max_workers = ours.workers
        settings.networking.request_timeout = ours.request_timeout * 3
        settings.watching.server_timeout = 300

    @kopf.on.login(registry=reg)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The pod's ServiceAccount in a cluster, else KUBECONFIG: the same order as the
        # lightkube client the handlers use.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.cleanup(registry=reg)
    def close(**_: Any) -> None:
        servers.close()

    @kopf.on.create(*_RESOURCE, registry=reg, id="provision")
    @kopf.on.update(*_RESOURCE, registry=reg, id="provision", field="spec")
    @kopf.on.resume(*_RESOURCE, registry=reg, id="provision")
    def provision(
        body: kopf.Body,
        status: kopf.Status,
        patch: kopf.Patch,
        retry: int,
        reason: str,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        cause: Cause = reason if reason in ("create", "update", "resume") else "resume"  # type: ignore[assignment]
        force = _force(
            body, patch, servers.settings, "enforce" if cause in ("create", "update") else "warn"
        )
        with _guard(memo):
            outcome = _reconcile(force, cause, memo, servers, workloads)
            _record(body, status, patch, force, outcome)
        if outcome.permanent:
            patch.status["phase"] = "Failed"
            raise kopf.PermanentError(outcome.permanent)
        if outcome.retry:
            raise kopf.TemporaryError(outcome.failures(), delay=_backoff(retry, servers))

    @kopf.timer(*_RESOURCE, registry=reg, id="watch", interval=settings.poll_interval)
    def watch(
        body: kopf.Body,
        meta: kopf.Meta,
        status: kopf.Status,
        patch: kopf.Patch,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        _watch(body, meta, status, patch, memo, servers, workloads)

    disk = DiskUsage(max_age=settings.usage_interval / 2, timeout=settings.request_timeout)

    @kopf.timer(*_RESOURCE, registry=reg, id="usage", interval=settings.usage_interval)
    def usage(meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
        _usage(meta, status, patch, servers, disk)

    @kopf.on.delete(*_RESOURCE, registry=reg, id="teardown")
    def delete(
        body: kopf.Body,
        spec: kopf.Spec,
        patch: kopf.Patch,
        retry: int,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        _teardown(body, spec, patch, retry, memo, servers, workloads)

    return reg


def _watch(
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    servers: Servers,
    workloads: Workloads,
) -> None:
    # Leave a force alone until its change handler has seen its latest spec, while its
    # spec cannot work (a spec change retries it), and once it is being deleted.
    observed = read_status(status)
    if (
        observed.observed_generation != meta.get("generation")
        or observed.phase in ("Failed", "Deleting")
        or meta.get("deletionTimestamp")
    ):
        return
    settings = servers.settings
    now = time.monotonic()
    drift = now - memo.get("last_reconcile", 0.0) >= settings.drift_interval
    check_progress = now - memo.get("last_progress", 0.0) >= settings.progress_interval
    if not drift and not check_progress and observed.phase == "Ready":
        return
    guard = _guard(memo)
    if not guard.acquire(blocking=False):
        return  # the change or delete handler is at work: it will say how it went
    try:
        # This timer's body is a snapshot from when it fired: act only if the spec is
        # still the one it describes and the force is not being deleted.
        force = _force(body, patch, settings)
        if memo.get("deleted") or workloads.generation(force.namespace, force.name) != (
            force.generation
        ):
            return
        if drift:
            outcome = _reconcile(force, "drift", memo, servers, workloads)
        else:
            fresh = [availability_step(force, servers.settings, workloads)]
            verdicts: list[Verdict] = []
            if check_progress:
                memo["last_progress"] = now
                progress, verdicts = progress_step(force, servers, _progress(memo, servers))
                if progress is not None:
                    fresh.append(progress)
            outcome = Outcome(steps=merge_step(observed.conditions, *fresh), verdicts=verdicts)
            metrics.observe_conditions(force.namespace, force.name, outcome)
            metrics.observe_progress(force.namespace, force.name, outcome.verdicts)
        _record(body, status, patch, force, outcome)
    finally:
        guard.release()


def _usage(
    meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, servers: Servers, disk: DiskUsage
) -> None:
    """Measure a provisioned force's storage into its status; a failed measure is logged
    and tried again at the next interval (the last figure stands meanwhile)."""
    if meta.get("deletionTimestamp") or status.get("phase") in (None, "Pending", "Deleting"):
        return
    try:
        # From the name, never from the status (which anyone allowed to patch it can edit).
        keyspace = resources_for(meta.get("name") or "").keyspace
    except InvalidForceIdError:
        return
    previous = None
    # An unreadable one (another version's) is written anew.
    with contextlib.suppress(ValidationError):
        previous = ForceUsage.model_validate(status.get("usage") or {})
    try:
        measured = measure(disk, servers.cassandra(), keyspace, datetime.now(UTC), previous)
    except Exception as exc:
        log.warning("usage of %s/%s not measured: %s", meta.get("namespace"), meta.get("name"), exc)
        return
    patch.status["usage"] = wire(measured)


def _teardown(
    body: kopf.Body,
    spec: kopf.Spec,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    servers: Servers,
    workloads: Workloads,
) -> None:
    name, namespace = body.metadata.name, body.metadata.namespace
    assert name is not None
    assert namespace is not None
    patch.status["phase"] = "Deleting"
    policy = str(spec.get("deletionPolicy", "Retain"))
    with _guard(memo):
        memo["deleted"] = True  # a timer that fires from now on does nothing
        try:
            removed = workloads.delete(namespace, name, str(body.metadata.uid))
            events = teardown(name, namespace, policy, servers)
        except Exception as exc:  # any server failure: keep the finalizer, try again
            raise kopf.TemporaryError(
                f"deletion ({policy}) not finished: {exc}", delay=_backoff(retry, servers)
            ) from exc
    if removed:
        events.insert(0, Event("Normal", "ConsumersDeleted", f"deleted {', '.join(removed)}"))
    metrics.forget(namespace, name)
    _post(body, events)


def _reconcile(
    force: Force, cause: Cause, memo: kopf.Memo, servers: Servers, workloads: Workloads
) -> Outcome:
    """A full reconcile, timed and counted; the next drift reconcile is due from its start."""
    memo["last_reconcile"] = memo["last_progress"] = began = time.monotonic()
    outcome = reconcile(force, servers, workloads, cause, _progress(memo, servers))
    metrics.observe(force.namespace, force.name, cause, outcome, time.monotonic() - began)
    metrics.observe_progress(force.namespace, force.name, outcome.verdicts)
    return outcome


def _progress(memo: kopf.Memo, servers: Servers) -> Progress:
    """What the operator remembers of the force's consumer groups between checks."""
    progress: Progress = memo.setdefault(
        "progress", Progress(stall_after=servers.settings.stall_after)
    )
    return progress


def _backoff(retry: int, servers: Servers) -> float:
    """Seconds before kopf retries a handler: 1, 2, 4 … up to ``retry_max_delay``."""
    return min(2.0**retry, servers.settings.retry_max_delay)


def _guard(memo: kopf.Memo) -> threading.Lock:
    """The force's own lock: its change, timer and delete handlers run in separate worker
    threads, and must not reconcile it at once (a drift reconcile of the old spec finishing
    after a spec change would put the old spec back)."""
    lock: threading.Lock = memo.setdefault("guard", threading.Lock())
    return lock


def _force(
    body: kopf.Body,
    patch: kopf.Patch,
    settings: OperatorSettings,
    limits: Literal["enforce", "warn", "skip"] = "skip",
) -> Force:
    """The force as its spec says, or a permanent failure for a spec that cannot work.

    ``limits``: a new spec (create, update) that asks more than this installation allows
    is refused (``enforce``); a force made before a bound was lowered keeps running and
    being repaired, with a Warning at the operator's start (``warn``): refusing it then
    would leave it unmanaged, not undone.
    """
    meta = body.metadata
    try:
        spec = spec_from(dict(body.spec))
        status_names(meta.name or "")  # the name must be able to name topics and a keyspace
    except (ValidationError, InvalidForceIdError) as exc:
        _refuse(body, patch, "InvalidSpec", _spec_errors(exc), exc)
    refused = refusals(spec, settings) if limits != "skip" else []
    if refused and limits == "enforce":
        _refuse(body, patch, "NotAllowed", "; ".join(refused))
    if refused:
        message = f"{'; '.join(refused)}; running as made, its next change of spec must fit"
        kopf.event(body, type="Warning", reason="NotAllowed", message=message[:1024])
    return Force(
        name=meta.name or "",
        namespace=meta.namespace or "default",
        uid=meta.uid or "",
        generation=int(meta.get("generation") or 0),
        spec=spec,
    )


def _refuse(
    body: kopf.Body, patch: kopf.Patch, reason: str, message: str, cause: Exception | None = None
) -> NoReturn:
    """Fail the force for good (until its spec changes): nothing is touched."""
    patch.status["phase"] = "Failed"
    patch.status["observedGeneration"] = body.metadata.get("generation")
    patch.status["conditions"] = [
        wire(
            Condition(
                type="Ready",
                status="False",
                reason=reason,
                message=message[:4096],
                last_transition_time=timestamp(),
            )
        )
    ]
    kopf.event(body, type="Warning", reason=reason, message=message[:1024])
    raise kopf.PermanentError(f"the spec can never work here: {message}") from cause


def _spec_errors(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def _record(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, force: Force, outcome: Outcome
) -> None:
    """Write the outcome into the status (only when something changed) and post Events."""
    current = read_status(status)
    wanted, changes = status_after(current, force, outcome)
    outcome.events.extend(changes)
    if wanted != current:
        for key, value in wire(wanted).items():
            if key != "usage":  # the usage timer's own; this snapshot's may be older
                patch.status[key] = value
    _post(body, outcome.events)


def _post(body: kopf.Body, events: list[Event]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
