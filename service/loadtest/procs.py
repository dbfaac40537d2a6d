"""Start/stop the service and model servers as processes; read their CPU and RSS from /proc.

Everything here is synchronous and bounded (every wait has a deadline). Linux only (/proc).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "Proc",
    "cpu_seconds",
    "free_port",
    "rss_bytes",
    "start",
    "start_command",
    "wait_http",
    "wait_log",
    "wait_tcp",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/<pid>/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # skip "pid (comm) "; fields[0] is field 3
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` in bytes (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> str | None:
        """Send ``sig``, wait up to ``grace`` s, then SIGKILL.

        Returns None for a clean exit (0, or death by ``sig`` itself: uvicorn re-raises the
        signal it caught once its graceful shutdown is done), else what went wrong.
        """
        if self.popen.poll() is not None:
            return f"had already exited with {self.popen.returncode}"
        self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)
            return f"ignored {signal.Signals(sig).name} for {grace:g} s: killed"
        return None if code in (0, -sig) else f"exited with {code}"


def start(
    name: str,
    args: list[str],
    env: dict[str, str],
    log_dir: Path,
    *,
    module: str = "service",
    cwd: Path | None = None,
) -> Proc:
    """``python -m <module> <args>`` with ``env`` added to ours; output goes to a log file.
    ``cwd`` (default: this checkout) comes first on ``sys.path``: its ``service`` is run."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=cwd or REPO,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Proc(name, popen, log_path)


def start_command(name: str, argv: list[str], log_dir: Path) -> Proc:
    """Any program (e.g. ``redis-server``), output to a log file."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return Proc(name, popen, log_path)


def wait_tcp(proc: Proc, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not listening on {port} after {timeout} s")


def wait_log(proc: Proc, text: str, timeout: float = 30.0) -> None:
    """Wait until ``text`` appears in the process's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
        with contextlib.suppress(OSError):
            if text in proc.log_path.read_text(errors="replace"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: no {text!r} in its log after {timeout} s")


def wait_http(proc: Proc, url: str, timeout: float = 30.0) -> dict[str, object]:
    """Poll ``url`` until it answers 200 with JSON; return that JSON."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
            try:
                resp = client.get(url)
                if resp.status_code == 200:
                    return resp.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {url} not ready after {timeout} s\n{proc.log_tail()}")
