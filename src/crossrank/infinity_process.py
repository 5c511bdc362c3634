"""Run a local infinity-emb rerank server, for tests, benchmarks and trying a stage out.

infinity-emb lives in a virtual environment of its own (`scripts/setup_infinity.sh` makes
`.venv-infinity`), because it pins dependencies that differ from crossrank's. This module only
starts and stops its server as a subprocess, on a loopback port, offline:

    with InfinityServer("/path/to/model-folder", served_name="my-reranker") as server:
        rr = Reranker(model="my-reranker", scorer=f"cohere+{server.url}")

The server is always bound to 127.0.0.1 and is stopped (terminate, then kill) on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

INFINITY_VENV_ENV = "CROSSRANK_INFINITY_VENV"
DEFAULT_VENV = ".venv-infinity"


class InfinityError(RuntimeError):
    """The infinity server is not installed, or did not start."""


def infinity_executable(venv: str | os.PathLike[str] | None = None) -> Path:
    """The `infinity_emb` command in `venv` ($CROSSRANK_INFINITY_VENV, else .venv-infinity)."""
    folder = Path(venv or os.environ.get(INFINITY_VENV_ENV) or DEFAULT_VENV)
    return (folder / "bin" / "infinity_emb").absolute()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class InfinityServer:
    """`infinity_emb v2` serving one local model folder on 127.0.0.1, as a context manager."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        served_name: str = "reranker",
        venv: str | os.PathLike[str] | None = None,
        port: int | None = None,
        batch_size: int = 32,
        startup_timeout: float = 180.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.executable = infinity_executable(venv)
        self.model = str(model)
        self.served_name = served_name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.batch_size = batch_size
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None
        self._home: tempfile.TemporaryDirectory[str] | None = None

    def command(self) -> list[str]:
        return [
            str(self.executable),
            "v2",
            "--model-id",
            self.model,
            "--served-model-name",
            self.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--engine",
            "torch",
            "--device",
            "cpu",
            "--batch-size",
            str(self.batch_size),
            "--no-bettertransformer",
            "--no-model-warmup",
        ]

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> InfinityServer:
        if not self.executable.exists():
            raise InfinityError(
                f"infinity-emb is not installed ({self.executable} not found); run "
                "scripts/setup_infinity.sh"
            )
        self._home = tempfile.TemporaryDirectory(prefix="crossrank-infinity-")
        if self.log_path is None:
            self.log_path = Path(self._home.name) / "server.log"
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(Path(self._home.name) / "hf"),
            "INFINITY_ANONYMOUS_USAGE_STATS": "0",
            "DO_NOT_TRACK": "1",
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._home.name,
                start_new_session=True,  # its workers stop with it
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise InfinityError(f"infinity server exited at startup:\n{tail}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        tail = self.log_tail()
        self.stop()
        raise InfinityError(
            f"infinity server not ready after {self.startup_timeout:.0f} s:\n{tail}"
        )

    def rss_bytes(self) -> int | None:
        """The server process's resident memory (Linux), or None."""
        if self.process is None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
            except ProcessLookupError:
                pass
        if self._home is not None:
            self._home.cleanup()
            self._home = None

    def __enter__(self) -> InfinityServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
