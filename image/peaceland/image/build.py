"""The platform's OCI image, built with no Docker engine and no compiler inside.

One image holds every process of the platform; each is one entrypoint, chosen by the
command of its Deployment (``python -m <module>``, ``ENTRYPOINTS``). Two layers:

1. **Debian's Python**: ``mmdebstrap`` (Debian's daemonless bootstrapper) makes a root
   filesystem of the ``essential`` packages plus Python 3.11, CA certificates and time
   zones, straight from Debian's archive, as a tar archive. No package manager runs in the
   image later, and no compiler is ever in it. The layer is cached (its packages too), so a
   second build fetches nothing; ``refresh_base`` takes the archive's security updates.
2. **PeaceLand**: a virtual environment in ``/opt/peaceland`` holding the locked runtime
   wheels (``requirements-runtime.lock``, no development tools) and our own wheel, installed
   by pip run from its own wheel inside the first layer's root (so no pip stays behind),
   and the ``peaceland`` user (uid 10001) the processes run as.

``umoci`` (the OCI project's own tool, no daemon) stacks the two tar archives into an OCI
image layout and writes its configuration (user, PATH, labels); the layout is archived as
one ``.oci.tar`` file. Every timestamp is the commit's (``SOURCE_DATE_EPOCH``), entries
are sorted and owned by root, Python's byte-code is hashed, not dated: a second build of
one commit gives the same layers, as long as Debian's archive serves the same packages
(a base refreshed after a security update differs, and says so in its packages list).

Needs root (mmdebstrap's ``root`` mode and a chroot); the tools come from Debian's packages,
installed once if missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from peaceland.stack.errors import StackError
from peaceland.stack.fetch import apt_install

Progress = Callable[[str], None]

#: Debian's release and archive the first layer comes from: the release, its updates and its
#: security updates (what a refreshed base takes).
SUITE: Final = "bookworm"
SOURCES: Final = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
#: Every timestamp of the first layer (2026-01-01): the same packages give the same layer,
#: whichever commit or machine made it.
BASE_EPOCH: Final = 1_767_225_600
#: Files of every file system that a runtime provides, and that would carry the build
#: machine's own (its resolver, its name).
_HOST_FILES: Final = ("etc/resolv.conf", "etc/hostname")
#: Beside the ``essential`` set: the interpreter (Debian's 3.11), the C++ runtime the
#: wheels of pyarrow and DuckDB link to (manylinux wheels expect it), TLS roots for managed
#: Kafka and Cassandra, time zones for the logs.
PACKAGES: Final = ("python3.11", "libstdc++6", "ca-certificates", "tzdata")
#: What the first layer leaves out: manuals, docs (but each package's licence), locales.
_DPKG_EXCLUDES: Final = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)
#: The pip that installs the wheels, run from its wheel and never installed.
PIP: Final = "pip==23.2.1"
#: The unprivileged user every process runs as.
UID: Final = 10001
USER: Final = "peaceland"
VENV: Final = "/opt/peaceland"
#: The platform's processes: what a Deployment's command names.
ENTRYPOINTS: Final = {
    "gateway": "peaceland.services.gateway",
    "archiver": "peaceland.services.archiver",
    "alerter": "peaceland.services.alerter",
    "lake": "peaceland.services.lake",
    "operator": "peaceland.operator",
    "api": "peaceland.api",
}
#: The image's reference name in its archive (the tag is the version and the commit).
NAME: Final = "peaceland"
RUNTIME_LOCK: Final = "requirements-runtime.lock"
#: Where the wheels are while they are installed (inside the root being built; removed).
_INSIDE: Final = "/wheels"


class ImageError(StackError):
    """The image could not be built or read; the message says why."""


@dataclass(frozen=True)
class BuiltImage:
    archive: Path
    #: ``peaceland:<version>-<commit>``, the reference name inside the archive.
    reference: str
    #: The manifest's digest: what a registry calls the image.
    digest: str
    #: The layers' digests (compressed), base first.
    layers: list[str]
    revision: str
    #: Whether the working tree differed from the commit (its files went in as they were).
    dirty: bool
    size_bytes: int
    seconds: float
    base_packages: int

    def summary(self) -> dict[str, Any]:
        return asdict(self) | {"archive": str(self.archive)}


def build_image(
    repo: Path,
    cache_dir: Path,
    output: Path,
    progress: Progress,
    *,
    refresh_base: bool = False,
) -> BuiltImage:
    """Build the image of the working tree ``repo`` into the archive ``output``."""
    began = time.monotonic()
    _require_root()
    _commit(repo)  # a checkout, before anything is installed
    tools = _tools(progress)
    cache = cache_dir / "image"
    cache.mkdir(parents=True, exist_ok=True)
    # Modes in the image never depend on who builds it.
    umask = os.umask(0o022)
    try:
        with _locked(cache, progress):
            return _build(repo, cache, output, tools, progress, refresh_base, began)
    finally:
        os.umask(umask)


@contextmanager
def _locked(cache: Path, progress: Progress) -> Iterator[None]:
    """One build at a time on a cache (its base, its packages, its wheels); a scratch
    folder a killed build left is swept."""
    with (cache / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another image build holds the cache; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in cache.glob("peaceland-image-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for partial in cache.glob("*.partial"):
            partial.unlink(missing_ok=True)
        yield


def _build(
    repo: Path,
    cache: Path,
    output: Path,
    tools: _Tools,
    progress: Progress,
    refresh_base: bool,
    began: float,
) -> BuiltImage:
    revision, epoch, dirty = _commit(repo)
    version = _version(repo)
    base = _base_layer(cache, tools, progress, refresh=refresh_base)
    with tempfile.TemporaryDirectory(prefix="peaceland-image-", dir=cache) as scratch:
        work = Path(scratch)
        wheels = _wheels(repo, cache / "wheels", work / "wheels", epoch, progress)
        app = _app_layer(base, wheels, work, epoch, progress)
        tag = f"{version}-{revision[:12]}{'-dirty' if dirty else ''}"
        layout = work / "oci"
        _pack(tools, layout, tag, [base, app], epoch, revision, version, progress)
        output.parent.mkdir(parents=True, exist_ok=True)
        _archive(layout, output, epoch)
        digest, layers = _manifest(layout, tag)
    built = BuiltImage(
        archive=output,
        reference=f"{NAME}:{tag}",
        digest=digest,
        layers=layers,
        revision=revision,
        dirty=dirty,
        size_bytes=output.stat().st_size,
        seconds=round(time.monotonic() - began, 1),
        base_packages=_count_packages(base),
    )
    progress(f"image {built.reference} {built.digest} → {output} ({built.seconds:.0f}s)")
    return built


@dataclass(frozen=True)
class _Tools:
    mmdebstrap: Path
    umoci: Path


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ImageError(
            "the image is built as root (mmdebstrap's root mode and a chroot): run "
            "`make image` with sudo"
        )


def _tools(progress: Progress) -> _Tools:
    found = {}
    for program in ("mmdebstrap", "umoci"):
        path = shutil.which(program)
        if path is None:
            apt_install(program, program, progress)
            path = shutil.which(program)
        if path is None:
            raise ImageError(f"apt-get installed {program} but no {program} program was found")
        found[program] = Path(path)
    for program in ("unshare", "chroot", "mount"):
        if shutil.which(program) is None:
            raise ImageError(f"{program} is needed (Debian's util-linux / coreutils)")
    return _Tools(**found)


def _run(
    argv: list[str], what: str, *, env: dict[str, str] | None = None, clean: bool = False
) -> str:
    """``argv``'s output; ``env`` beside this process's environment, or alone if ``clean``."""
    environment = dict(env or {}) if clean else {**os.environ, **(env or {})}
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise ImageError(
            f"{what} failed ({argv[0]}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def _commit(repo: Path) -> tuple[str, int, bool]:
    """The commit built, its time (every timestamp of the image), and whether the tree
    has changes of its own."""
    try:
        revision = _run(["git", "-C", str(repo), "rev-parse", "HEAD"], "git").strip()
        epoch = int(_run(["git", "-C", str(repo), "log", "-1", "--format=%ct"], "git").strip())
        changes = _run(["git", "-C", str(repo), "status", "--porcelain"], "git")
    except (ImageError, FileNotFoundError) as exc:
        raise ImageError(f"the image is built from a git checkout: {exc}") from exc
    return revision, epoch, bool(changes.strip())


def _pyproject(repo: Path) -> dict[str, Any]:
    with (repo / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _version(repo: Path) -> str:
    return str(_pyproject(repo)["project"]["version"])


def _build_requirements(repo: Path) -> list[str]:
    return [str(r) for r in _pyproject(repo)["build-system"]["requires"]]


def _base_recipe() -> list[str]:
    """mmdebstrap's arguments, less its hooks and paths: the base layer's identity."""
    return [
        "--variant=essential",
        f"--include={','.join(PACKAGES)}",
        "--components=main",
        # /bin → /usr/bin as Debian does, without the usrmerge package (and the Perl it pulls).
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        # No device nodes in a layer: the container runtime makes /dev.
        "--skip=output/dev,output/mknod",
        *(f"--dpkgopt={option}" for option in _DPKG_EXCLUDES),
        SUITE,
    ]


def _base_layer(cache: Path, tools: _Tools, progress: Progress, *, refresh: bool) -> Path:
    """Debian's Python as a tar archive, made once per recipe (and per refresh)."""
    recipe = _base_recipe()
    key = hashlib.sha256(json.dumps([recipe, SOURCES, BASE_EPOCH]).encode()).hexdigest()[:16]
    layer = cache / f"base-{key}.tar"
    if layer.exists() and not refresh:
        progress(f"base layer: {layer} (cached; --refresh-base takes Debian's updates)")
        return layer
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    progress(f"base layer: Debian {SUITE} essential + {', '.join(PACKAGES)} (about a minute)")
    partial = layer.with_suffix(".partial")
    _run(
        [
            # Its mounts (proc, sys, dev) end with this namespace, even if it is killed.
            "unshare",
            "--mount",
            "--propagation=private",
            str(tools.mmdebstrap),
            "--mode=root",
            "--quiet",
            # The packages come from and go back to our cache: a rebuild downloads none.
            "--skip=essential/unlink",
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
            f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
            f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
            "--customize-hook=rm -f " + " ".join(f'"$1/{f}"' for f in _HOST_FILES),
            # No setuid or setgid program (su, newgrp …): nothing in the image gains rights.
            '--customize-hook=find "$1" -xdev -type f -perm /6000 -exec chmod ug-s {} +',
            "--format=tar",
            *recipe,
            str(partial),
            *SOURCES,
        ],
        "mmdebstrap",
        env={"SOURCE_DATE_EPOCH": str(BASE_EPOCH)},
    )
    partial.replace(layer)
    for other in cache.glob("base-*.tar"):  # an older recipe's, never used again
        if other != layer:
            other.unlink()
    progress(f"base layer: {layer} ({layer.stat().st_size // 2**20} MiB)")
    return layer


