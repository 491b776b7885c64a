"""Two replicas of the operator: the one of higher priority acts, the other waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from peaceland.node.launch import ServiceProcess
from tests.conftest import render_chart
from tests.operator.kube_helpers import Kubectl, eventually, example

StartOperator = Callable[..., ServiceProcess]


@pytest.fixture
def served_namespace(kubectl: Kubectl, helm: Path, namespace: str) -> Iterator[str]:
    """The chart as installed to serve the test's namespace only: its RoleBinding there
    (with the peering rights of that mode) and its KopfPeering, applied for real."""
    rendered = render_chart(
        helm,
        f"watchNamespaces={{{namespace}}}",
        f"api.forcesNamespace={namespace}",
        release=f"r-{namespace}",
    )
    kubectl("apply", "-f", "-", stdin=rendered)
    yield namespace
    kubectl("delete", "-f", "-", "--wait=false", stdin=rendered)


def test_two_replicas_never_both_act_and_the_waiting_one_takes_over(
    kubectl: Kubectl, served_namespace: str, start_operator: StartOperator
):
    namespace = served_namespace
    kubectl.get("kopfpeering", "peaceland", namespace)  # made by the chart
    high = start_operator(name="high", peering="peaceland", priority="20")
    low = start_operator(name="low", peering="peaceland", priority="10")
    # Both have announced themselves in the peering object before any force exists.
    eventually(
        lambda: len(kubectl.get("kopfpeering", "peaceland", namespace).get("status") or {}) == 2,
        30,
        "both replicas in the peering object",
    )
    first = example("brest")
    kubectl.apply(first, namespace)
    kubectl.mark_available("brest", namespace)
    eventually(
        lambda: kubectl.force("brest", namespace).get("status", {}).get("phase") == "Ready",
        30,
        "brest to be Ready",
    )
    assert "Handler 'provision' succeeded" in high.log_file.read_text()
    # The low one waited: it handled nothing.
    assert "Handler 'provision'" not in low.log_file.read_text()

    high.stop()  # a clean exit withdraws it from the peering object at once
    second = example("brest")
    second["metadata"]["name"] = f"{namespace}-x"
    kubectl.apply(second, namespace)
    kubectl.mark_available(second["metadata"]["name"], namespace)
    eventually(
        lambda: (
            kubectl.force(second["metadata"]["name"], namespace).get("status", {}).get("phase")
            == "Ready"
        ),
        30,
        "the second force to be Ready",
    )
    assert "Handler 'provision' succeeded" in low.log_file.read_text()
