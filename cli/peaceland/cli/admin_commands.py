"""The platform admin's and force admins' everyday commands, over the control plane's API.

``peaceland login`` prints the token to export; the other commands read it from
``PEACELAND_API_TOKEN`` and the API's address from ``PEACELAND_API_URL``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from peaceland.cli.control_plane import ControlPlane
from peaceland.cli.errors import USER_ERRORS

console = Console(stderr=True)
force_app = typer.Typer(help="Police forces: create, show, list.", no_args_is_help=True)
drone_app = typer.Typer(help="A force's drones and their keys.", no_args_is_help=True)
member_app = typer.Typer(help="A force's people.", no_args_is_help=True)

Url = Annotated[
    str, typer.Option("--api-url", envvar="PEACELAND_API_URL", help="The control plane.")
]
Token = Annotated[
    str, typer.Option("--token", envvar="PEACELAND_API_TOKEN", help="From `peaceland login`.")
]
DEFAULT_URL = "http://127.0.0.1:8090"


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _run(url: str, token: str | None, action: Any) -> Any:
    try:
        with ControlPlane(url, token) as api:
            return action(api)
    except USER_ERRORS as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def login(
    email: Annotated[str, typer.Option(help="Your e-mail address.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, envvar="PEACELAND_PASSWORD")
    ],
    url: Url = DEFAULT_URL,
) -> None:
    """Sign in; prints the line that exports your token for the other commands."""
    token = _run(url, None, lambda api: api.sign_in(email, password))
    typer.echo(f"export PEACELAND_API_URL={url} PEACELAND_API_TOKEN={token}")


@force_app.command("create")
def force_create(
    force_id: Annotated[str, typer.Argument(help="The new force's id (lyon-metropole).")],
    name: Annotated[str, typer.Option(help="Its name, as officers read it.")],
    plan: Annotated[str, typer.Option(help="The plan it buys.")],
    threshold: Annotated[float, typer.Option(min=0, max=100)] = 20.0,
    window: Annotated[int, typer.Option(min=0, help="Dedup window, seconds.")] = 600,
    wait: Annotated[bool, typer.Option(help="Wait until it is Ready.")] = True,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Sell a force on a plan (a platform admin)."""

    def create(api: ControlPlane) -> Any:
        body = {
            "id": force_id,
            "display_name": name,
            "plan_id": plan,
            "alerting": {"score_threshold": threshold, "dedup_window_seconds": window},
        }
        api.create_force(body)
        if wait:
            api.wait_ready(force_id, lambda m: console.print(f"· {m}"))
        return api.force(force_id)

    _print(_run(url, token, create))


@force_app.command("show")
def force_show(force_id: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """One force, its status mirrored from the operator's."""
    _print(_run(url, token, lambda api: api.call("GET", f"/v1/forces/{force_id}").json()))


@force_app.command("list")
def force_list(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """The forces you may see."""
    _print(_run(url, token, lambda api: api.call("GET", "/v1/forces").json()["items"]))


@drone_app.command("register")
def drone_register(force_id: str, drone_id: str, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Register a drone of the force (a force admin)."""
    _run(url, token, lambda api: api.register_drone(force_id, drone_id))
    console.print(f"drone {drone_id} registered in {force_id}")


@drone_app.command("key")
def drone_key(
    force_id: str,
    drone_id: str,
    replace: Annotated[bool, typer.Option(help="Revoke its live keys first.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Issue a key for a drone: printed this once, never again."""
    _print(_run(url, token, lambda api: api.issue_key(force_id, drone_id, replace=replace)))


@member_app.command("add")
def member_add(
    force_id: str,
    email: str,
    name: Annotated[str, typer.Option(help="Their name.")],
    role: Annotated[str, typer.Option(help="force_admin, officer or analyst.")] = "officer",
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Give a person a role in the force; a new account's first password is printed once."""
    _print(_run(url, token, lambda api: api.add_member(force_id, email, name, role)))
