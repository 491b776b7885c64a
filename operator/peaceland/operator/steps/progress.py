"""ConsumersProgressing: every consumer group of the force commits while reports wait."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException

from peaceland.operator.progress import Progress, Verdict
from peaceland.operator.results import Force, Step
from peaceland.operator.servers import Servers

log = logging.getLogger(__name__)


def progress_step(
    force: Force, servers: Servers, progress: Progress
) -> tuple[Step | None, list[Verdict]]:
    """Whether every consumer commits while reports wait (read from Kafka's offsets); None
    when Kafka could not say (the condition stays as it was: not knowing is no stall, and
    TopicsReady says what is wrong with Kafka)."""
    try:
        verdicts = progress.check(servers.kafka(), force.name, servers.settings.request_timeout)
    except KafkaException as exc:
        log.warning("%s: consumer groups' offsets not read: %s", force.owner, exc)
        return None, []
    stalled = [v for v in verdicts if v.stalled]
    if not stalled:
        return Step("ConsumersProgressing", True, "Progressing", "; ".join(map(str, verdicts))), (
            verdicts
        )
    first = stalled[0].consumer
    message = "; ".join(map(str, stalled)) + (
        f"; its log says why: kubectl logs -n {force.namespace} deploy/{force.name}-{first}"
    )
    return Step("ConsumersProgressing", False, f"{first.capitalize()}Stalled", message), verdicts
