"""Kafka client quotas of a force's principals: how many bytes a second its gateway producer
may write, from what the force bought.

A producer above its quota is not refused: the broker delays its responses (and says by how
much, ``throttle_time_ms``) until its rate falls back under the quota, so one force in a
riot slows down alone instead of filling the brokers' disks and network for every force.

confluent-kafka (librdkafka) has no client-quota API; kafka-python ships Kafka's
AlterClientQuotas and DescribeClientQuotas requests, which this module sends through its
admin client's connection manager (one request each, no other use of that library).
"""

from __future__ import annotations

from typing import Any, Final

from kafka import KafkaAdminClient  # type: ignore[import-untyped]
from kafka.protocol.admin import (  # type: ignore[import-untyped]
    AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
)

from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.kafka import KafkaAccess

#: Bytes a second the gateway's producer may write per report a second the force bought:
#: a report averages about 570 bytes of JSON, its largest valid ones are 1.3 MB; 4 KiB a
#: report leaves room for large reports and a riot's bursts above the sustained rate
#: (Kafka measures a quota over its last 11 seconds).
PRODUCE_BYTES_PER_REPORT: Final = 4096
PRODUCER_BYTE_RATE: Final = "producer_byte_rate"
_MATCH_EXACT: Final = 0


def produce_quota(max_reports_per_second: int) -> int:
    """The gateway principal's producer_byte_rate for a force that bought this rate."""
    return max_reports_per_second * PRODUCE_BYTES_PER_REPORT


def quota_admin(access: KafkaAccess, timeout: float = 30.0) -> Any:
    """A kafka-python admin client signed in as ``access`` (the platform's administrator:
    altering quotas needs ALTER_CONFIGS on the cluster)."""
    sasl = access.protocol.startswith("SASL")
    return KafkaAdminClient(
        bootstrap_servers=access.bootstrap_servers.split(","),
        client_id="peaceland-quotas",
        security_protocol=access.protocol,
        sasl_mechanism=access.sasl_mechanism if sasl else None,
        sasl_plain_username=access.username if sasl else None,
        sasl_plain_password=access.password if sasl else None,
        ssl_cafile=access.ssl_ca_location,
        request_timeout_ms=int(timeout * 1000),
    )


def _send(admin: Any, request: Any) -> Any:
    # kafka-python's own admin methods send their requests this way; it has no public call
    # for client quotas yet.
    async def send() -> Any:
        return await admin._manager.send(request)

    return admin._manager.run(send)


def set_produce_quota(admin: Any, principal: str, bytes_per_second: int | None) -> None:
    """Set (or, with None, remove) ``principal``'s producer_byte_rate."""
    entity = AlterClientQuotasRequest.EntryData.EntityData(
        entity_type="user", entity_name=principal
    )
    op = AlterClientQuotasRequest.EntryData.OpData(
        key=PRODUCER_BYTE_RATE,
        value=float(bytes_per_second or 0),
        remove=bytes_per_second is None,
    )
    request = AlterClientQuotasRequest(
        entries=[AlterClientQuotasRequest.EntryData(entity=[entity], ops=[op])],
        validate_only=False,
    )
    response = _send(admin, request)
    for entry in response.entries:
        if entry.error_code:
            raise ProvisioningError(
                "KafkaQuotaRefused",
                f"Kafka refused the quota of {principal}: "
                f"{entry.error_message or entry.error_code}",
            )


def quotas_of(admin: Any, principal: str) -> dict[str, float]:
    """The quotas Kafka holds for ``principal`` (empty when none)."""
    component = DescribeClientQuotasRequest.ComponentData(
        entity_type="user", match_type=_MATCH_EXACT, match=principal
    )
    response = _send(admin, DescribeClientQuotasRequest(components=[component], strict=True))
    if response.error_code:
        raise ProvisioningError(
            "KafkaQuotaRefused",
            f"Kafka did not describe the quotas of {principal}: "
            f"{response.error_message or response.error_code}",
        )
    return {value.key: value.value for entry in response.entries for value in entry.values}
