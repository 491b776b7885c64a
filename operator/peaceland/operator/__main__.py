"""``python -m peaceland.operator``: run the PoliceForce operator.

It logs in with the pod's ServiceAccount in a cluster, else with ``KUBECONFIG``.
"""

from __future__ import annotations

import logging
import secrets

import httpx2
import kopf
from lightkube import Client, KubeConfig

from peaceland.operator import metrics
from peaceland.operator.handlers import registry
from peaceland.operator.kube import FIELD_MANAGER, Workloads
from peaceland.operator.servers import Servers
from peaceland.operator.settings import OperatorSettings
from peaceland.tenants.access import settings_or_exit

log = logging.getLogger("peaceland.operator")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per request is noise; failures surface through the handlers.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(_quiet_timer)
    settings = settings_or_exit(OperatorSettings, "operator")
    client = Client(
        KubeConfig.from_env(),
        field_manager=FIELD_MANAGER,
        timeout=httpx2.Timeout(settings.request_timeout),
    )
    servers = Servers(settings)
    metrics.serve(settings.metrics_port)
    # A random priority per replica: the highest live replica acts, the others wait for it
    # to stop (equal priorities would freeze every replica).
    priority = settings.priority if settings.priority is not None else secrets.randbelow(1 << 30)
    log.info(
        "serving PoliceForces in %s; Kafka %s, Cassandra %s; peering %s (priority %d)",
        ", ".join(settings.namespaces) or "every namespace",
        settings.kafka_bootstrap_servers,
        settings.cassandra_contact_points,
        settings.peering or "off",
        priority,
    )
    kopf.run(
        registry=registry(settings, servers, Workloads(client)),
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.peering is None,
        peering_name=settings.peering,
        priority=priority,
        liveness_endpoint=(
            f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
        ),
    )


def _quiet_timer(record: logging.LogRecord) -> bool:
    # kopf says so every poll_interval for every force.
    return not record.getMessage().startswith("Timer 'watch' succeeded")


if __name__ == "__main__":
    main()
