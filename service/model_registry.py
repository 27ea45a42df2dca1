"""The model registry: versioned anomaly-model artifacts in a directory, stored and loaded safely.

Layout of a registry directory::

    REGISTRY/
      NAME/                       one directory per model name ([A-Za-z0-9_.-], e.g. demo.M01 or press)
        manifest.json             {"format", "name", "latest", "versions": [{version, file, sha256, ...}]}
        v1.skops, v2.skops, ...   the artifacts

Trust model. An artifact is a skops file (a zip of JSON and numpy arrays: loading it runs no code
of its own, unlike a pickle). Loading :func:`load_version`:

1. reads the file named by the manifest (a file name, never a path: ``../`` is refused) and
   compares its SHA-256 with the manifest's: a changed byte is refused;
2. refuses a pickle outright, and anything that is not a zip;
3. lists every type the file's schema names and refuses the file if one is not in
   :data:`TRUSTED_TYPES`, the explicit list of what a linepulse model contains (skops's own defaults
   are not relied on), then lets skops load it with exactly that list;
4. checks the artifact's structure (format tag, shapes) before building the model.

Every refusal is a :class:`~service.exceptions.ModelFileError` naming the file and the reason. The
manifest is only as trustworthy as the directory: the hash detects a swapped or corrupted artifact,
not an attacker who can also rewrite the manifest, so keep the directory writable by the trainer only.

Writes are atomic (a temporary file renamed into place; the manifest last), so a reader sees either
the previous version or the complete new one: that is what makes hot reload safe.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.anomaly.detector import Detector
from models.anomaly.features import FeatureSpec
from models.anomaly.isolation_forest import KIND as IFOREST
from models.anomaly.isolation_forest import IsolationForestDetector
from models.anomaly.pca_t2q import KIND as PCA_T2Q
from models.anomaly.pca_t2q import PcaT2Q
from models.anomaly.scoring import AnomalyModel
from service.exceptions import ModelFileError

__all__ = [
    "ARTIFACT_FORMAT",
    "MANIFEST",
    "TRUSTED_TYPES",
    "ModelRegistry",
    "ModelVersion",
    "artifact_types",
]

ARTIFACT_FORMAT: Final = "linepulse.anomaly-model/1"
MANIFEST_FORMAT: Final = "linepulse.model-registry/1"
MANIFEST: Final = "manifest.json"
# Far above a real model (an IsolationForest of 100 trees is a few MB), far below what would starve
# a worker reading it: the registry's files are read whole, for their hash, before anything else.
MAX_ARTIFACT_BYTES: Final = 256 * 1024 * 1024
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_VERSION: Final = re.compile(r"^v([1-9][0-9]{0,8})$")

# Everything a linepulse model artifact may contain. Builtin containers and numpy arrays make up the
# PCA detector; the isolation forest adds scikit-learn's estimator and its trees.
TRUSTED_TYPES: Final[frozenset[str]] = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.NoneType",
        "numpy.ndarray",
        "numpy.int64",
        "numpy.float64",
        "sklearn.ensemble._iforest.IsolationForest",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
    }
)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A manifest entry: which file, its hash, and what the model is."""

    name: str
    version: str
    file: str
    sha256: str
    created: str
    metadata: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "file": self.file,
            "sha256": self.sha256,
            "created": self.created,
            "metadata": dict(self.metadata),
        }


