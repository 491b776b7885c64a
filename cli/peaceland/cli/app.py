"""The ``peaceland`` command: one entry point for the local stack, the demo and benchmarks."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from peaceland.cli import (
    admin_commands,
    analytics_commands,
    bench_commands,
    demo_commands,
    image_commands,
    stack_commands,
)
from peaceland.operator import manifests

app = typer.Typer(
    name="peaceland",
    help="PeaceLand: drone reports kept, alerts raised, for every police force.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_commands.app, name="stack")
app.add_typer(bench_commands.app, name="bench")
app.command(name="demo")(demo_commands.demo)
app.command(name="simulate")(demo_commands.simulate)
app.command(name="login")(admin_commands.login)
app.add_typer(admin_commands.force_app, name="force")
app.add_typer(admin_commands.drone_app, name="drone")
app.add_typer(admin_commands.member_app, name="member")
app.command(name="stats")(analytics_commands.stats)
app.command(name="sql")(analytics_commands.sql)
app.command(name="image")(image_commands.image)


@app.command()
def crd() -> None:
    """Print the PoliceForce CustomResourceDefinition (what crds/ holds), as YAML."""
    typer.echo(manifests.crd_yaml(), nl=False)


@app.command(name="manifests")
def write_manifests() -> None:
    """Rewrite the generated manifests (crds/ and the Helm chart's CRDs) from the code."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").exists():
        typer.echo("run this from a checkout of the repository", err=True)
        raise typer.Exit(2)
    changed = manifests.write(root)
    typer.echo("\n".join(f"wrote {p}" for p in changed) or "every manifest is up to date")


def main() -> None:
    # Commands speak through their own output; logs are for what goes wrong, unless asked.
    logging.basicConfig(
        level=os.environ.get("PEACELAND_LOG_LEVEL", "WARNING").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The Cassandra driver is chatty at INFO about every connection it opens.
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    app()
