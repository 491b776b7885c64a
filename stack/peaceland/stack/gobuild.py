"""Building Go programs (kube-apiserver, kubectl, etcd, helm) through the Go module proxy.

Our machines reach the Go module proxy but no release download site, so the Kubernetes
parts are built from source, as envtest does for Go operators (docs/kubernetes.md has the
recipe and its timings). Each program lands in ``<cache>/<name>-<version>/bin/``, written
under a temporary name and renamed when whole, so a second run builds nothing and an
interrupted one starts that program over. The throwaway Go modules live in
``<cache>/<name>-<version>/module/``; Go keeps its own module and build caches.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from peaceland.stack.errors import StackError
from peaceland.stack.fetch import Progress
from peaceland.stack.settings import ETCD_VERSION, HELM_VERSION, KUBERNETES_VERSION

_STAGING = re.compile(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+\./staging/", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Program:
    """One Go program to build: the package, the module that holds it and its version."""

    name: str
    package: str
    ldflags: str = ""
    tags: str = ""


def kubernetes_binaries(cache_dir: Path, progress: Progress) -> Path:
    """The folder holding kube-apiserver, kubectl and etcd, built the first time only."""
    target = cache_dir / f"kubernetes-{KUBERNETES_VERSION}"
    bin_dir = target / "bin"
    wanted = ("kube-apiserver", "kubectl", "etcd")
    if all(_usable(bin_dir / name) for name in wanted):
        return bin_dir
    go = _go()
    progress(
        f"building Kubernetes {KUBERNETES_VERSION} and etcd {ETCD_VERSION} from source through "
        f"the Go module proxy (once; about 5 minutes on 2 cores; cached in {bin_dir})"
    )
    started = time.monotonic()
    if not all(_usable(bin_dir / name) for name in ("kube-apiserver", "kubectl")):
        _build_kubernetes(go, target, progress)
    if not _usable(bin_dir / "etcd"):
        module = target / "module-etcd"
        _write_module(
            module,
            "peaceland.local/etcd",
            _go_line(go, module, f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"),
            [f"go.etcd.io/etcd/server/v3 {ETCD_VERSION}"],
            [],
        )
        _go_get(go, module, [f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], progress)
        # The server module's root package is etcd's main.
        _build(go, module, Program("etcd", "go.etcd.io/etcd/server/v3"), bin_dir, progress)
    progress(f"Kubernetes binaries ready in {time.monotonic() - started:.0f}s: {bin_dir}")
    return bin_dir


def helm_binary(cache_dir: Path, progress: Progress) -> Path:
    """The ``helm`` program, built the first time only.

    helm's go.mod replaces nothing, so ``go install`` builds it directly. The ldflags are
    those of helm's Makefile; the Kubernetes version it assumes offline (lint, template) is
    the one our stack runs.
    """
    target = cache_dir / f"helm-{HELM_VERSION}"
    helm = target / "bin" / "helm"
    if _usable(helm):
        return helm
    go = _go()
    progress(f"building helm {HELM_VERSION} through the Go module proxy (once; about 1 minute)")
    started = time.monotonic()
    _, minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    flags = [
        f"helm.sh/helm/v3/internal/version.{k}={v}"
        for k, v in (
            ("version", HELM_VERSION),
            ("metadata", ""),
            ("gitCommit", ""),
            ("gitTreeState", "clean"),
        )
    ]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"{pkg}.k8sVersionMajor=1", f"{pkg}.k8sVersionMinor={minor}"]
    staging = target / ".partial"
    staging.mkdir(parents=True, exist_ok=True)
    ldflags = "-s -w " + " ".join(f"-X {f}" for f in flags)
    argv = [
        go,
        "install",
        "-trimpath",
        "-ldflags",
        ldflags,
        f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}",
    ]
    _run(argv, staging, "building helm", extra_env={"GOBIN": str(staging)})
    helm.parent.mkdir(parents=True, exist_ok=True)
    (staging / "helm").replace(helm)
    progress(f"  built helm in {time.monotonic() - started:.0f}s: {helm}")
    return helm


def _build_kubernetes(go: str, target: Path, progress: Progress) -> None:
    module = target / "module"
    kubernetes = f"k8s.io/kubernetes@{KUBERNETES_VERSION}"
    go_mod = _download_go_mod(go, target, kubernetes)
    text = go_mod.read_text()
    staging = sorted(set(_STAGING.findall(text)))
    if not staging:
        raise StackError(f"no staging modules found in {go_mod}: has the recipe changed?")
    major, minor, patch = KUBERNETES_VERSION.lstrip("v").split(".")
    staging_version = f"v0.{minor}.{patch}"
    # Kubernetes' go.mod replaces its staging modules with ./staging, which Go ignores in a
    # dependency: our module names the published copies instead (docs/kubernetes.md).
    header = [line for line in text.splitlines() if line.startswith(("go ", "godebug "))]
    _write_module(
        module,
        "peaceland.local/kubernetes",
        "\n".join(header),
        [f"k8s.io/kubernetes {KUBERNETES_VERSION}"],
        [f"{m} => {m} {staging_version}" for m in staging],
    )
    _go_get(
        go,
        module,
        [f"k8s.io/kubernetes/cmd/{c}@{KUBERNETES_VERSION}" for c in ("kube-apiserver", "kubectl")],
        progress,
    )
    built = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ldflags = " ".join(
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
        for key, value in (
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", built),
        )
    )
    for command, expected in (("kube-apiserver", "about 4 minutes"), ("kubectl", "30 s")):
        progress(f"  building {command} (cold: {expected})")
        program = Program(
            command, f"k8s.io/kubernetes/cmd/{command}", ldflags, "selinux,notest,grpcnotrace"
        )
        _build(go, module, program, target / "bin", progress)


def _go() -> str:
    go = shutil.which("go")
    if go is None and Path("/usr/local/go/bin/go").exists():
        go = "/usr/local/go/bin/go"  # where Go's own installer puts it, often not on PATH
    if go is None:
        raise StackError(
            "Go is needed once to build kube-apiserver, etcd, kubectl and helm through the Go "
            "module proxy, and is not on PATH (looked in /usr/local/go/bin too)"
        )
    return go


def _env() -> dict[str, str]:
    flags = os.environ.get("GOFLAGS", "")
    return {
        **os.environ,
        "CGO_ENABLED": "0",
        # The machine's own Go: never download a toolchain.
        "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
        "GOFLAGS": f"{flags} -buildvcs=false".strip(),
    }


def _run(argv: list[str], cwd: Path, what: str, extra_env: dict[str, str] | None = None) -> str:
    # nice: a build must not starve servers that already run on the same two cores.
    result = subprocess.run(
        ["nice", "-n", "10", *argv],
        cwd=cwd,
        env={**_env(), **(extra_env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"{what} failed ({' '.join(argv)}):\n{result.stderr[-3000:]}")
    return result.stdout


def _download_go_mod(go: str, where: Path, module_at_version: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    out = _run(
        [go, "mod", "download", "-json", module_at_version],
        where,
        f"downloading {module_at_version} from the Go module proxy",
    )
    match = re.search(r'"GoMod":\s*"([^"]+)"', out)
    if not match:
        raise StackError(f"the Go module proxy returned no go.mod for {module_at_version}")
    return Path(match.group(1))


def _go_line(go: str, module: Path, module_at_version: str) -> str:
    go_mod = _download_go_mod(go, module, module_at_version)
    return "\n".join(
        line for line in go_mod.read_text().splitlines() if line.startswith(("go ", "godebug "))
    )


def _write_module(
    module: Path, name: str, header: str, requires: list[str], replaces: list[str]
) -> None:
    module.mkdir(parents=True, exist_ok=True)
    for stale in ("go.mod", "go.sum"):
        (module / stale).unlink(missing_ok=True)
    body = [f"module {name}", "", header, ""]
    body += [f"require {r}" for r in requires] + [""]
    body += [f"replace {r}" for r in replaces]
    (module / "go.mod").write_text("\n".join(body) + "\n")


def _go_get(go: str, module: Path, packages: list[str], progress: Progress) -> None:
    progress(f"  resolving {', '.join(p.split('@')[0] for p in packages)}")
    _run([go, "get", *packages], module, "resolving modules through the Go module proxy")


def _build(go: str, module: Path, program: Program, bin_dir: Path, progress: Progress) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    partial = bin_dir / f".{program.name}.partial"
    started = time.monotonic()
    argv = [go, "build", "-trimpath", "-ldflags", f"-s -w {program.ldflags}".strip()]
    if program.tags:
        argv += ["-tags", program.tags]
    _run([*argv, "-o", str(partial), program.package], module, f"building {program.name}")
    partial.replace(bin_dir / program.name)
    progress(f"  built {program.name} in {time.monotonic() - started:.0f}s")


def _usable(binary: Path) -> bool:
    return binary.is_file() and os.access(binary, os.X_OK)
