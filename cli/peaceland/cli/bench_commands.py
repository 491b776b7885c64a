"""``peaceland bench …``: benchmarks that print their figures as one JSON object."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from peaceland.cli import (
    bench_analytics,
    bench_api,
    bench_dashboard,
    bench_limits,
    bench_map,
    bench_operator,
    bench_pipeline,
    charts,
)
from peaceland.cli.errors import USER_ERRORS
from peaceland.loadgen.fleet import Fleet
from peaceland.stack import Stack, StackSettings
from peaceland.tenants.reports import decode_report, encode_report

app = typer.Typer(
    help="Benchmarks: each prints one JSON object of measured figures.", no_args_is_help=True
)


@app.command()
def decode(
    reports: Annotated[int, typer.Option(min=1_000, help="Reports decoded per round.")] = 50_000,
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds; the median is reported.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 1,
) -> None:
    """Decode-and-validate rate of the report contract on one core (one thread)."""
    start = datetime(2026, 11, 29, tzinfo=UTC)
    fleet = Fleet(drones=100, seed=seed)
    minutes = -(-reports // fleet.drones)
    raw = [encode_report(r) for r in fleet.reports(start, minutes)][:reports]
    received = start + timedelta(minutes=minutes)
    for data in raw[:1_000]:  # warm-up
        decode_report(data, received_at=received)
    rates = []
    for _ in range(rounds):
        began = time.perf_counter()
        for data in raw:
            decode_report(data, received_at=received)
        rates.append(len(raw) / (time.perf_counter() - began))
    mean_bytes = sum(map(len, raw)) / len(raw)
    rate = statistics.median(rates)
    typer.echo(
        json.dumps(
            {
                "benchmark": "decode",
                "reports_per_round": len(raw),
                "rounds": rounds,
                "reports_per_second_per_core": round(rate),
                "reports_per_second_min": round(min(rates)),
                "reports_per_second_max": round(max(rates)),
                "mean_report_bytes": round(mean_bytes, 1),
                "megabytes_per_second_per_core": round(rate * mean_bytes / 1e6, 2),
                "python": platform.python_version(),
                "pydantic": version("pydantic"),
                "cpu": _cpu_model(),
            },
            indent=2,
        )
    )


@app.command()
def pipeline(
    reports: Annotated[int, typer.Option(min=100, help="Reports to send.")] = 20_000,
    rate: Annotated[float, typer.Option(min=1, help="Target reports per second.")] = 1_000,
    drones: Annotated[int, typer.Option(min=1, help="Simulated drones.")] = 100,
    batch: Annotated[int, typer.Option(min=1, max=1_000, help="Reports per request.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 1,
    keep: Annotated[bool, typer.Option(help="Keep the bench force's topics and keyspace.")] = False,
    lag_every: Annotated[
        float,
        typer.Option(min=0, help="Sample the consumers' lag this often, in seconds (0: never)."),
    ] = 0,
    lag_chart: Annotated[
        Path | None, typer.Option(help="Write the sampled lag as an SVG chart to this file.")
    ] = None,
) -> None:
    """Drive the whole data path (gateway, archiver, alerter) and check it against the
    simulator's ground truth; prints one JSON object."""
    console = Console(stderr=True)
    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))

    def measure() -> dict[str, Any]:
        stack.up()
        return bench_pipeline.run(
            stack,
            reports=reports,
            rate=rate,
            drones=drones,
            seed=seed,
            batch=batch,
            keep=keep,
            say=lambda m: console.print(f"[dim]·[/dim] {m}"),
            lag_every=lag_every or (1.0 if lag_chart is not None else None),
        )

    result = _figures(console, measure)
    typer.echo(json.dumps(result, indent=2))
    if lag_chart is not None:
        lag_chart.write_text(
            charts.line_chart(
                f"Consumers' lag at {rate:g} reports/s asked ({result['throughput_rps']:g}/s "
                "stored end to end)",
                {
                    group: [(s["seconds"], s[group]) for s in result["lag"]]
                    for group in ("archiver", "alerter")
                },
                x_label="seconds since the run began",
                y_label="reports not yet committed",
            )
        )


