"""Launch the real app (python app.py) on a free local port and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An unused port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class LiveApp:
    """A launched app: where it serves, how long it took, its process id and its log."""

    url: str
    seconds: float
    pid: int
    log_path: Path

    def log_text(self) -> str:
        """Everything the app printed so far."""
        return self.log_path.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """The app process's resident memory (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")


@contextlib.contextmanager
def launched_app(*args: str, timeout: float = 60.0, env: dict | None = None):
    """Yield a LiveApp for a live `python app.py` with the given flags; stop it afterwards.

    Unless `env` names its own, Gradio's upload cache and the session folders live in a private folder removed
    afterwards: every run's downloads are copied there, and a suite that left them in /tmp would fill the disk."""
    port = free_port()
    private = Path(tempfile.mkdtemp(prefix="vggt-mv-app-test-"))
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                   "GRADIO_TEMP_DIR": str(private / "gradio"), "VGGT_MV_SESSIONS_DIR": str(private / "sessions"),
                   **(env or {})}
    log_path = ROOT / f".app-test-{port}.log"
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT, env=environment,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError("app did not serve in time")
            time.sleep(0.5)
        yield LiveApp(url, time.perf_counter() - started, process.pid, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        log_path.unlink(missing_ok=True)
        shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def running_app(*args: str, timeout: float = 60.0, env: dict | None = None):
    """Yield (url, seconds it took to serve) for a live `python app.py` with the given flags."""
    with launched_app(*args, timeout=timeout, env=env) as app:
        yield app.url, app.seconds
