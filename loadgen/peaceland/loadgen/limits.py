"""What the servers themselves take on this machine, to judge the pipeline against.

Kafka's own benchmarks (``ProducerPerformance`` and ``ConsumerPerformance`` of the
``kafka-tools`` jar, the server's version) run on a topic shaped like a force's, with our own
reports as their payloads; the pipeline's highest sustained rate is found by climbing a ladder
of rates. The caller says how to start Java and how to run one pipeline: this module only
runs, parses and decides.
"""

from __future__ import annotations

import itertools
import math
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from peaceland.loadgen.errors import LoadError
from peaceland.tenants.kafka import KafkaAccess, producer_config

Say = Callable[[str], None]

#: A pipeline run keeps up when the gateway took reports at this share of the rate asked…
KEEPS_UP: Final = 0.9
#: … and the consumers caught up within this share of the sending time after the last one
#: (a backlog that grows through the run drains long after it), or within ``DRAIN_FLOOR``.
DRAIN_SHARE: Final = 0.1
DRAIN_FLOOR: Final = 2.0
#: … and, when the run sampled the consumers' lag, no group's lag grew faster than this
#: share of the rate while the reports were sent (a backlog growing for ever drains in a
#: few seconds after a short run: the drain alone let a pipeline at 90 % of a rate pass).
LAG_GROWTH_SHARE: Final = 0.05

_PRODUCER_SUMMARY: Final = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbs>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+|NaN) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th\."
)
#: The producer settings our gateway sends with, passed on to Kafka's own producer.
_PRODUCER_SETTINGS: Final = ("acks", "enable.idempotence", "compression.type", "linger.ms")
#: The gateway's producer waits this long for a batch to fill (services' gateway sender).
_GATEWAY_LINGER_MS: Final = 1
#: Printable ASCII but a double quote (0x22) or a backslash (0x5c).
_SAFE_SECRET: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
_LOGIN_MODULES: Final = {
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
}


def java_client_properties(access: KafkaAccess) -> str:
    """A Java client's properties for ``access``: how Kafka's own tools sign in as we do.

    A name or password goes inside a JAAS string inside a Java properties file: two layers
    of escaping that each read backslashes and quotes their own way. Rather than trust both,
    one holding a quote, a backslash or a control character is refused (the stack's own are
    URL-safe tokens)."""
    lines = [
        f"bootstrap.servers={access.bootstrap_servers}",
        f"security.protocol={access.protocol}",
    ]
    if access.protocol.startswith("SASL"):
        if access.username is None or access.password is None:
            raise LoadError(f"Kafka over {access.protocol} needs a username and a password")
        for what, value in (("username", access.username), ("password", access.password)):
            if not _SAFE_SECRET.fullmatch(value):
                raise LoadError(
                    f"Kafka's own tools cannot be given this {what}: it holds a quote, a "
                    "backslash or a character that is not printable ASCII"
                )
        module = _LOGIN_MODULES[access.sasl_mechanism]
        lines += [
            f"sasl.mechanism={access.sasl_mechanism}",
            f"sasl.jaas.config={module} required "
            f'username="{access.username}" password="{access.password}";',
        ]
    if access.ssl_ca_location is not None:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={access.ssl_ca_location}"]
    return "\n".join(lines) + "\n"


def parse_producer_performance(output: str) -> dict[str, Any]:
    """The summary line ``ProducerPerformance`` prints last, as figures."""
    found = list(_PRODUCER_SUMMARY.finditer(output))
    if not found:
        raise LoadError(f"ProducerPerformance printed no summary:\n{output[-2000:]}")
    last = found[-1]
    return {
        "records": int(last["records"]),
        "records_per_s": round(float(last["rps"]), 1),
        "mb_per_s": round(float(last["mbs"]), 2),
        "latency_ms": {
            "avg": float(last["avg"]),
            "p50": float(last["p50"]),
            "p95": float(last["p95"]),
            "p99": float(last["p99"]),
            "p99.9": float(last["p999"]),
            "max": float(last["max"]),
        },
    }


