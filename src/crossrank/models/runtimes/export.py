"""The one export path the exported runtimes share (ONNX Runtime and OpenVINO).

Both runtimes turn a family's scoring module into a file once and keep it on disk, so the
two cannot drift apart in how they trace, what their key covers or how they write:

- `example_batch` and `eager_attention`: the example inputs and the attention both tracers
  see (dynamic batch and sequence axes);
- `export_key`: a hash of the model (`model_fingerprint`: its files' bytes, or the size and
  mtime of large ones, or its hub id), the family, the runtime's settings and the library
  versions: a changed model, a new recipe or another torch gives another folder, never a
  stale file;
- `cached_export`: the folder for a key, built on first use in a temporary folder beside it
  and renamed into place only when complete (a rename is atomic), under a file lock, so two
  processes converting at once convert once and neither ever reads a half-written file;
- `entry_problem`: a finished entry is used only when this user owns it and no one else can
  write it (as ssh treats key files), and its files still have the SHA-256 digests recorded in
  its marker when it was written; else it is converted again, with one warning, or refused
  when it cannot be removed. A lock file that is a symlink is a `ModelLoadError`, never
  followed (and filelock >= 3.20.3 opens locks with `O_NOFOLLOW`).

The cache lives under ``$CROSSRANK_EXPORT_CACHE`` (default ``~/.cache/crossrank``), one
folder per runtime (`onnx/`, `openvino/`); ``$CROSSRANK_ONNX_CACHE`` and
``$CROSSRANK_OPENVINO_CACHE`` move one runtime's folder on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crossrank.errors import ModelLoadError

logger = logging.getLogger("crossrank")

EXPORT_CACHE_ENV = "CROSSRANK_EXPORT_CACHE"
MARKER = "crossrank-export.json"  # written last: a folder without it was never finished

# Threads of one process wait here; other processes wait on the file lock.
_process_lock = threading.Lock()


def cache_root(runtime: str) -> Path:
    """Where `runtime`'s exports are kept: its own variable, else the shared root."""
    own = os.environ.get(f"CROSSRANK_{runtime.upper()}_CACHE")
    if own:
        return Path(own).expanduser()
    shared = os.environ.get(EXPORT_CACHE_ENV)
    base = Path(shared).expanduser() if shared else Path.home() / ".cache" / "crossrank"
    return base / runtime


_HASHED_FILE_LIMIT = 16 * 1024 * 1024  # files up to 16 MiB are keyed by their bytes


def model_fingerprint(name: str) -> dict[str, Any]:
    """What identifies a model's files: their bytes where small, else size, mtime and place.

    A folder of small files (a tokenizer, a config, a test model's weights) is keyed by its
    contents alone, so two copies share one export. A large weights file is not read on
    every load: its size and mtime key it, with the folder's path, so that two fine-tunes of
    one architecture (same sizes) saved in the same second still get their own export.
    """
    folder = Path(name).expanduser()
    if not folder.is_dir():
        from crossrank.models.loading import _cached_snapshot

        snapshot = _cached_snapshot(name)  # its path names the revision
        if snapshot is None:
            return {"hub_id": name}
        return {"hub_id": name, **model_fingerprint(str(snapshot))}
    entries: list[list[Any]] = []
    large = False
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        if stat.st_size <= _HASHED_FILE_LIMIT:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            entries.append([str(path.relative_to(folder)), stat.st_size, digest])
        else:
            large = True
            entries.append([str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns])
    fingerprint: dict[str, Any] = {"files": entries}
    if large:
        fingerprint["folder"] = str(folder.resolve())
    return fingerprint