def _wheels(repo: Path, cache: Path, out: Path, epoch: int, progress: Progress) -> Path:
    """The locked runtime wheels (cached: a rebuild fetches nothing), pip's own wheel, and
    our package's wheel, in ``out``."""
    cache.mkdir(parents=True, exist_ok=True)
    lock = repo / RUNTIME_LOCK
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # pip's wheel, and what builds ours (hatchling), beside the runtime's.
    wanted = ["-r", str(lock), PIP, *_build_requirements(repo)]
    try:
        _run([*pip, "wheel", "--no-index", "--find-links", str(cache), "-w", str(cache), *wanted],
             "pip wheel (offline)")  # fmt: skip
    except ImageError:
        progress("wheels: fetching the locked runtime wheels (once)")
        _run([*pip, "wheel", "--find-links", str(cache), "-w", str(cache), *wanted], "pip wheel")
    out.mkdir(parents=True)
    for wheel in cache.glob("*.whl"):
        shutil.copy2(wheel, out / wheel.name)
    shutil.copy2(lock, out / RUNTIME_LOCK)
    progress("wheels: building PeaceLand's own")
    _run(
        [*pip, "wheel", "--no-deps", "--no-index", "--find-links", str(cache), "-w", str(out),
         str(repo)],
        "building PeaceLand's wheel",
        env={"SOURCE_DATE_EPOCH": str(epoch)},
    )  # fmt: skip
    [ours] = out.glob("peaceland-*.whl")
    _check_dashboard(ours)
    return out