def parse_consumer_performance(output: str) -> dict[str, Any]:
    """The header and the row ``ConsumerPerformance`` prints, as figures."""
    lines = [line for line in output.splitlines() if line.strip()]
    headers = [at for at, line in enumerate(lines) if line.startswith("start.time")]
    if headers:
        names = [name.strip() for name in lines[headers[0]].split(",")]
        # The row follows the header; a warning ("Exiting before consuming…") may come
        # between them.
        rows = [
            line.split(",") for line in lines[headers[0] + 1 :] if line.count(",") == len(names) - 1
        ]
        if rows:
            fields = dict(zip(names, (value.strip() for value in rows[0]), strict=True))
            try:
                return {
                    "records": int(fields["data.consumed.in.nMsg"]),
                    "records_per_s": round(float(fields["nMsg.sec"]), 1),
                    "mb_per_s": round(float(fields["MB.sec"]), 2),
                    # The group's join is in the time above; these leave it out.
                    "fetch_records_per_s": round(float(fields["fetch.nMsg.sec"]), 1),
                    "rebalance_ms": int(fields["rebalance.time.ms"]),
                }
            except (KeyError, ValueError):
                pass
    raise LoadError(f"ConsumerPerformance printed no figures:\n{output[-2000:]}")


def kafka_producer_benchmark(
    java: Sequence[str],
    access: KafkaAccess,
    topic: str,
    payloads: Sequence[bytes],
    records: int,
    *,
    timeout: float = 600,
) -> dict[str, Any]:
    """Kafka's own producer, as fast as it goes, sending ``records`` drawn from
    ``payloads`` (our reports: their size and how they compress) with our gateway's
    producer settings (acks=all, idempotent, lz4)."""
    if any(b"\n" in payload for payload in payloads):
        raise LoadError("a payload holds a newline, the payload file's delimiter")
    ours = producer_config(access, linger_ms=_GATEWAY_LINGER_MS)
    settings = [f"{name}={str(ours[name]).lower()}" for name in _PRODUCER_SETTINGS]
    with tempfile.TemporaryDirectory(prefix="peaceland-limits-") as folder:
        config, payload_file = _client_config(folder, access), Path(folder) / "payloads"
        payload_file.write_bytes(b"\n".join(payloads))
        output = _run(
            [
                *java,
                "org.apache.kafka.tools.ProducerPerformance",
                "--topic",
                topic,
                "--num-records",
                str(records),
                "--throughput",
                "-1",
                "--payload-file",
                str(payload_file),
                "--payload-delimiter",
                "\n",
                "--producer.config",
                str(config),
                "--producer-props",
                *settings,
            ],
            timeout,
        )
    # It counts what Kafka acknowledged and prints the failures on its standard error.
    figures = _all_of(
        records,
        parse_producer_performance(output),
        "producer had {} of {} records acknowledged",
        output,
    )
    return figures | {"settings": settings}


def kafka_consumer_benchmark(
    java: Sequence[str],
    access: KafkaAccess,
    topic: str,
    records: int,
    *,
    group: str,
    timeout: float = 600,
) -> dict[str, Any]:
    """Kafka's own consumer reading ``records`` of ``topic`` from its start as ``group``."""
    with tempfile.TemporaryDirectory(prefix="peaceland-limits-") as folder:
        config = _client_config(folder, access)
        output = _run(
            [
                *java,
                "org.apache.kafka.tools.ConsumerPerformance",
                "--bootstrap-server",
                access.bootstrap_servers,
                "--consumer.config",
                str(config),
                "--topic",
                topic,
                "--group",
                group,
                "--messages",
                str(records),
                "--timeout",
                "30000",
            ],
            timeout,
        )
    return _all_of(
        records, parse_consumer_performance(output), "consumer read {} of {} records", output
    )


def sustained(run: Mapping[str, Any]) -> bool:
    """Whether a pipeline run (``peaceland bench pipeline``'s figures) kept up with the rate
    it was asked for, losing and doubling nothing: the gateway took the reports at that rate
    and no backlog was left when the last one was in."""
    sending = run["seconds"] - run["drain_seconds"]
    growth = [g for g in (run.get("lag_growth_rps") or {}).values() if g is not None]
    return (
        lossless(run)
        and bool(run["send_rps"] >= KEEPS_UP * run["rate_target_rps"])
        and bool(run["drain_seconds"] <= max(DRAIN_FLOOR, DRAIN_SHARE * sending))
        # A run that sampled its lag but cannot judge it (too short, sampling failed) is
        # not called kept up.
        and run.get("lag_judged", True) is True
        and all(g <= LAG_GROWTH_SHARE * run["rate_target_rps"] for g in growth)
    )


def lossless(run: Mapping[str, Any]) -> bool:
    """Whether every accepted report was stored once and every alert raised once."""
    nothing_wrong = all(
        run[count] == 0
        for count in ("lost", "duplicates", "alerts_raised_twice", "alert_events_missing")
    )
    return nothing_wrong and bool(run["reports_stored"] == run["reports_accepted"])


