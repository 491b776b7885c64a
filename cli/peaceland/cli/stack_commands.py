"""``peaceland stack up | down | status``: the local Kafka, Cassandra and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from peaceland.stack import ServerStatus, Stack, StackError, StackSettings
from peaceland.stack.credentials import admin_credentials

app = typer.Typer(
    help="The local stack: real Kafka, Cassandra and PostgreSQL (and a Kubernetes API server).",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _stack() -> Stack:
    return Stack(StackSettings(), progress=lambda msg: console.print(f"[dim]·[/dim] {msg}"))


@app.command()
def up(
    kubernetes: Annotated[
        bool,
        typer.Option(
            "--kubernetes",
            help="Also run a real Kubernetes API server (etcd, kube-apiserver), built from "
            "source through the Go module proxy the first time (about 5 minutes).",
        ),
    ] = False,
) -> None:
    """Fetch (once), start and wait for every server; reuse those already running."""
    stack = _stack()
    try:
        started = stack.up(kubernetes=kubernetes)
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    reused = [s.name for s in stack.status() if s.name not in started]
    if reused:
        console.print(f"reused: {', '.join(reused)}")
    _print_status(stack)
    console.print("\nPoint clients at the stack with:")
    for key, value in stack.endpoints().environment().items():
        # A password given in the environment (external servers) is never printed back.
        shown = "…" if key.endswith("_PASSWORD") else value
        typer.echo(f"export {key}={shown}")
    if kubernetes:
        api = stack.kube_apiserver
        typer.echo(f"export PATH={api.kubectl.parent}:$PATH")
        console.print(
            "\nkubectl (built alongside, same version) then talks to the local API server as "
            "admin:\n  kubectl apply -f crds/ && kubectl get policeforces\n"
            "The operator's own identity, with only the Helm chart's RBAC: "
            f"{api.operator_kubeconfig}"
        )


@app.command()
def down() -> None:
    """Stop the servers this stack started (by pid); external servers are left alone."""
    stopped = _stack().down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Each server's health; exits 1 when any is unhealthy."""
    stack = _stack()
    statuses = stack.status()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(s) for s in statuses], indent=2))
    else:
        _print_status(stack, statuses)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


def _print_status(stack: Stack, statuses: list[ServerStatus] | None = None) -> None:
    table = Table(title=f"PeaceLand stack ({stack.settings.state_dir})")
    for column in ("server", "health", "address", "pid", "log"):
        table.add_column(column)
    for s in statuses if statuses is not None else stack.status():
        health = "[green]healthy[/green]" if s.healthy else f"[red]{s.detail}[/red]"
        table.add_row(
            s.name,
            health,
            s.address + (" (external)" if s.external else ""),
            str(s.pid or "-"),
            s.log_file or "-",
        )
    console.print(table)
    admin = admin_credentials(stack.settings.state_dir)
    console.print(
        f"Administrator ({admin.username}, Kafka's one super user and a Cassandra superuser): "
        f"passwords in {admin.kafka_password_file} and {admin.cassandra_password_file} "
        "(mode 0600, made once; never printed)"
    )
