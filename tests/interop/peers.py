"""Helpers for interop tests: free loopback ports and peer processes (SIPp, kamailio) that are always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path


HERE = Path(__file__).resolve().parent


def free_port(kind=socket.SOCK_DGRAM, pair: bool = False) -> int:
    """A port free for UDP (and TCP), found by binding to 0; `pair` wants port+1 free too (RTP/RTCP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port % 2 or port > 65000:
            continue
        ok = True
        for p in ([port, port + 1] if pair else [port]):
            for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, k) as t:
                    try:
                        t.bind(("127.0.0.1", p))
                    except OSError:
                        ok = False
        if ok:
            return port
    raise RuntimeError("no free port")


class Peer:
    """A peer process; `stop()` terminates it (then kills) and returns its output."""

    def __init__(self, args, cwd=None) -> None:
        self.args = [str(a) for a in args]
        # Own process group: kamailio forks workers that must die with it (and release the pipe).
        self.proc = subprocess.Popen(self.args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.output = ""

    def wait(self, timeout: float) -> int:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
            self.output = out.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return self.proc.returncode

    def _signal_group(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> str:
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                out, _ = self.proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                try:
                    out, _ = self.proc.communicate(timeout=5)
                except subprocess.TimeoutExpired:  # a stray child still holds the pipe: give up on output
                    out = b""
            self.output += out.decode("utf-8", "replace") if out else ""
        else:
            self._signal_group(signal.SIGKILL)  # workers the main process left behind
        return self.output


