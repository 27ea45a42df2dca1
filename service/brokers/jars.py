"""Apache Kafka's jars, fetched once from Maven Central into a per-user cache with Maven.

Maven resolves the broker's dependency tree the same way every time, so nothing is vendored and no
tarball mirror is needed; the cache lives outside the repository and is reused across checkouts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from service.brokers.exceptions import JarFetchError, MissingToolError

__all__ = [
    "KAFKA_VERSION",
    "LOG4J_VERSION",
    "default_cache_dir",
    "fetch_jars",
    "jars_present",
    "libs_dir",
    "require_tool",
]

KAFKA_VERSION = "4.1.1"
# The log4j-core version kafka_2.13 pulls in; the SLF4J 1.x binding must match it.
LOG4J_VERSION = "2.24.3"
_DEPENDENCY_PLUGIN_VERSION = "3.8.1"
_MARKER = ".complete"
_DEBIAN_PACKAGES = {"java": "openjdk-17-jre-headless", "mvn": "maven"}

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>linepulse</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <!-- Without an SLF4J binding the broker logs nothing at all (SLF4J NOP). -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{plugin}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


def default_cache_dir() -> Path:
    """``$LINEPULSE_CACHE_DIR``, else ``~/.cache/linepulse``."""
    configured = os.environ.get("LINEPULSE_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "linepulse"


def libs_dir(cache_dir: Path | None = None) -> Path:
    """Where the jars of ``KAFKA_VERSION`` live (or will live) inside the cache."""
    return (cache_dir or default_cache_dir()) / f"kafka-{KAFKA_VERSION}" / "libs"


def jars_present(cache_dir: Path | None = None) -> bool:
    """True once a complete copy is in the cache (the marker is written only after one)."""
    libs = libs_dir(cache_dir)
    return (libs.parent / _MARKER).is_file() and libs.is_dir()


def require_tool(name: str) -> str:
    """Absolute path of an external program, or an error naming the Debian package that provides it."""
    path = shutil.which(name)
    if path is None:
        package = _DEBIAN_PACKAGES.get(name, name)
        raise MissingToolError(f"'{name}' not found on PATH; install it with: apt-get install {package}")
    return path


def fetch_jars(cache_dir: Path | None = None) -> Path:
    """Download Apache Kafka and its runtime dependencies (once) and return the libs directory."""
    libs = libs_dir(cache_dir)
    if jars_present(cache_dir):
        return libs
    mvn = require_tool("mvn")
    require_tool("java")
    version_dir = libs.parent
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / _MARKER).unlink(missing_ok=True)
    # Copy into a scratch directory and rename, so an interrupted fetch never looks complete.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=version_dir) as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "pom.xml").write_text(
            _POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION, plugin=_DEPENDENCY_PLUGIN_VERSION),
            encoding="utf-8",
        )
        staged = scratch / "libs"
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(scratch / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staged}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise JarFetchError(f"mvn failed with exit code {result.returncode}:\n{output}")
        jars = sorted(p.name for p in staged.glob("*.jar"))
        if not any(name.startswith(f"kafka_2.13-{KAFKA_VERSION}") for name in jars):
            raise JarFetchError(f"mvn finished but {staged} holds no kafka_2.13-{KAFKA_VERSION} jar")
        if libs.exists():
            shutil.rmtree(libs)
        staged.rename(libs)
    (version_dir / _MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
    return libs