@app.command()
def limits(
    kafka_records: Annotated[
        int, typer.Option(min=1_000, help="Records for Kafka's own producer and consumer.")
    ] = 500_000,
    cassandra_reports: Annotated[
        int, typer.Option(min=100, help="Reports written to Cassandra each way.")
    ] = 10_000,
    rates: Annotated[
        str, typer.Option(help="Pipeline rates to climb, reports/s, ascending, comma-separated.")
    ] = "1000,2000,4000,8000",
    seconds: Annotated[
        float, typer.Option(min=2, help="Seconds of reports sent at each pipeline rate.")
    ] = 30,
    refine: Annotated[
        int,
        typer.Option(
            min=0, max=5, help="Runs halfway between the last rate kept up and the first not."
        ),
    ] = 2,
    drones: Annotated[int, typer.Option(min=1, help="Simulated drones.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 1,
) -> None:
    """The servers' own limits (Kafka's producer and consumer benchmarks, Cassandra writes
    with our driver) and the pipeline's highest sustained rate, in one run, with the ratios
    between them; prints one JSON object."""
    console = Console(stderr=True)
    say = lambda m: console.print(f"[dim]·[/dim] {m}")  # noqa: E731
    try:
        ladder = [float(rate) for rate in rates.split(",") if rate.strip()]
    except ValueError:
        console.print(f"[red]error:[/red] --rates takes numbers separated by commas: {rates!r}")
        raise typer.Exit(2) from None
    stack = Stack(StackSettings(), progress=say)

    def measure() -> dict[str, Any]:
        stack.up()
        return bench_limits.run(
            stack,
            kafka_records=kafka_records,
            cassandra_reports=cassandra_reports,
            rates=ladder,
            seconds=seconds,
            refine=refine,
            drones=drones,
            seed=seed,
            say=say,
        )

    typer.echo(json.dumps(_figures(console, measure), indent=2))


@app.command()
def writer(
    reports: Annotated[int, typer.Option(min=100, help="Reports written each way.")] = 10_000,
    settings: Annotated[
        str,
        typer.Option(
            help="Ways to write: requests in flight/statements per batch, comma-separated "
            "(statements 1: each row its own request)."
        ),
    ] = "64/16,64/32,64/64,128/16,32/16,256/1",
    drones: Annotated[int, typer.Option(min=1, help="Simulated drones.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 1,
) -> None:
    """The archiver's Cassandra writer alone, each way in turn on a scratch keyspace; prints
    one JSON object."""
    console = Console(stderr=True)
    say = lambda m: console.print(f"[dim]·[/dim] {m}")  # noqa: E731
    try:
        ways = [
            (int(way.split("/")[0]), int(way.split("/")[1]))
            for way in settings.split(",")
            if way.strip()
        ]
    except (ValueError, IndexError):
        ways = []
    if not ways or any(not 1 <= c <= 1024 or not 1 <= s <= 1000 for c, s in ways):
        console.print(
            "[red]error:[/red] --settings takes in-flight/statements pairs (1-1024/1-1000) "
            f"separated by commas, such as 64/16,128/32: {settings!r}"
        )
        raise typer.Exit(2)
    stack = Stack(StackSettings(), progress=say)

    def measure() -> dict[str, Any]:
        stack.up(["cassandra"])
        return bench_limits.writer(
            stack, reports=reports, settings=ways, drones=drones, seed=seed, say=say
        )

    typer.echo(json.dumps(_figures(console, measure), indent=2))


@app.command()
def operator(
    forces: Annotated[int, typer.Option(min=1, max=100, help="Forces to apply.")] = 10,
) -> None:
    """Seconds from applying a PoliceForce to Ready, one by one and all at once; prints one
    JSON object. Starts the stack's API server if needed."""
    console = Console(stderr=True)
    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))

    def measure() -> dict[str, Any]:
        stack.up(kubernetes=True)
        return bench_operator.run(
            stack, forces=forces, say=lambda m: console.print(f"[dim]·[/dim] {m}")
        )

    result = _figures(console, measure, also=(TimeoutError,))
    result["cpu"] = _cpu_model()
    typer.echo(json.dumps(result, indent=2))


@app.command()
def api(
    rounds: Annotated[int, typer.Option(min=1, max=1_000, help="Keys issued and revoked.")] = 20,
    requests: Annotated[int, typer.Option(min=10, help="Timed calls of each route.")] = 200,
    rate: Annotated[
        float, typer.Option(min=1, help="Reports a second through the gateway meanwhile.")
    ] = 500,
) -> None:
    """The control plane: how soon a revoked drone key is refused by the gateway, and the
    latency of its main routes while drones report; prints one JSON object."""
    console = Console(stderr=True)
    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))

    def measure() -> dict[str, Any]:
        stack.up(kubernetes=True)
        return bench_api.run(
            stack,
            rounds=rounds,
            requests=requests,
            rate=rate,
            say=lambda m: console.print(f"[dim]·[/dim] {m}"),
        )

    result = _figures(console, measure, also=(TimeoutError,))
    result["cpu"] = _cpu_model()
    typer.echo(json.dumps(result, indent=2))