def _format_mismatch(data: object, expected: str, what: str) -> str:
    """Why ``data`` is not of format ``expected``: another version of it (a newer linepulse wrote it:
    upgrade, do not retrain) is told apart from something else."""
    found = data.get("format") if isinstance(data, dict) else None
    family = expected.rsplit("/", 1)[0] + "/"
    if isinstance(found, str) and found.startswith(family):
        return f"format {found!r}: this linepulse reads {expected!r} (written by another linepulse version?)"
    return f"not a {expected} {what}"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes it 0600: a worker running as another user than the trainer (the Docker
        # image's uid 10001) could not read it. A new file's usual mode instead, under the umask.
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _walk_types(root: Any) -> Iterator[str]:
    # With an explicit stack: a schema nested as deep as the JSON decoder allows must not exhaust
    # the recursion limit here.
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(name, str):
                yield f"{module}.{name}"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def artifact_types(data: bytes, where: str) -> set[str]:
    """Every type a skops file's schema names (what loading it would construct)."""
    if data[:1] == b"\x80" or data[:2] in (b"(d", b"(l", b"}q", b"]q"):
        raise ModelFileError(f"{where}: refused: the file is a pickle; only skops artifacts are loaded")
    if not data.startswith(b"PK\x03\x04"):
        raise ModelFileError(f"{where}: refused: not a skops artifact (not a zip file)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelFileError(f"{where}: refused: unreadable skops archive ({exc})") from None
    except RecursionError:
        raise ModelFileError(f"{where}: refused: schema.json is nested too deeply to read") from None
    return set(_walk_types(schema))


def _detector_from(data: Mapping[str, Any]) -> Detector:
    kind = data.get("kind")
    if kind == PCA_T2Q:
        return PcaT2Q.from_artifact(dict(data))
    if kind == IFOREST:
        return IsolationForestDetector.from_artifact(dict(data))
    raise ValueError(f"unknown detector kind {kind!r}")


def model_from_artifact(artifact: Any, name: str, version: str) -> AnomalyModel:
    """Build the serving model from a loaded artifact dict (an exception if malformed)."""
    if not isinstance(artifact, dict) or artifact.get("format") != ARTIFACT_FORMAT:
        raise ValueError(_format_mismatch(artifact, ARTIFACT_FORMAT, "artifact"))
    features = artifact["features"]
    spec = FeatureSpec(
        signals=tuple(str(s) for s in features["signals"]),
        window=int(features["window"]),
        stats=tuple(str(s) for s in features["stats"]),
    )
    detector = _detector_from(artifact["detector"])
    threshold = float(artifact["threshold"])
    if detector.kind == "isolation_forest" and threshold >= 1.0:
        raise ValueError(f"threshold {threshold:.4g}: an isolation forest never scores above 1")
    return AnomalyModel(
        name=name,
        version=version,
        features=spec,
        detector=detector,
        threshold=threshold,
        consecutive=int(artifact["consecutive"]),
        release=float(artifact.get("release", 1.0)),
        hold_ms=_hold_ms(artifact.get("hold_ms")),
    )


def _hold_ms(data: object) -> tuple[int, ...] | None:
    """The artifact's per-signal hold bounds (absent: a model registered before they were learnt)."""
    if data is None:
        return None
    if not isinstance(data, list) or not all(type(bound) is int for bound in data):
        raise ValueError(f"hold_ms: {str(data)[:80]}: expected a list of integers (ms per signal)")
    return tuple(data)


def model_to_artifact(model: AnomalyModel) -> dict[str, Any]:
    return {
        "format": ARTIFACT_FORMAT,
        "features": {
            "signals": list(model.features.signals),
            "window": model.features.window,
            "stats": list(model.features.stats),
        },
        "detector": model.detector.to_artifact(),
        "threshold": float(model.threshold),
        "consecutive": int(model.consecutive),
        "release": float(model.release),
        **({"hold_ms": list(model.hold_ms)} if model.hold_ms is not None else {}),
    }


_TEXT_FIELDS: Final = ("version", "file", "sha256", "created")
_LIST_METADATA: Final = ("machines", "machine_types")  # what serving reads: lists of strings


def _version_entry(name: str, entry: object, where: str) -> ModelVersion:
    """A manifest's version entry, checked field by field: a hand-edited manifest must be refused
    with the field named, never break the scoring that reads it."""
    if not isinstance(entry, dict):
        raise ModelFileError(f"{where}: expected an object")
    for key in _TEXT_FIELDS:
        if not isinstance(entry.get(key), str):
            raise ModelFileError(f"{where}.{key}: expected a string")
    metadata = entry.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where}.metadata: expected an object")
    for key in _LIST_METADATA:
        value = metadata.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ModelFileError(f"{where}.metadata.{key}: expected a list of strings")
    tenant = metadata.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise ModelFileError(f"{where}.metadata.tenant: expected a string")
    return ModelVersion(
        name=name,
        version=entry["version"],
        file=entry["file"],
        sha256=entry["sha256"],
        created=entry["created"],
        metadata=dict(metadata),
    )


def _check_one_tenant(metadata: Mapping[str, Any], where: str) -> None:
    """A model for every machine ("*") serves those of one tenant, which it must name: one tenant's
    readings must never become another's normal. Checked for the version to be served or stored,
    not for every version: an old version without it must not block a newer one that names it."""
    if "*" in metadata.get("machines", []) and metadata.get("tenant") is None:
        raise ModelFileError(
            f'{where}.metadata.tenant: a model for every machine ("*") serves those of one tenant: name it'
        )


def _has_manifest(directory: Path) -> bool:
    try:
        (directory / MANIFEST).lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # there, but not readable: refused by name when read
    return True


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths and manifests ---------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name) or name in {".", ".."}:
            raise ModelFileError(f"model name {name!r}: use 1-128 of A-Z a-z 0-9 _ . -")
        return self.root / name

    def manifest_path(self, name: str) -> Path:
        return self._dir(name) / MANIFEST

    def names(self) -> list[str]:
        """Every model directory with something at its manifest's place: one that cannot be read (a
        directory, a symbolic link loop, no permission) is listed, for :meth:`manifest` to refuse
        with the reason, rather than vanish, or stop the listing of every other model."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _NAME.match(p.name) and _has_manifest(p))

    def manifest(self, name: str) -> dict[str, Any]:
        path = self.manifest_path(name)
        try:
            data = json.loads(_read_regular(path, MAX_MANIFEST_BYTES))
        except FileNotFoundError:
            raise ModelFileError(f"{path}: no such model in the registry") from None
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{path}: unreadable manifest ({exc})") from None
        except RecursionError:  # json's decoder recurses per level of nesting
            raise ModelFileError(f"{path}: unreadable manifest (nested too deeply)") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ModelFileError(f"{path}: {_format_mismatch(data, MANIFEST_FORMAT, 'manifest')}")
        return data

    def versions(self, name: str) -> list[ModelVersion]:
        return self._versions(name, self.manifest(name))

    def _versions(self, name: str, data: dict[str, Any]) -> list[ModelVersion]:
        path = self.manifest_path(name)
        entries = data.get("versions")
        if not isinstance(entries, list):
            raise ModelFileError(f"{path}: versions: expected a list of version entries")
        return [_version_entry(name, entry, f"{path}: versions[{i}]") for i, entry in enumerate(entries)]

    def entry(self, name: str, version: str | None = None) -> ModelVersion:
        """The manifest entry of ``version`` (default: the manifest's ``latest``)."""
        versions, latest = self.snapshot(name)
        if version is None:
            return latest
        for entry in versions:
            if entry.version == version:
                return entry
        raise ModelFileError(f"{self.manifest_path(name)}: no version {version!r}")

    def snapshot(self, name: str) -> tuple[list[ModelVersion], ModelVersion]:
        """Every version and the ``latest`` one, from one read of the manifest (a trainer may
        replace it between two reads)."""
        data = self.manifest(name)
        versions = self._versions(name, data)
        wanted = str(data.get("latest"))
        for entry in versions:
            if entry.version == wanted:
                return versions, entry
        raise ModelFileError(f"{self.manifest_path(name)}: no version {wanted!r}")

    # -- writing ---------------------------------------------------------------------------------

    def register(
        self,
        model: AnomalyModel,
        metadata: Mapping[str, Any],
        check: Callable[[list[ModelVersion]], None] | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version ``vN`` of ``model.name`` and make it ``latest``.

        ``check`` sees the existing versions under the registry's lock and may refuse by raising.
        """
        directory = self._dir(model.name)
        _check_one_tenant(metadata, f"{model.name}: the new version's")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock = (directory / ".lock").open("a")
        except OSError as exc:
            raise ModelFileError(f"{directory}: cannot write the model's directory ({exc})") from None
        # Two trainers registering the same model at once would each write "their" next version and
        # manifest; one at a time, under an exclusive lock on the model's directory.
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._register_locked(model, metadata, directory, check)
            except OSError as exc:
                raise ModelFileError(f"{directory}: cannot write the model ({exc})") from None

    def remove(self, name: str) -> None:
        """Take a model out of the registry: its manifest goes first, so readers stop serving it at
        their next reload, then its files."""
        directory = self._dir(name)
        if not self.manifest_path(name).is_file():
            raise ModelFileError(f"{self.manifest_path(name)}: no such model in the registry")
        try:
            self.manifest_path(name).unlink()
            shutil.rmtree(directory)
        except OSError as exc:
            raise ModelFileError(f"{directory}: cannot remove the model ({exc})") from None

    def _register_locked(
        self,
        model: AnomalyModel,
        metadata: Mapping[str, Any],
        directory: Path,
        check: Callable[[list[ModelVersion]], None] | None,
    ) -> ModelVersion:
        import skops.io as sio

        try:
            existing = self.versions(model.name)
        except ModelFileError:
            if self.manifest_path(model.name).exists():
                raise
            existing = []
        if check is not None:
            check(existing)
        numbers = [int(m.group(1)) for e in existing if (m := _VERSION.match(e.version))]
        version = f"v{max(numbers, default=0) + 1}"
        data = sio.dumps(model_to_artifact(model))
        # Check before writing that the artifact loads under the trusted list: a model we could not
        # load back must not become "latest".
        untrusted = artifact_types(data, model.name) - TRUSTED_TYPES
        if untrusted:
            raise ModelFileError(f"{model.name}: refusing to store untrusted types {sorted(untrusted)}")
        file = f"{version}.skops"
        _atomic_write(directory / file, data)
        entry = ModelVersion(
            name=model.name,
            version=version,
            file=file,
            sha256=hashlib.sha256(data).hexdigest(),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            metadata=dict(metadata),
        )
        manifest = {
            "format": MANIFEST_FORMAT,
            "name": model.name,
            "latest": version,
            "versions": [e.to_dict() for e in existing] + [entry.to_dict()],
        }
        _atomic_write(directory / MANIFEST, json.dumps(manifest, indent=2, default=_json_default).encode())
        return entry

    # -- reading ---------------------------------------------------------------------------------

    def load(self, name: str, version: str | None = None) -> tuple[AnomalyModel, ModelVersion]:
        entry = self.entry(name, version)
        return self.load_entry(entry), entry

    def load_entry(self, entry: ModelVersion) -> AnomalyModel:
        """Verify and load the version ``entry`` describes (from a manifest already read)."""
        _check_one_tenant(entry.metadata, f"{self.manifest_path(entry.name)}: version {entry.version}")
        return load_version(self._dir(entry.name), entry)


def load_version(directory: Path, entry: ModelVersion) -> AnomalyModel:
    """Verify and load one artifact; every refusal is a ModelFileError naming the file."""
    import skops.io as sio

    if Path(entry.file).name != entry.file or not entry.file.endswith(".skops"):
        raise ModelFileError(
            f"{directory / MANIFEST}: refused: artifact name {entry.file!r} is not a plain *.skops name"
        )
    path = directory / entry.file
    try:
        data = _read_regular(path, MAX_ARTIFACT_BYTES)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ModelFileError(
            f"{path}: refused: SHA-256 mismatch (manifest {entry.sha256[:16]}..., file {digest[:16]}...); "
            "the artifact was modified or replaced"
        )
    types = artifact_types(data, str(path))
    untrusted = sorted(types - TRUSTED_TYPES)
    if untrusted:
        raise ModelFileError(f"{path}: refused: untrusted types {untrusted}")
    try:
        artifact = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    except Exception as exc:  # skops raises many kinds; every one means "cannot be trusted as is"
        raise ModelFileError(
            f"{path}: refused: skops could not load it ({type(exc).__name__}: {exc})"
        ) from None
    try:
        return model_from_artifact(artifact, entry.name, entry.version)
    except Exception as exc:  # of trusted types but any shape: whatever breaks, it is refused
        raise ModelFileError(f"{path}: refused: malformed model artifact ({exc})") from None


def _read_regular(path: Path, limit: int) -> bytes:
    """The whole file, if it is a regular file of at most ``limit`` bytes: a FIFO would block the
    reader for ever and a device (a link to /dev/zero) would never end (OSError naming the reason)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO's open must not wait for a writer
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file (mode {stat.filemode(info.st_mode)})")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"larger than {limit} bytes")
    return data


def _json_default(value: object) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
