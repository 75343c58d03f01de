"""Launch the real app (python app.py), plain or under the ZeroGPU harness, on a free local port; stop it afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.zerogpu_launch import GUARD_LOG_VARIABLE
from tests.support.zerogpu_scheduler import ZeroGpuScheduler, zerogpu_scheduler

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = Path(__file__).resolve().with_name("zerogpu_launch.py")


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


@dataclass(frozen=True)
class ZeroGpuApp(LiveApp):
    """An app launched under the ZeroGPU harness: its scheduler stand-in and its main process's CUDA-guard log."""

    scheduler: ZeroGpuScheduler
    guard_log: Path

    def cuda_violations(self) -> list[dict]:
        """Each CUDA call the main process made so far: {"call", "pid", "thread", "stack"}."""
        if not self.guard_log.exists():
            return []
        return [json.loads(line) for line in self.guard_log.read_text().splitlines() if line]


def private_environment(private: Path, env: dict | None) -> dict:
    """The app's environment: offline, no analytics, Gradio's cache and the sessions in `private` unless `env`
    names its own."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(private / "gradio"), "VGGT_MV_SESSIONS_DIR": str(private / "sessions"),
            **(env or {})}


def wait_until_serving(process: subprocess.Popen, url: str, log_path: Path, timeout: float) -> float:
    """Seconds until `url` answered 200; raises if the process exits first or the time runs out."""
    started = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > timeout:
            raise RuntimeError("app did not serve in time")
        time.sleep(0.5)


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop the app and every process it forked: a ZeroGPU worker outlives its parent, blocked on its own queue."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def launched_app(*args: str, timeout: float = 60.0, env: dict | None = None):
    """Yield a LiveApp for a live `python app.py` with the given flags; stop it afterwards.

    Unless `env` names its own, Gradio's upload cache and the session folders live in a private folder removed
    afterwards: every run's downloads are copied there, and a suite that left them in /tmp would fill the disk."""
    port = free_port()
    private = Path(tempfile.mkdtemp(prefix="vggt-mv-app-test-"))
    log_path = ROOT / f".app-test-{port}.log"
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT,
                               env=private_environment(private, env), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        seconds = wait_until_serving(process, url, log_path, timeout)
        yield LiveApp(url, seconds, process.pid, log_path)
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
def zerogpu_app(*args: str, script: str = "app.py", timeout: float = 90.0, env: dict | None = None):
    """Yield a ZeroGpuApp for `python SCRIPT --port PORT ARGS` run under the real `spaces` ZeroGPU machinery
    (tests/support/zerogpu_launch.py) against a loopback scheduler stand-in; stop both afterwards.

    spaces' tensor offload folder and its mmap auto-prune pattern point into the private folder: by default
    spaces empties ~/.zerogpu/tensors and deletes mmapped Hugging Face cache blobs it packed."""
    port = free_port()
    private = Path(tempfile.mkdtemp(prefix="vggt-mv-zerogpu-test-"))
    guard_log = private / "cuda-guard.jsonl"
    log_path = ROOT / f".app-test-{port}.log"
    with zerogpu_scheduler() as scheduler, open(log_path, "w") as log:
        zerogpu_env = {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": scheduler.url,
                       GUARD_LOG_VARIABLE: str(guard_log), "ZEROGPU_OFFLOAD_DIR": str(private / "zerogpu-tensors"),
                       "ZEROGPU_MMAP_AUTOPRUNE_PATTERN": str(private / "no-autoprune" / "*"),
                       "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, str(LAUNCHER), script, "--port", str(port), *args]
        process = subprocess.Popen(command, cwd=ROOT, env=private_environment(private, {**zerogpu_env, **(env or {})}),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}/"
        try:
            seconds = wait_until_serving(process, url, log_path, timeout)
            yield ZeroGpuApp(url, seconds, process.pid, log_path, scheduler, guard_log)
        finally:
            stop_process_group(process)
            log_path.unlink(missing_ok=True)
            shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def running_app(*args: str, timeout: float = 60.0, env: dict | None = None):
    """Yield (url, seconds it took to serve) for a live `python app.py` with the given flags."""
    with launched_app(*args, timeout=timeout, env=env) as app:
        yield app.url, app.seconds
