"""``peaceland image``: the platform's OCI image, built with no Docker engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from peaceland.image.build import build_image
from peaceland.stack import StackError, StackSettings

console = Console(stderr=True)

#: The repository this command runs from (the image is built from its working tree).
_ROOT = Path(__file__).resolve().parents[3]


def image(
    output: Annotated[Path, typer.Option(help="Where the OCI archive is written.")] = _ROOT
    / "dist"
    / "peaceland.oci.tar",
    refresh_base: Annotated[
        bool,
        typer.Option(
            "--refresh-base",
            help="Make the Debian layer again (its security updates) instead of the cached one.",
        ),
    ] = False,
) -> None:
    """Build the platform's image (one OCI archive, every process of the platform inside)
    from this checkout; prints its reference, digest and layers as JSON."""
    if not (_ROOT / "pyproject.toml").exists():
        console.print("[red]error:[/red] run this from a checkout of the repository")
        raise typer.Exit(2)
    try:
        built = build_image(
            _ROOT,
            StackSettings().cache_dir,
            output.resolve(),
            lambda msg: console.print(f"[dim]·[/dim] {msg}"),
            refresh_base=refresh_base,
        )
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    typer.echo(json.dumps(built.summary(), indent=2))
