"""What a PoliceForce may ask of this platform: its consumers' image from an allow-list, and
its partitions, copies, retention and replicas within the operator's bounds.

A PoliceForce is written by a tenant; the operator runs its consumers with the platform's
credentials and grows its topics on the platform's brokers. The CRD bounds what is valid;
these bounds, from the operator's settings (chart values), say what this installation
allows. The control plane will take them from the force's plan.
"""

from __future__ import annotations

import re
from typing import Final

from peaceland.operator.settings import OperatorSettings
from peaceland.tenants.policeforce import PoliceForceSpec

#: An image reference's repository: everything before its tag or digest.
_TAG_OR_DIGEST: Final = re.compile(r"(@.*|:[^/:]*)$")


def repository(image: str) -> str:
    """``registry/path/name`` of ``registry/path/name:tag`` or ``…@sha256:…``."""
    return _TAG_OR_DIGEST.sub("", image)


def refusals(spec: PoliceForceSpec, settings: OperatorSettings) -> list[str]:
    """Why this installation refuses ``spec``, one sentence each; empty when it allows it."""
    out = []
    image = spec.consumers.image
    if repository(image) not in settings.allowed_images:
        out.append(
            f"spec.consumers.image {image!r} is not allowed here; allowed repositories: "
            f"{', '.join(settings.allowed_images) or 'none'}"
        )
    # Copies of each row in all: replicationFactor with SimpleStrategy, the sum of the data
    # centres' with NetworkTopologyStrategy (only one of the two is used).
    if spec.cassandra.replication_strategy == "SimpleStrategy":
        copies_field, copies = ".replicationFactor", spec.cassandra.replication_factor
    else:
        copies_field, copies = (
            ".dataCenters (copies in all)",
            sum(spec.cassandra.data_centers.values()),
        )
    bounds = (
        ("spec.kafka.partitions", spec.kafka.partitions, settings.max_partitions),
        (
            "spec.kafka.replicationFactor",
            spec.kafka.replication_factor,
            settings.max_kafka_replication_factor,
        ),
        (
            "spec.kafka.retentionHours",
            spec.kafka.retention_hours,
            settings.max_kafka_retention_hours,
        ),
        ("spec.cassandra" + copies_field, copies, settings.max_cassandra_replication_factor),
        ("spec.retentionDays", spec.retention_days, settings.max_retention_days),
        ("spec.consumers.replicas", spec.consumers.replicas, settings.max_replicas),
    )
    out += [
        f"{field} is {value}; this installation allows at most {bound}"
        for field, value, bound in bounds
        if value > bound
    ]
    return out
