"""Kafka's own benchmarks run and read right, and the climb decides as it says."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from peaceland.loadgen.errors import LoadError
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.limits import (
    climb,
    java_client_properties,
    kafka_consumer_benchmark,
    kafka_producer_benchmark,
    parse_consumer_performance,
    parse_producer_performance,
    sustained,
)
from peaceland.stack import Endpoints, Stack
from peaceland.stack.servers import Kafka
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.kafka import KafkaAccess, client_config
from peaceland.tenants.reports import encode_report

# Printed by Kafka 4.1.1's tools on the local stack (2026-12-01).
PRODUCER_OUTPUT = """Reading payloads from: /tmp/payloads.txt
Number of messages read: 2000
101234 records sent, 20246.8 records/sec (10.95 MB/sec), 120.1 ms avg latency, 540.0 ms max latency.
200000 records sent, 89206.1 records/sec (48.22 MB/sec), 51.19 ms avg latency, 657.00 ms max latency, 53 ms 50th, 146 ms 95th, 186 ms 99th, 194 ms 99.9th.
"""  # noqa: E501
CONSUMER_OUTPUT = """start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-01 05:15:38:225, 2026-12-01 05:15:39:577, 108.1156, 79.9672, 200000, 147928.9941, 581, 771, 140.2278, 259403.3722
"""  # noqa: E501


def test_the_producers_summary_is_its_last_line_with_percentiles() -> None:
    figures = parse_producer_performance(PRODUCER_OUTPUT)
    assert figures["records"] == 200_000
    assert figures["records_per_s"] == 89206.1
    assert figures["mb_per_s"] == 48.22
    assert figures["latency_ms"] == {
        "avg": 51.19, "p50": 53.0, "p95": 146.0, "p99": 186.0, "p99.9": 194.0, "max": 657.0
    }  # fmt: skip


def test_the_consumers_row_is_read_by_its_header() -> None:
    figures = parse_consumer_performance(CONSUMER_OUTPUT)
    assert figures == {
        "records": 200_000,
        "records_per_s": 147929.0,
        "mb_per_s": 79.97,
        "fetch_records_per_s": 259403.4,
        "rebalance_ms": 581,
    }


@pytest.mark.parametrize("parse", [parse_producer_performance, parse_consumer_performance])
def test_output_without_figures_is_an_error_that_shows_it(parse: Any) -> None:
    with pytest.raises(LoadError, match="Exception in thread main"):
        parse("Exception in thread main: no broker\n")


@pytest.mark.parametrize(
    "password", ['p"ass', "p\\ass", "pa\nss", "pass\u00e9", 'x" tokenauth="true']
)
def test_a_password_the_tools_could_misread_is_refused(password: str) -> None:
    access = KafkaAccess("k:9092", username="admin", password=password)
    with pytest.raises(LoadError, match="cannot be given this password") as refused:
        java_client_properties(access)
    assert password not in str(refused.value)


def test_the_login_module_follows_the_mechanism() -> None:
    scram = java_client_properties(KafkaAccess("k:9092", username="a", password="b-_c"))
    plain = java_client_properties(
        KafkaAccess("k:9092", username="a", password="b", sasl_mechanism="PLAIN")
    )
    assert 'scram.ScramLoginModule required username="a" password="b-_c";' in scram
    assert "plain.PlainLoginModule required" in plain
    assert "security.protocol=SASL_PLAINTEXT" in scram


def test_a_consumer_that_stopped_short_is_still_read_past_its_warning() -> None:
    header, row = CONSUMER_OUTPUT.strip().splitlines()
    warned = f"{header}\nWARNING: Exiting before consuming the expected number of messages\n{row}\n"
    assert parse_consumer_performance(warned)["records"] == 200_000


def _run(rate: float, *, drained: float = 0.5, stored: int | None = None) -> dict[str, Any]:
    return {
        "rate_target_rps": rate,
        "send_rps": rate * 0.98,
        "seconds": 20.0 + drained,
        "drain_seconds": drained,
        "throughput_rps": rate * 0.95,
        "reports_accepted": 1000,
        "reports_stored": 1000 if stored is None else stored,
        "lost": 0 if stored is None else 1000 - stored,
        "duplicates": 0,
        "alerts_raised_twice": 0,
        "alert_events_missing": 0,
    }


def test_a_backlog_left_after_sending_is_not_keeping_up() -> None:
    assert sustained(_run(1000, drained=1.9))
    assert not sustained(_run(1000, drained=6.0))
    assert not sustained(_run(1000) | {"send_rps": 700.0})  # the gateway held the drones back


def test_a_lag_that_grows_while_sending_is_not_keeping_up_even_if_it_drains_fast() -> None:
    assert sustained(_run(1000, drained=1.6) | {"lag_growth_rps": {"archiver": 12.0}})
    assert not sustained(
        _run(1250, drained=1.6) | {"lag_growth_rps": {"archiver": 150.0, "alerter": 2.0}}
    )
    assert sustained(_run(1000) | {"lag_growth_rps": {"archiver": None, "alerter": None}})


def test_the_climb_stops_at_the_first_rate_not_kept_up() -> None:
    asked: list[float] = []

    def pipeline(rate: float) -> dict[str, Any]:
        asked.append(rate)
        return _run(rate, drained=0.5 if rate < 4000 else 30.0)

    result = climb(pipeline, [1000, 2000, 4000, 8000], lambda _: None)
    assert asked == [1000, 2000, 4000]
    assert result["highest_rate_kept_up"] == 2000
    assert result["stored_rps_at_highest"] == 1900
    assert result["limit_found"] is True
    assert result["capacity_measured_at"] == 4000
    assert result["lossless"] is True
    assert [r["sustained"] for r in result["runs"]] == [True, True, False]


def test_the_climb_refines_between_the_last_rate_kept_up_and_the_first_not() -> None:
    asked: list[float] = []

    def pipeline(rate: float) -> dict[str, Any]:
        asked.append(rate)
        return _run(rate, drained=0.5 if rate <= 1200 else 30.0) | (
            {"throughput_rps": 1234.5} if rate == 2000 else {}
        )

    result = climb(pipeline, [1000, 2000], lambda _: None, refine=3)
    assert asked == [1000, 2000, 1500, 1250, 1100]
    assert result["highest_rate_kept_up"] == 1100
    assert result["capacity_rps"] == 1234.5  # what the first run not kept up stored


def test_a_run_that_loses_a_report_ends_the_climb_and_says_so() -> None:
    result = climb(
        lambda rate: _run(rate, stored=999 if rate == 2000 else None),
        [1000, 2000, 4000],
        print,
        refine=2,
    )
    assert len(result["runs"]) == 2  # no refining around a defect
    assert result["lossless"] is False
    assert result["highest_rate_kept_up"] == 1000
    assert result["capacity_rps"] is None  # a defect measures no capacity


def test_every_rate_kept_up_is_a_lower_bound_not_a_limit() -> None:
    result = climb(_run, [1000, 2000], print, refine=2)
    assert result["highest_rate_kept_up"] == 2000
    assert result["limit_found"] is False
    assert result["capacity_rps"] is None


def test_a_gateway_that_could_not_take_the_rate_measures_no_capacity() -> None:
    result = climb(lambda rate: _run(rate) | {"send_rps": rate * 0.5}, [1000], print)
    assert result["limit_found"] is True
    assert result["capacity_rps"] is None


def test_a_run_that_fails_ends_the_climb_and_keeps_what_was_measured() -> None:
    def pipeline(rate: float) -> dict[str, Any]:
        if rate == 2000:
            raise LoadError("the archiver did not drain within 180s")
        return _run(rate)

    result = climb(pipeline, [1000, 2000, 4000], print, refine=2)
    assert [run["rate_target_rps"] for run in result["runs"]] == [1000, 2000]
    assert result["highest_rate_kept_up"] == 1000
    assert result["errors"] == ["the archiver did not drain within 180s"]


@pytest.mark.parametrize(
    "rates", [[], [2000, 1000], [0, 1000], [1000, 1000], [float("nan")], [1000, float("inf")]]
)
def test_rates_must_climb(rates: list[float]) -> None:
    with pytest.raises(LoadError, match="positive and ascending"):
        climb(_run, rates, print)


def _end_offsets(access: KafkaAccess, topic: str) -> int:
    consumer = Consumer(client_config(access) | {"group.id": "limits-test"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def test_kafkas_own_benchmarks_move_our_reports_on_the_real_kafka(
    stack: Stack, endpoints: Endpoints, force: ForceResources, kafka_admin: AdminClient
) -> None:
    kafka = stack.server("kafka")
    assert isinstance(kafka, Kafka)
    java = kafka.tools(lambda _: None)
    fleet = Fleet(drones=20, seed=3)
    payloads = [encode_report(r) for r in islice(fleet.reports(datetime.now(UTC)), 50)]

    produced = kafka_producer_benchmark(java, endpoints.kafka, force.reports_topic, payloads, 3000)
    assert produced["records"] == 3000
    assert _end_offsets(endpoints.kafka, force.reports_topic) == 3000
    assert produced["records_per_s"] > 0
    assert "acks=all" in produced["settings"]
    assert "enable.idempotence=true" in produced["settings"]

    group = f"{force.force_id}-limits-test"
    consumed = kafka_consumer_benchmark(
        java, endpoints.kafka, force.reports_topic, 3000, group=group
    )
    assert consumed["records"] == 3000
    kafka_admin.delete_consumer_groups([group])[group].result(timeout=30)


def test_a_tool_that_fails_says_what_it_printed(
    stack: Stack, endpoints: Endpoints, force: ForceResources
) -> None:
    kafka = stack.server("kafka")
    assert isinstance(kafka, Kafka)
    wrong = KafkaAccess(
        endpoints.kafka.bootstrap_servers, username="nobody", password="not-a-password"
    )
    with pytest.raises(LoadError) as failed:
        kafka_producer_benchmark(
            kafka.tools(lambda _: None), wrong, force.reports_topic, [b"{}"], 10, timeout=90
        )
    assert "had 0 of 10 records acknowledged" in str(failed.value)
    assert "SaslAuthenticationException" in str(failed.value)  # the tool's own words