#: The dashboard's bundle, as ``make install`` builds it (git ignores it: checked here).
_BUNDLE: Final = "peaceland/api/dashboard/static/"
_BUNDLE_FILE: Final = re.compile(r"[\w.-]+\.(js|mjs|css|geojson|txt)")


def _check_dashboard(wheel: Path) -> None:
    """Our wheel holds the dashboard's bundle, and nothing else from that folder (a stray
    file there, invisible to git, would ship)."""
    with zipfile.ZipFile(wheel) as archive:
        bundled = [n[len(_BUNDLE) :] for n in archive.namelist() if n.startswith(_BUNDLE)]
    if "app.js" not in bundled:
        raise ImageError(
            "the dashboard is not built (api/peaceland/api/dashboard/static/app.js): run "
            "`make install` first (`make image` does)"
        )
    strays = [name for name in bundled if not _BUNDLE_FILE.fullmatch(name)]
    if strays:
        raise ImageError(
            f"files in api/peaceland/api/dashboard/static/ that the dashboard's build does not "
            f"make would ship in the image: {', '.join(sorted(strays))}; remove them"
        )


def _chroot(root: Path, argv: list[str], what: str, epoch: int) -> None:
    """Run ``argv`` inside ``root`` with the host's /dev, in a mount namespace of its own
    (nothing stays mounted after)."""
    script = 'mount --rbind /dev "$1/dev" && root="$1" && shift && exec chroot "$root" "$@"'
    _run(
        ["unshare", "--mount", "--fork", "sh", "-c", script, "sh", str(root), *argv],
        what,
        env={
            "SOURCE_DATE_EPOCH": str(epoch),  # byte-code hashed, not dated
            "PYTHONHASHSEED": "0",
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
        },
        clean=True,  # nothing of this machine's (its pip settings, say) inside
    )


