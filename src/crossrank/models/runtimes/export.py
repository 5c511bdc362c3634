"""The one export path the exported runtimes share (ONNX Runtime and OpenVINO).

Both runtimes turn a family's scoring module into a file once and keep it on disk, so the
two cannot drift apart in how they trace, what their key covers or how they write:

- `example_batch`: the example inputs both tracers see (dynamic batch and sequence axes);
- `export_key`: a hash of the model (its folder and the size and mtime of its files, or its
  hub id), the family, the runtime's settings and the library versions: a changed model, a
  new recipe or another torch gives another folder, never a stale file;
- `cached_export`: the folder for a key, built on first use in a temporary folder beside it
  and renamed into place only when complete (a rename is atomic), under a file lock, so two
  processes converting at once convert once and neither ever reads a half-written file.

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
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def model_fingerprint(name: str) -> dict[str, Any]:
    """What identifies a model's weights: a folder's files (size, mtime), or a hub id."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return {
            "folder": str(folder.resolve()),
            "files": [
                [str(p.relative_to(folder)), p.stat().st_size, int(p.stat().st_mtime)]
                for p in files
            ],
        }
    return {"hub_id": name}


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


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    from filelock import FileLock

    with _process_lock, FileLock(str(path)):
        yield


def cached_export(
    runtime: str, key: str, build: Callable[[Path], None], marker: dict[str, Any]
) -> Path:
    """The finished export folder for `key`, running `build(work_folder)` on first use.

    `build` writes the runtime's files into an empty work folder; the marker is written after
    it, then the folder is renamed into place. A folder found at the final name is always
    complete (nothing else is ever renamed there), so readers need no lock.
    """
    root = cache_root(runtime)
    folder = root / key
    if is_complete(folder):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f"{key}.lock"):
        if is_complete(folder):  # another thread or process finished it while we waited
            return folder
        work = Path(tempfile.mkdtemp(prefix=f"{key}.work-", dir=root))
        try:
            build(work)
            (work / MARKER).write_text(json.dumps(marker, sort_keys=True) + "\n")
            work.chmod(0o755)
            if folder.exists():  # left by an older crossrank or by hand, never finished
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(work, folder)
            except OSError:
                # A process that ignored the lock (a file system without locks) got there
                # first: its folder is complete too, so keep it and drop ours.
                if not is_complete(folder):
                    raise
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return folder


__all__ = [
    "EXPORT_CACHE_ENV",
    "cache_root",
    "cached_export",
    "example_batch",
    "export_key",
    "is_complete",
    "model_fingerprint",
]