def export_key(name: str, family: str, settings: dict[str, Any], versions: dict[str, str]) -> str:
    """The cache folder name for one model, family, set of settings and library versions."""
    import torch
    import transformers

    payload = {
        "model": model_fingerprint(name),
        "family": family,
        "settings": settings,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **versions,
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def example_batch(input_names: list[str]) -> tuple[Any, ...]:
    """Example inputs for tracing: 2 pairs of 8 tokens; token types 0, valid for any model."""
    import torch

    return tuple(
        (torch.zeros if name == "token_type_ids" else torch.ones)((2, 8), dtype=torch.long)
        for name in input_names
    )


@contextmanager
def eager_attention(hf_model: Any) -> Iterator[None]:
    """Trace with the model's eager attention (plain matmul / softmax ops), then restore it.

    Both converters see the same graph. ONNX Runtime's optimizer fuses eager attention; and
    a traced SDPA kernel gives NaN in OpenVINO for query rows that see no key at all (a
    causal LM's left padding), where eager attention's finite mask value gives torch's
    result. Measured on the MiniLM fixture: the same OpenVINO speed and the same outputs.
    """
    previous = getattr(hf_model.config, "_attn_implementation", None)
    switch = previous not in (None, "eager") and hasattr(hf_model, "set_attn_implementation")
    if switch:
        hf_model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            hf_model.set_attn_implementation(previous)


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of an entry but its marker, by path inside the entry."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
        found[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return found


def entry_problem(folder: Path) -> str | None:
    """Why a finished cache entry must not be used, or None when it can be.

    The cache key is a hash of the model's files, which anyone who can read them can
    compute, so in a shared cache folder another user could plant an entry under it (an IR
    with a backdoor passes a few-pair self-check). Like ssh with key files, an entry is
    trusted only when this user owns every part of it and neither group nor others can write
    any; and its files must match the digests its marker recorded when it was written, so
    damage or a file changed since is caught too. Someone who can write as this user can
    also rewrite the marker: that is out of scope (docs/security.md).
    """
    paths = [folder, *folder.rglob("*")]
    if os.name == "posix":
        uid = os.geteuid()
        for path in paths:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                return f"{str(path)!r} is a symlink"
            if info.st_uid != uid:
                return f"{str(path)!r} is owned by uid {info.st_uid}, not by this user ({uid})"
            if info.st_mode & 0o022:
                return (
                    f"{str(path)!r} can be written by its group or by others "
                    f"(mode {stat.filemode(info.st_mode)})"
                )
    try:
        recorded = json.loads((folder / MARKER).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return f"its marker {str(folder / MARKER)!r} cannot be read"
    if not isinstance(recorded, dict):
        return "its marker records no file digests (written by an older crossrank)"
    found = _digests(folder)
    if found != recorded:
        changed = sorted(
            set(found) ^ set(recorded) | {k for k in found if found[k] != recorded.get(k)}
        )
        return (
            f"its files differ from the digests recorded when it was written ({', '.join(changed)})"
        )
    return None


def _private(folder: Path) -> None:
    """Drop group and other write bits from a finished work folder (a umask of 002 sets
    them), so that the entry passes `entry_problem`."""
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o022:
            path.chmod(stat.S_IMODE(mode) & ~0o022)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    def refused(reason: str) -> ModelLoadError:
        return ModelLoadError(
            f"could not lock the export cache ({str(path)!r}): {reason}. Nothing was "
            f"converted. Remove it, or point ${EXPORT_CACHE_ENV} at a folder only you can write."
        )

    # filelock >= 3.20.3 opens with O_NOFOLLOW; this check names the problem (and covers
    # platforms without O_NOFOLLOW), and any OSError below is reported the same way.
    if path.is_symlink():
        raise refused("the lock file is a symlink, which crossrank never follows")
    with _process_lock:
        try:
            lock = FileLock(str(path))
            lock.acquire()
        except (OSError, Timeout) as exc:
            raise refused(f"{type(exc).__name__}: {exc}") from exc
        try:
            yield
        finally:
            lock.release()


def _usable(folder: Path, warned: list[str]) -> bool:
    """Whether a finished entry can be used; an untrusted one is removed, with one warning,
    or refused when it cannot be removed (another user's folder)."""
    if not is_complete(folder):
        return False
    problem = entry_problem(folder)
    if problem is None:
        return True
    if not warned:
        logger.warning(
            "export cache entry %s is not used and is converted again: %s", folder, problem
        )
        warned.append(problem)
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists() or folder.is_symlink():
        raise ModelLoadError(
            f"the export cache entry {str(folder)!r} cannot be trusted ({problem}) and cannot "
            f"be removed. Nothing was loaded from it. Remove it, or point ${EXPORT_CACHE_ENV} "
            "at a folder only you can write."
        )
    return False


def cached_export(
    runtime: str, key: str, build: Callable[[Path], None], marker: dict[str, Any]
) -> Path:
    """The finished export folder for `key`, running `build(work_folder)` on first use.

    `build` writes the runtime's files into an empty work folder; the marker (with the
    files' digests) is written after it, then the folder is renamed into place. A folder
    found at the final name is complete (nothing else is ever renamed there); it is used
    only when `entry_problem` finds nothing wrong with it.
    """
    root = cache_root(runtime)
    folder = root / key
    warned: list[str] = []
    if _usable(folder, warned):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f"{key}.lock"):
        if _usable(folder, warned):  # another thread or process finished it while we waited
            return folder
        work = Path(tempfile.mkdtemp(prefix=f"{key}.work-", dir=root))
        try:
            build(work)
            _private(work)
            record = {**marker, "files": _digests(work)}
            (work / MARKER).write_text(json.dumps(record, sort_keys=True) + "\n")
            (work / MARKER).chmod(0o644)
            work.chmod(0o755)
            if folder.exists():  # left by an older crossrank or by hand, never finished
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(work, folder)
            except OSError:
                # A process that ignored the lock (a file system without locks) got there
                # first: its folder is complete too, so keep it and drop ours.
                if not _usable(folder, warned):
                    raise
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return folder


__all__ = [
    "EXPORT_CACHE_ENV",
    "cache_root",
    "cached_export",
    "eager_attention",
    "entry_problem",
    "example_batch",
    "export_key",
    "is_complete",
    "model_fingerprint",
]
