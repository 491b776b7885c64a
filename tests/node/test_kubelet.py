"""The local node's pod volumes, without a server: what each replica's process is given."""

from __future__ import annotations

from pathlib import Path

from peaceland.node.kubelet import LocalNode, Replica
from peaceland.tenants.workloads import LAKE_WORK_DIR

POD = {"volumes": [{"name": "work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]}
CONTAINER = {
    "volumeMounts": [
        {"name": "work", "mountPath": LAKE_WORK_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ],
    "env": [
        {"name": "WORK", "value": LAKE_WORK_DIR},
        {"name": "OTHER", "value": f"{LAKE_WORK_DIR}-other/file"},
        {"name": "TMP_FILE", "value": "/tmp/x"},
    ],
}


def _node(tmp_path: Path) -> LocalNode:
    node = LocalNode.__new__(LocalNode)  # no API server: only the volumes are asked for
    node.state_dir, node.root, node.namespaces = tmp_path, tmp_path / "node", ["ns"]
    return node


def test_each_replica_gets_its_own_empty_dir_and_only_its_mount_paths_are_rewritten(
    tmp_path: Path,
):
    """An emptyDir is a pod's: two replicas of the lake consumer never share the folder
    their compactions copy hours into."""
    node = _node(tmp_path)
    mounts = node._volumes("ns", "f-lake", POD, CONTAINER)
    first = node._process("a", CONTAINER, Replica("ns", "f-lake", 0), mounts, 1).env
    second = node._process("b", CONTAINER, Replica("ns", "f-lake", 1), mounts, 2).env
    assert first["WORK"] != second["WORK"]
    assert Path(first["WORK"]).is_dir()
    assert Path(first["WORK"]).stat().st_mode & 0o777 == 0o700
    assert str(tmp_path) in first["WORK"]
    # A value that only starts with the same characters is another path: left alone.
    assert first["OTHER"] == f"{LAKE_WORK_DIR}-other/file"
    assert first["TMP_FILE"] == "/tmp/x"  # the machine's own /tmp, shared
