"""``peaceland demo``: the README's first command, after the environment is installed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from peaceland.cli import smoke
from peaceland.cli.errors import CommandError
from peaceland.cli.stack import Stack, StackError, StackSettings

console = Console(stderr=True)


def demo(
    force: Annotated[str, typer.Option(help="Id of the demo police force.")] = "demo",
    drones: Annotated[int, typer.Option(min=1, max=10_000, help="Simulated drones.")] = 100,
    minutes: Annotated[int, typer.Option(min=1, max=1_440, help="Simulated minutes.")] = 10,
) -> None:
    """Start the stack, provision the demo force and run reports through the pipeline."""

    def say(message: str) -> None:
        console.print(f"[green]✓[/green] {message}")

    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))
    try:
        started = stack.up()
        endpoints = stack.endpoints()
        say(
            "stack up: "
            + ", ".join(
                f"{s.name} ({'started' if s.name in started else 'reused'})" for s in stack.servers
            )
        )
        smoke.provision(endpoints, force, say)
        result = smoke.run(endpoints, force, drones=drones, minutes=minutes, say=say)
    except (StackError, CommandError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    say(
        f"archiver stored {result.stored} of {result.sent} reports in Cassandra, rejected "
        f"{result.rejected}, in {result.seconds:.1f}s"
    )
    if result.read_back != result.sent:
        console.print(
            f"[red]error:[/red] only {result.read_back} of {result.sent} reports "
            "could be read back from Cassandra"
        )
        raise typer.Exit(1)
    console.print(
        "\nThe stack keeps running: `peaceland stack status` shows it, "
        "`peaceland stack down` stops it.\nPoint your own clients at it with:"
    )
    for key, value in endpoints.environment().items():
        typer.echo(f"export {key}={value}")
