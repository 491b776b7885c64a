"""``peaceland demo`` and ``peaceland simulate``."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from peaceland.cli import demo as demo_run
from peaceland.cli.control_plane import ControlPlane
from peaceland.cli.errors import USER_ERRORS, CommandError
from peaceland.loadgen.drivers import send_to_gateway, send_to_kafka
from peaceland.loadgen.fleet import Fleet
from peaceland.node.launch import ControlPlaneSecrets
from peaceland.node.platform import LocalPlatform
from peaceland.operator import manifests
from peaceland.stack import Stack, StackSettings
from peaceland.tenants.alerts import Alert
from peaceland.tenants.forces import AlertingSettings, ForceSettings, resources_for

console = Console(stderr=True)


def _say(message: str) -> None:
    console.print(f"[green]✓[/green] {message}")


def _show(alert: Alert) -> None:
    at = alert.reported_at.astimezone().strftime("%H:%M:%S")
    where = f"{alert.latitude:.5f}, {alert.longitude:.5f}"
    if alert.event == "raised":
        console.print(
            f"[bold red]ALERT[/bold red] {at}  [bold]{alert.citizen}[/bold] (score "
            f"{alert.score:.2f}) seen by {alert.drone_id} at {where}  [dim]{alert.alert_id}[/dim]"
        )
    else:
        console.print(
            f"[yellow]  seen again[/yellow] {at}  {alert.citizen} by {alert.drone_id} at {where}"
        )


def demo(
    force: Annotated[str, typer.Option(help="Id of the demo police force.")] = "demo",
    drones: Annotated[int, typer.Option(min=1, max=10_000, help="Simulated drones.")] = 100,
    rate: Annotated[float, typer.Option(min=1, help="Reports per second.")] = 50,
    threshold: Annotated[
        float, typer.Option(min=0, max=100, help="Alert below this score.")
    ] = 20.0,
    window: Annotated[int, typer.Option(min=0, help="Dedup window, in seconds.")] = 600,
    duration: Annotated[float, typer.Option(min=0, help="Seconds to run; 0: until Ctrl-C.")] = 0,
    kubernetes: Annotated[
        bool,
        typer.Option(
            help="Make the force through Kubernetes: a PoliceForce applied to the local API "
            "server, provisioned by the operator, its consumers run by the local node (built "
            "from source the first time: about 5 minutes). --no-kubernetes provisions directly."
        ),
    ] = True,
) -> None:
    """Run the platform locally: stack, a demo force, simulated drones, live alerts."""
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():  # a second Ctrl-C: stop now, without the summary
            raise KeyboardInterrupt
        console.print("[dim]stopping the demo force (Ctrl-C again to quit at once)…[/dim]")
        stop.set()

    # Ctrl-C (and SIGTERM) ends the demo cleanly: services stopped, reports read back.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(StackSettings(), progress=lambda m: console.print(f"[dim]·[/dim] {m}"))
    settings = ForceSettings(
        force_id=force,
        alerting=AlertingSettings(score_threshold=threshold, dedup_window_seconds=window),
    )
    try:
        started = stack.up(kubernetes=kubernetes)
        _say(
            "stack up: "
            + ", ".join(
                f"{s.name} ({'started' if s.name in started else 'reused'})" for s in stack.status()
            )
        )
        control_plane = keys = None
        if kubernetes:
            # The lake on the stack's S3 store, each force under users of its own there.
            platform = LocalPlatform(stack, manifests.definitions(), lake_on_store=True)
            platform.start(_say)
            made = ControlPlaneSecrets.of(stack.settings.state_dir)
            with ControlPlane(platform.control_plane_url) as api:
                keys = demo_run.through_the_api(api, made, settings, drones, _say)
                officer, officer_password = demo_run.demo_officer(
                    api, stack.settings.state_dir, force, _say
                )
            control_plane = (platform.control_plane_url, made.gateway_token_file)
            credentials = platform.credentials(force)
            _say(
                f"See {force} as its users do:\n"
                f"    its live alert dashboard: {platform.control_plane_url}/dashboard/, "
                f"signed in as {officer} with the password in {officer_password}\n"
                f"    the control plane: {platform.control_plane_url}/docs, signed in as "
                f"{made.admin_email} with the password in {made.admin_password_file}:\n"
                f"      peaceland login --email {made.admin_email} "
                f'--password "$(cat {made.admin_password_file})"\n'
                f"    Kubernetes: export KUBECONFIG={stack.kube_apiserver.kubeconfig} "
                f"PATH={stack.kube_apiserver.kubectl.parent}:$PATH\n"
                f"      kubectl get pf; kubectl describe pf {force}; "
                "kubectl apply -f tenants/examples/brest.yaml"
            )
        else:
            credentials = demo_run.provision(stack, settings, _say)
        summary = demo_run.run(
            stack,
            settings,
            credentials,
            drones=drones,
            rate=rate,
            duration=duration or None,
            say=_say,
            show=_show,
            stop=stop,
            consumers_elsewhere=kubernetes,
            control_plane=control_plane,
            drone_keys=keys,
        )
    except USER_ERRORS as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    _say(
        f"{summary.accepted} of {summary.sent} reports accepted in {summary.seconds:.0f}s; "
        f"{summary.read_back} read back from Cassandra; {summary.alerts_raised} alerts raised, "
        f"{summary.alert_updates} sightings of already-alerted citizens"
    )
    console.print("The servers keep running: `peaceland stack status`, `peaceland stack down`.")
    if summary.read_back != summary.accepted:
        console.print(
            f"[red]error:[/red] {summary.accepted - summary.read_back} accepted "
            "reports are missing from Cassandra"
        )
        raise typer.Exit(1)


def simulate(
    force: Annotated[str, typer.Option(help="Police force whose drones fly.")] = "demo",
    drones: Annotated[int, typer.Option(min=1, help="Simulated drones.")] = 100,
    reports: Annotated[int, typer.Option(min=1, help="Reports to send.")] = 10_000,
    rate: Annotated[float, typer.Option(min=1, help="Target reports per second.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed: the same seed flies the same fleet.")] = 1,
    low_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of reports with a low score.")
    ] = 0.01,
    threshold: Annotated[float, typer.Option(help="The force's alert threshold.")] = 20.0,
    via: Annotated[str, typer.Option(help="'gateway' (HTTP) or 'kafka' (straight).")] = "gateway",
    gateway_url: Annotated[
        str, typer.Option(help="The gateway's base URL.")
    ] = "http://127.0.0.1:8080",
    drone_key: Annotated[
        str | None, typer.Option(envvar="PEACELAND_DRONE_KEY", help="The force's drone key.")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=1_000, help="Reports per request.")] = 50,
) -> None:
    """Fly a simulated fleet into the platform; prints the ground truth as JSON."""
    fleet = Fleet(drones=drones, seed=seed, low_score_share=low_share, threshold=threshold)
    with console.status("sending…") as status:

        def progress(done: int) -> None:
            status.update(f"sent {done} of {reports} reports")

        try:
            if via == "kafka":
                truth = send_to_kafka(
                    fleet,
                    kafka=Stack(StackSettings()).endpoints().kafka,
                    topic=resources_for(force).reports_topic,
                    total=reports,
                    rate=rate,
                    progress=progress,
                )
            elif via == "gateway":
                if not drone_key:
                    raise CommandError(
                        "--drone-key (or PEACELAND_DRONE_KEY) is needed to send through the gateway"
                    )
                truth = send_to_gateway(
                    fleet,
                    url=gateway_url,
                    drone_key=drone_key,
                    total=reports,
                    rate=rate,
                    batch=batch,
                    progress=progress,
                )
            else:
                raise CommandError(f"--via is 'gateway' or 'kafka', not {via!r}")
        except USER_ERRORS as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    typer.echo(
        json.dumps(
            {
                "reports_sent": truth.sent,
                "reports_accepted": truth.accepted,
                "reports_rejected": truth.rejected,
                "low_score_sightings": len(truth.low_sightings),
                "citizens_to_alert": truth.expected_alerts(),
                "raw_bytes_per_report": round(truth.raw_bytes / max(truth.sent, 1), 1),
            },
            indent=2,
        )
    )