def check_rates(rates: Sequence[float]) -> None:
    """Refuses a ladder ``climb`` cannot climb: empty, not finite, not positive, not rising."""
    if (
        not rates
        or not all(math.isfinite(rate) and rate > 0 for rate in rates)
        or any(b <= a for a, b in itertools.pairwise(rates))
    ):
        raise LoadError(f"the rates to climb must be positive and ascending: {list(rates)}")


def climb(
    pipeline: Callable[[float], dict[str, Any]],
    rates: Sequence[float],
    say: Say,
    *,
    refine: int = 0,
) -> dict[str, Any]:
    """Run ``pipeline`` at each of ``rates`` (ascending) until one is not kept up, then
    ``refine`` times halfway between the highest kept up and the lowest not: the highest
    rate kept up (``highest_rate_kept_up``) and every run.

    A run that loses or doubles anything stops the climb at once: that is a defect to look
    at, not a limit. So does a run that fails (its error is kept with it). The first run not
    kept up for want of draining (the gateway took the rate, the consumers fell behind)
    also measures the pipeline's capacity: with a backlog from its first seconds, it stores
    as fast as it can (``capacity_rps``). ``limit_found`` is false when every rate was kept
    up: the highest is then a lower bound."""
    check_rates(rates)
    runs: list[dict[str, Any]] = []

    def attempt(rate: float) -> dict[str, Any]:
        say(f"pipeline at {rate:.0f} reports/s")
        try:
            run = pipeline(rate)
        except LoadError as exc:
            say(f"  failed: {exc}")
            runs.append({"rate_target_rps": rate, "error": str(exc), "sustained": False})
            return runs[-1]
        run = run | {"lossless": lossless(run), "sustained": sustained(run)}
        runs.append(run)
        say(
            f"  stored {run['throughput_rps']:.0f}/s of {rate:.0f}/s asked: "
            + ("kept up" if run["sustained"] else "did not keep up")
            + ("" if run["lossless"] else "; LOST OR DOUBLED records")
        )
        return run

    highest: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None
    for rate in rates:
        run = attempt(rate)
        if not run["sustained"]:
            failed = run
            break
        highest = run
    capacity = failed if failed is not None and _drain_limited(failed) else None
    low = 0.0 if highest is None else highest["rate_target_rps"]
    if failed is not None and failed.get("lossless"):
        ceiling = failed["rate_target_rps"]
        for _ in range(refine):
            rate = round((low + ceiling) / 2 / 50) * 50  # rates in steps of 50 reports/s
            if not low < rate < ceiling:
                break
            run = attempt(rate)
            if not run.get("lossless"):
                break
            if run["sustained"]:
                highest, low = run, rate
            else:
                ceiling = rate
    return {
        "highest_rate_kept_up": None if highest is None else highest["rate_target_rps"],
        "stored_rps_at_highest": None if highest is None else highest["throughput_rps"],
        "limit_found": failed is not None,
        "capacity_rps": None if capacity is None else capacity["throughput_rps"],
        "capacity_measured_at": None if capacity is None else capacity["rate_target_rps"],
        "lossless": all(run.get("lossless", True) for run in runs),
        "errors": [run["error"] for run in runs if "error" in run],
        "runs": runs,
    }


def _drain_limited(run: Mapping[str, Any]) -> bool:
    """A run not kept up because the consumers fell behind, not the gateway or the load
    generator, nor a defect: its stored rate is the pipeline's capacity."""
    return bool(run.get("lossless") and run["send_rps"] >= KEEPS_UP * run["rate_target_rps"])


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` to 3 decimals, or None when either is unknown."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _client_config(folder: str, access: KafkaAccess) -> Path:
    """``access`` as a Java client's properties file in ``folder`` (a private temporary
    folder: the file holds a password), readable by its owner only."""
    config = Path(folder) / "client.properties"
    config.touch(mode=0o600)
    config.write_text(java_client_properties(access))
    return config


def _all_of(records: int, figures: dict[str, Any], what: str, output: str) -> dict[str, Any]:
    """``figures`` of a tool that moved every one of ``records``, or the error it printed
    (``what`` says what it did, with room for what it moved and what was asked)."""
    if figures["records"] != records:
        said = what.format(figures["records"], records)
        raise LoadError(f"Kafka's {said}:\n{output[-2000:]}")
    return figures


def _run(argv: list[str], timeout: float) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"Kafka's {_tool(argv)} ran over {timeout:.0f}s") from exc
    printed = result.stdout + result.stderr
    if result.returncode != 0:
        raise LoadError(f"Kafka's {_tool(argv)} failed ({result.returncode}):\n{printed[-2000:]}")
    return printed


def _tool(argv: list[str]) -> str:
    return next((a.rsplit(".", 1)[1] for a in argv if a.startswith("org.apache.kafka.")), "java")
