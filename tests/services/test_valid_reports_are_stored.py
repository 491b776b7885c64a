"""A report the gateway answers 202 is stored, whatever valid shape it has.

Reports at and near every bound of the data contract go through the real gateway, Kafka,
the archiver and Cassandra, and each is read back field by field: the whole report in
``reports_by_drone_day`` and one sighting per citizen (the lowest score when a name comes
twice) in ``sightings_by_citizen``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from cassandra.cluster import Session
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from peaceland.services.archiver.consumer import Archiver
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.gateway.app import create_app
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.stack import Endpoints
from peaceland.tenants.forces import ForceResources, sighting_bucket
from peaceland.tenants.reports import Report, encode_report, utc_now
from tests.kafka_helpers import kafka_fields, wait_until
from tests.strategies import largest_report, reports

KEY = "bounds-drone-key-0123456789"


@pytest.fixture
def pipeline(
    force: ForceResources, endpoints: Endpoints, cassandra: Session
) -> Iterator[TestClient]:
    """The force's gateway (in process) and its archiver (a thread), both running."""
    gateway = GatewaySettings(
        **kafka_fields(endpoints.kafka),
        drone_keys={force.force_id: [SecretStr(KEY)]},
    )
    archiver = Archiver(
        ArchiverSettings(
            force_id=force.force_id,
            **endpoints.settings(),
            metrics_port=0,
        ),
        ReportStore(cassandra, force.keyspace),
    )
    stop = threading.Event()
    thread = threading.Thread(target=archiver.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with TestClient(create_app(gateway)) as client:
            yield client
    finally:
        stop.set()
        thread.join(30)


def stored_row(cassandra: Session, keyspace: str, report: Report) -> Any:
    at = report.timestamp.astimezone(UTC)
    return cassandra.execute(
        f"SELECT * FROM {keyspace}.reports_by_drone_day WHERE drone_id = %s AND day = %s "
        "AND reported_at = %s AND report_id = %s",
        (report.drone_id, at.date(), at, report.report_id),
    ).one()


def assert_stored_as_sent(cassandra: Session, keyspace: str, report: Report) -> None:
    row = stored_row(cassandra, keyspace, report)
    assert row is not None
    assert (row.latitude, row.longitude) == (report.latitude, report.longitude)
    assert list(row.citizen_names or []) == [c.name for c in report.citizens]
    assert list(row.citizen_scores or []) == [c.score for c in report.citizens]
    assert list(row.words or []) == report.words
    lowest: dict[str, float] = {}
    for citizen in report.citizens:
        lowest[citizen.name] = min(citizen.score, lowest.get(citizen.name, citizen.score))
    at = report.timestamp.astimezone(UTC)
    for name, score in lowest.items():
        sighting = cassandra.execute(
            f"SELECT score FROM {keyspace}.sightings_by_citizen WHERE day = %s AND bucket = %s "
            "AND citizen = %s AND reported_at = %s AND drone_id = %s",
            (at.date(), sighting_bucket(name), name, at, report.drone_id),
        ).one()
        assert sighting is not None, f"no sighting of {name[:20]!r}…"
        assert sighting.score == score, name[:20]


def send_and_wait(
    client: TestClient, cassandra: Session, force: ForceResources, report: Report
) -> None:
    response = client.post(
        "/v1/reports",
        content=encode_report(report),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text[:2000]
    wait_until(
        lambda: stored_row(cassandra, force.keyspace, report) is not None,
        timeout=60,
        what=f"report {report.report_id} ({len(encode_report(report))} bytes) to be stored",
    )
    assert_stored_as_sent(cassandra, force.keyspace, report)


def test_the_largest_report_the_contract_allows_is_accepted_and_stored(
    pipeline: TestClient, cassandra: Session, force: ForceResources
):
    report = largest_report(utc_now())
    assert len(encode_report(report)) > 1_300_000  # every character four bytes long
    send_and_wait(pipeline, cassandra, force, report)


# The Cassandra driver's threads use the random module (reconnection jitter, replica
# shuffling) while a report is drawn; Hypothesis would take that for our strategy's doing
# (tests/strategies.py uses none).
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_every_valid_report_at_the_bounds_is_accepted_and_stored(
    pipeline: TestClient, cassandra: Session, force: ForceResources, data: st.DataObject
):
    # A report id of its own: the same id with other content is a conflict (another test).
    report = data.draw(reports(now=utc_now())).model_copy(update={"report_id": uuid.uuid4()})
    send_and_wait(pipeline, cassandra, force, report)