@app.command()
def dashboard(
    probes: Annotated[int, typer.Option(min=1, max=10_000, help="Alerts timed.")] = 200,
    rate: Annotated[
        float, typer.Option(min=1, help="Reports a second through the gateway meanwhile.")
    ] = 1_000,
) -> None:
    """From the gateway accepting a low-score report to its alert drawn on an officer's
    dashboard, in Debian's Chromium, while drones report; prints one JSON object."""
    console = Console(stderr=True)
    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))

    def measure() -> dict[str, Any]:
        stack.up(kubernetes=True)
        return bench_dashboard.run(
            stack, probes=probes, rate=rate, say=lambda m: console.print(f"[dim]·[/dim] {m}")
        )

    result = _figures(console, measure, also=(TimeoutError,))
    result["cpu"] = _cpu_model()
    typer.echo(json.dumps(result, indent=2))


@app.command(name="map")
def map_(
    drones: Annotated[int, typer.Option(min=1, max=10_000, help="Drones reporting.")] = 1_000,
    history: Annotated[
        int, typer.Option(min=0, max=100_000, help="Open alerts raised before the page opens.")
    ] = 10_000,
    rate: Annotated[
        float, typer.Option(min=1, help="Reports a second through the gateway meanwhile.")
    ] = 200,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each timed phase.")] = 15,
) -> None:
    """How smoothly an officer's dashboard runs with a large fleet and a long history of
    open alerts, in Debian's Chromium: time until all is on the map, then its frames while
    the drones move and while the map is dragged; prints one JSON object."""
    console = Console(stderr=True)
    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))

    def measure() -> dict[str, Any]:
        stack.up(kubernetes=True)
        return bench_map.run(
            stack, drones=drones, history=history, rate=rate, seconds=seconds,
            say=lambda m: console.print(f"[dim]·[/dim] {m}"),
        )  # fmt: skip

    result = _figures(console, measure, also=(TimeoutError,))
    result["cpu"] = _cpu_model()
    typer.echo(json.dumps(result, indent=2))


@app.command()
def analytics(
    reports: Annotated[
        int, typer.Option(min=1_000, help="Reports generated into the lake for the queries.")
    ] = 10_000_000,
    days: Annotated[int, typer.Option(min=1, max=365, help="Days they span.")] = 7,
    sample: Annotated[
        int, typer.Option(min=100, help="Reports written through the real writer, for size.")
    ] = 50_000,
    engines: Annotated[str, typer.Option(help="duckdb, spark or both (comma-separated).")] = (
        "duckdb,spark"
    ),
    lake: Annotated[
        Path | None, typer.Option(help="Where to write the bench lake (default: the cache).")
    ] = None,
    reuse: Annotated[
        bool, typer.Option(help="Query the lake a previous run generated, when it matches.")
    ] = False,
    consumer_reports: Annotated[
        int,
        typer.Option(
            min=0,
            help="Reports the lake consumer reads from the real Kafka, for its rate "
            "(starts the stack); 0: none.",
        ),
    ] = 0,
    encodings: Annotated[
        bool,
        typer.Option(help="Also write the size sample again in other lossless encodings."),
    ] = False,
    on_store: Annotated[
        bool,
        typer.Option(
            help="Also write and compact the size sample on the stack's S3 store (starts "
            "the stack)."
        ),
    ] = False,
) -> None:
    """The lake's bytes per report (through the real writer) and every statistic's and a
    few ad-hoc queries' time over generated days of one force, on DuckDB and Spark; prints
    one JSON object per figure, as each is measured. Needs no server."""
    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    unknown = set(chosen) - {"duckdb", "spark"}
    if unknown or not chosen:
        typer.echo(
            f"error: engines are duckdb and spark, not {', '.join(sorted(unknown))}", err=True
        )
        raise typer.Exit(2)
    where = lake or StackSettings().cache_dir / "bench-analytics"
    console = Console(stderr=True)
    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))
    if on_store or consumer_reports:
        stack.up()
    bench_analytics.run(
        reports, days, sample, chosen, where, bench_analytics.emit_json, reuse=reuse,
        with_encodings=encodings, store=stack.endpoints().s3 if on_store else None,
    )  # fmt: skip
    if consumer_reports:
        bench_analytics.emit_json(
            bench_analytics.consumer_rate(stack.endpoints(), consumer_reports, where)
        )
    typer.echo(json.dumps({"metric": "machine", "cpu": _cpu_model(), "lake": str(where)}))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _figures(
    console: Console,
    measure: Callable[[], dict[str, Any]],
    *,
    also: tuple[type[Exception], ...] = (),
) -> dict[str, Any]:
    """A benchmark's figures; a user's error (a server away, a bad option), or one of
    ``also``, ends the command with its message and status 1."""
    caught: tuple[type[Exception], ...] = (*USER_ERRORS, *also)
    try:
        return measure()
    except caught as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
