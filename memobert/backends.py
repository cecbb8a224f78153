"""One registry for the interchangeable models of the perception front end, and what they record about themselves.

Every stage of preprocessing (``face_detector``, ``landmarks``, ``vad``, ``asr``, ``acoustic``, ``face_expression``)
registers its backends here with `register_backend`: a factory, the distribution that provides it, the pip command
that installs it, a priority (``"auto"`` picks the available backend with the highest one) and the weight files it
loads. `make_backend(stage, name)` builds one; a backend that is registered but not installed raises
`MissingBackendError`, one line naming the pip command. `memobert doctor` prints `stage_report()`.

A built backend describes itself with `provenance()` (a JSON-able dict: backend, package, version, weight files with
their sha256, and its settings); the pipeline writes these into ``corpus.json``, so a corpus says exactly which models
made its features. `weights_record`, `file_sha256` and `package_version` are the pieces they use.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STAGES",
    "Backend",
    "MissingBackendError",
    "register_backend",
    "backends",
    "backend",
    "default_backend",
    "make_backend",
    "module_available",
    "package_version",
    "file_sha256",
    "weights_record",
    "stage_report",
    "quiet_native_logs",
]

STAGES = ("face_detector", "landmarks", "vad", "asr", "acoustic", "face_expression")


class MissingBackendError(ImportError):
    """A registered backend whose package is not installed: the message names the pip command."""


@dataclass(frozen=True)
class Backend:
    """One registered backend of a stage."""

    stage: str
    name: str
    factory: Callable[..., Any]
    package: str | None = None  # the distribution that provides it (for its version), None: memobert itself
    pip: str | None = None  # the command that installs what it needs
    priority: int = 0  # "auto" takes the available backend with the highest priority
    available: Callable[[], bool] = field(default=lambda: True)
    weights: Callable[[], list[Path]] = field(default=lambda: [])  # the weight files it loads (for the doctor)
    description: str = ""
    auto: bool = True  # False: never chosen by "auto" (e.g. it needs a model name)

    def is_available(self) -> bool:
        try:
            return bool(self.available())
        except Exception:  # a broken install counts as absent
            return False

    def missing_message(self) -> str:
        hint = f"`{self.pip}`" if self.pip else "its package"
        return f"the {self.stage} backend {self.name!r} is not installed: {hint} adds it"


_REGISTRY: dict[str, dict[str, Backend]] = {stage: {} for stage in STAGES}


def register_backend(stage: str, name: str, factory: Callable[..., Any], **details) -> Backend:
    """Register (or replace) backend `name` of `stage`; `details` are `Backend`'s fields."""
    if stage not in _REGISTRY:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    entry = Backend(stage=stage, name=name, factory=factory, **details)
    _REGISTRY[stage][name] = entry
    return entry


def backends(stage: str) -> list[Backend]:
    """The registered backends of `stage`, best first."""
    _load_stage(stage)
    return sorted(_REGISTRY[stage].values(), key=lambda b: (-b.priority, b.name))


def backend(stage: str, name: str) -> Backend:
    _load_stage(stage)
    try:
        return _REGISTRY[stage][name]
    except KeyError:
        known = ", ".join(b.name for b in backends(stage))
        raise ValueError(f"unknown {stage} backend {name!r}; registered: {known}") from None


def default_backend(stage: str) -> str:
    """The name "auto" resolves to: the available backend of `stage` with the highest priority."""
    for entry in backends(stage):
        if entry.auto and entry.is_available():
            return entry.name
    raise MissingBackendError(f"no {stage} backend is installed; registered: "
                              + "; ".join(f"{b.name} ({b.pip})" for b in backends(stage)))


def make_backend(stage: str, name: str = "auto", **kwargs) -> Any:
    """Build backend `name` ("auto": `default_backend`) of `stage` with `kwargs`."""
    entry = backend(stage, default_backend(stage) if name == "auto" else name)
    if not entry.is_available():
        raise MissingBackendError(entry.missing_message())
    return entry.factory(**kwargs)


# The modules that register each stage's backends (imported on first use, so the registry is complete whichever
# module the caller imported first).
_STAGE_MODULES = {
    "face_detector": "memobert.preprocessing.faces",
    "landmarks": "memobert.preprocessing.landmarks",
    "vad": "memobert.preprocessing.vad",
    "asr": "memobert.preprocessing.asr",
    "acoustic": "memobert.preprocessing.acoustic",
    "face_expression": "memobert.encoders.face_expression",
}


def _load_stage(stage: str) -> None:
    if stage not in _REGISTRY:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    module = _STAGE_MODULES[stage]
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)


def module_available(module: str) -> Callable[[], bool]:
    """An `available` check: `module` can be found (without importing it)."""
    return lambda: importlib.util.find_spec(module) is not None


def package_version(distribution: str | None) -> str | None:
    """The installed version of `distribution` (None: memobert's own), or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution or "memobert")
    except importlib.metadata.PackageNotFoundError:
        return None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file (cached per path, size and modification time)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def weights_record(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[dict[str, str]]:
    """[{"file": name, "sha256": ...}] of weight files (a folder: its weight-like files)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
        elif path.is_file():
            files.append(path)
    return [{"file": p.name, "sha256": file_sha256(p)} for p in files]


_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".onnx", ".tflite", ".hdf5", ".h5", ".jit", ".xml"}


def stage_report() -> list[dict[str, Any]]:
    """Per stage and backend: available, version, weight files, what "auto" picks, the pip command when missing."""
    report = []
    for stage in STAGES:
        try:
            chosen = default_backend(stage)
        except MissingBackendError:
            chosen = None
        for entry in backends(stage):
            available = entry.is_available()
            weights = []
            if available:
                try:
                    weights = [str(p) for p in entry.weights()]
                except Exception as error:  # noqa: BLE001 - reported, not raised
                    weights = [f"(cannot locate: {error})"]
            report.append({
                "stage": stage, "backend": entry.name, "default": entry.name == chosen, "available": available,
                "package": entry.package, "version": package_version(entry.package) if entry.package else None,
                "weights": weights, "pip": None if available else entry.pip, "description": entry.description,
            })
    return report


@contextlib.contextmanager
def quiet_native_logs():
    """Silence what native libraries print straight to file descriptor 2 (e.g. MediaPipe's TensorFlow Lite and absl
    warnings when a graph starts, which no environment variable turns off), for the duration of the block."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner without a descriptor)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