def _app_layer(base: Path, wheels: Path, work: Path, epoch: int, progress: Progress) -> Path:
    """The virtual environment and the user, installed over the base, as a tar archive of
    what they add."""
    root = work / "rootfs"
    root.mkdir()
    _run(["tar", "--numeric-owner", "-xpf", str(base), "-C", str(root)], "unpacking the base")
    (root / "dev").mkdir(exist_ok=True)
    shutil.copytree(wheels, root / _INSIDE.lstrip("/"))
    [ours] = (w.name for w in wheels.glob("peaceland-*.whl"))
    pip = f"pip-{PIP.split('==')[1]}-py3-none-any.whl"
    progress("app layer: installing the wheels into /opt/peaceland")
    _chroot(root, ["/usr/bin/python3.11", "-m", "venv", "--without-pip", VENV], "venv", epoch)
    _chroot(
        root,
        [
            f"{VENV}/bin/python",
            f"{_INSIDE}/{pip}/pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--no-cache-dir",
            f"--find-links={_INSIDE}",
            "-r",
            f"{_INSIDE}/{RUNTIME_LOCK}",
            f"{_INSIDE}/{ours}",
        ],
        "installing the wheels",
        epoch,
    )
    shutil.rmtree(root / _INSIDE.lstrip("/"))
    for name in ("passwd", "group"):
        path = root / "etc" / name
        line = (
            f"{USER}:x:{UID}:{UID}::/nonexistent:/usr/sbin/nologin"
            if name == "passwd"
            else f"{USER}:x:{UID}:"
        )
        path.write_text(path.read_text() + line + "\n")
    layer = work / "app.tar"
    _write_layer(root, ["etc/passwd", "etc/group", "opt"], layer, epoch)
    progress(f"app layer: {layer.stat().st_size // 2**20} MiB")
    return layer


def _entries(root: Path, top: str) -> Iterator[str]:
    """``top`` and, for a folder, everything under it, sorted, as paths relative to root."""
    yield top
    path = root / top
    if path.is_dir() and not path.is_symlink():
        for child in sorted(os.listdir(path)):
            yield from _entries(root, f"{top}/{child}")


def _write_layer(root: Path, tops: list[str], out: Path, epoch: int) -> None:
    """A layer as a tar archive that depends only on the files' contents: sorted, owned by
    root, dated ``epoch``, folders 0755 and files 0644 (0755 for programs)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for top in sorted(tops):
            for relative in _entries(root, top):
                info = tar.gettarinfo(str(root / relative), arcname=relative)
                info.mtime = epoch
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                # Read by all, written by root alone, whatever the builder's umask was.
                if info.isdir():
                    info.mode = 0o755
                elif info.isreg():
                    info.mode = 0o755 if info.mode & 0o111 else 0o644
                if info.isreg():
                    with (root / relative).open("rb") as file:
                        tar.addfile(info, file)
                else:
                    tar.addfile(info)


def _pack(
    tools: _Tools,
    layout: Path,
    tag: str,
    layers: list[Path],
    epoch: int,
    revision: str,
    version: str,
    progress: Progress,
) -> None:
    progress("packing the OCI image (umoci)")
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    image = f"{layout}:{tag}"
    umoci = str(tools.umoci)
    _run([umoci, "init", "--layout", str(layout)], "umoci init")
    _run([umoci, "new", "--image", image], "umoci new")
    for layer, made_by in zip(
        layers, (f"mmdebstrap {SUITE} {' '.join(PACKAGES)}", "pip install PeaceLand"), strict=True
    ):
        _run(
            [umoci, "raw", "add-layer", "--image", image, f"--history.created={created}",
             f"--history.created_by={made_by}", str(layer)],
            "umoci raw add-layer",
        )  # fmt: skip
    _run(
        [
            umoci,
            "config",
            "--image",
            image,
            f"--created={created}",
            f"--history.created={created}",
            "--history.created_by=umoci config",
            "--os=linux",
            "--architecture=amd64",
            f"--config.user={UID}:{UID}",
            f"--config.env=PATH={VENV}/bin:/usr/bin:/bin",
            "--config.env=PYTHONUNBUFFERED=1",
            "--config.env=PYTHONDONTWRITEBYTECODE=1",
            # The home (/nonexistent) is not a folder: caches go to the writable /tmp.
            "--config.env=XDG_CACHE_HOME=/tmp/.cache",
            "--config.workingdir=/tmp",
            # Run as is, the image is a gateway; each Deployment names its process.
            *(f"--config.cmd={arg}" for arg in ("python", "-m", ENTRYPOINTS["gateway"])),
            f"--config.label=org.opencontainers.image.revision={revision}",
            f"--config.label=org.opencontainers.image.version={version}",
            "--config.label=org.opencontainers.image.title=PeaceLand",
            "--config.label=io.peaceland.entrypoints="
            + ",".join(f"{name}=python -m {module}" for name, module in ENTRYPOINTS.items()),
        ],
        "umoci config",
    )
    _run([umoci, "gc", "--layout", str(layout)], "umoci gc")


def _archive(layout: Path, output: Path, epoch: int) -> None:
    partial = output.with_name(f".{output.name}.partial")
    entries = [p.relative_to(layout).as_posix() for p in layout.iterdir()]
    _write_layer(layout, entries, partial, epoch)
    partial.replace(output)


def _manifest(layout: Path, tag: str) -> tuple[str, list[str]]:
    index = json.loads((layout / "index.json").read_text())
    for descriptor in index["manifests"]:
        if descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            digest = str(descriptor["digest"])
            algorithm, hexdigest = digest.split(":", 1)
            manifest = json.loads((layout / "blobs" / algorithm / hexdigest).read_text())
            return digest, [str(layer["digest"]) for layer in manifest["layers"]]
    raise ImageError(f"the image layout holds no {tag}")


def _count_packages(base: Path) -> int:
    with tarfile.open(base) as tar:
        status = tar.extractfile("./var/lib/dpkg/status")
        if status is None:
            return 0
        return sum(1 for line in status.read().decode().splitlines() if line.startswith("Package:"))


def unpack(archive: Path, bundle: Path, progress: Progress) -> Path:
    """The image's root filesystem, unpacked into ``bundle`` (umoci's runtime bundle);
    returns the root filesystem's folder."""
    tools = _tools(progress)
    layout = bundle.with_name(f"{bundle.name}-layout")
    layout.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_text())
    [tag] = [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]]
    _run([str(tools.umoci), "unpack", "--image", f"{layout}:{tag}", str(bundle)], "umoci unpack")
    shutil.rmtree(layout)
    return bundle / "rootfs"


def contained(rootfs: Path, argv: list[str], *, uid: int = UID) -> list[str]:
    """The command that runs ``argv`` inside an unpacked image the way our Deployments run
    it (a read-only root, a fresh /tmp, no privilege to gain) and the least way a container
    runtime would: mount and process namespaces of its own, its own /proc, the host's /dev,
    /etc/hosts and /etc/resolv.conf bound in, chrooted into ``rootfs``, as ``uid``; on the
    host's network (the local stack). Weaker than a runtime: the host's whole /dev.
    Start it in a session of its own and signal the session's group: the process inside is
    in it. Needs root."""
    script = (
        # The host's tools found on the host's PATH; the image's PATH given to the process.
        'set -e; r="$1"; shift; p="$PATH"; PATH=/usr/sbin:/usr/bin:/sbin:/bin; '
        'c="$(command -v chroot)"; mkdir -p "$r/dev" "$r/tmp" "$r/proc"; '
        'mount --bind "$r" "$r"; mount --rbind /dev "$r/dev"; '
        "for f in /etc/hosts /etc/resolv.conf; do "
        'if [ -e "$f" ]; then touch "$r$f"; mount --bind "$f" "$r$f"; fi; done; '
        'mount -t tmpfs -o mode=1777,size=64m tmpfs "$r/tmp"; '
        'mount -t proc proc "$r/proc"; '
        'mount -o remount,bind,ro "$r"; '
        's="$(command -v setpriv)"; '
        f'PATH="$p"; exec "$s" --no-new-privs "$c" --userspec={uid}:{uid} "$r" "$@"'
    )
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    # A process namespace of its own: nothing inside outlives the command (--kill-child).
    return [unshare, "--mount", "--pid", "--fork", "--kill-child", "/bin/sh", "-c", script,
            "sh", str(rootfs), *argv]  # fmt: skip
