"""``serve --transport http --workers N``: one supervisor, N worker processes behind one port.

The supervisor binds the listening socket itself and hands it to every worker (inherited, the way
uvicorn's own ``--workers`` and gunicorn do it), rather than each worker binding the port with
``SO_REUSEPORT``:

- one bind: a port already in use stops the start with a clear error, and a second server started on
  the same port by mistake cannot silently take a share of the traffic (with ``SO_REUSEPORT`` any
  process of the same user that also asks for it joins the group);
- one accept queue: connections waiting for ``accept()`` when a worker dies are taken by the others
  (with ``SO_REUSEPORT`` the kernel resets those queued on the dead worker's socket);
- ``--port 0`` works (the port is chosen once), and it is portable beyond Linux.

Each worker is a fresh ``python -m mcp_ledger.server serve`` with the same arguments (nothing forked
from a process with threads), told by the environment which descriptor is the socket; it serves it
with uvicorn (``Server.run(sockets=[...])``) and writes its own chain in the shared ledger directory
(``provenance._store``: one chain per writer process). Workers run in a process group of their own, so
a terminal's Ctrl-C reaches the supervisor only, which then stops them in order: SIGTERM and SIGINT are
forwarded as SIGTERM (uvicorn's graceful shutdown: requests in progress finish, the ledger is closed);
a second signal forces it. A worker that dies unexpectedly is restarted, at most ``MAX_RESTARTS``
times per worker within ``RESTART_WINDOW`` seconds, with a growing pause; beyond that, or when a worker
cannot start at all, the supervisor stops every worker and exits non-zero. A worker whose supervisor
is gone (killed with SIGKILL) stops by itself.

Sessions cannot follow a client from one worker to another, so several workers serve stateless
Streamable HTTP only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_RESTARTS",
    "RESTART_WINDOW",
    "WorkerError",
    "bind",
    "inherited_socket",
    "run_worker",
    "supervise",
]

# The supervisor tells a worker which inherited descriptors are its listening socket and its
# readiness pipe; not settings (a user never sets them).
SOCKET_FD_ENV = "MCP_LEDGER_WORKER_SOCKET_FD"
READY_FD_ENV = "MCP_LEDGER_WORKER_READY_FD"
INDEX_ENV = "MCP_LEDGER_WORKER_INDEX"
SUPERVISOR_ENV = "MCP_LEDGER_WORKER_SUPERVISOR"

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
RESTART_PAUSE = 0.5  # before the second restart within the window; doubled for each one after, up to 5 s
START_TIMEOUT = 120.0  # a worker imports every tool group and may preload one
STOP_TIMEOUT = 30.0  # graceful shutdown of the workers before they are killed
# Linux balances the connections of a SO_REUSEPORT group over its sockets; elsewhere the option means
# something else (BSD: the last socket bound takes them all), so the workers share one socket there.
REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
BACKLOG = 2048  # uvicorn's default, which its create_server sets again on the shared socket
_TICK = 0.05


class WorkerError(Exception):
    """The workers cannot be started or kept running; the message says why."""


def _listening(family: int, kind: int, proto: int, address: Any, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop binds again
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def bind(host: str, port: int, workers: int = 1) -> list[socket.socket]:
    """The listening sockets of ``workers`` workers: one per worker on Linux (``SO_REUSEPORT``), else one
    they share. :class:`WorkerError` when the port cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise WorkerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    sockets: list[socket.socket] = []
    try:
        # A socket without SO_REUSEPORT first: a port already taken (by anything, another supervisor with
        # its own SO_REUSEPORT group included) is refused here, and --port 0 gets its number.
        first = _listening(family, kind, proto, address, reuse_port=False)
        if workers == 1 or not REUSE_PORT:
            return [first]
        address = first.getsockname()
        first.close()
        sockets = [_listening(family, kind, proto, address, reuse_port=True) for _ in range(workers)]
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise WorkerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    ready_fd: int | None = None
    ready: bool = False
    restart_at: float | None = None
    deaths: deque[float] = field(default_factory=deque)


class _Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        sockets: Sequence[socket.socket],
        env: Mapping[str, str],
        say: Callable[[str], None],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.on_ready = on_ready
        self.command = list(command)
        self.sockets = list(sockets)
        self.env = dict(env)
        self.say = say
        self.workers = [_Worker(i) for i in range(workers)]
        self.signals: list[int] = []

    # -- processes

    def spawn(self, worker: _Worker) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        sock = self.sockets[worker.index % len(self.sockets)]
        env = {
            **self.env,
            SOCKET_FD_ENV: str(sock.fileno()),
            READY_FD_ENV: str(write_end),
            INDEX_ENV: str(worker.index),
            SUPERVISOR_ENV: str(os.getpid()),
        }
        try:
            worker.proc = subprocess.Popen(self.command, env=env, pass_fds=(sock.fileno(), write_end), process_group=0)
        finally:
            os.close(write_end)
        worker.ready_fd = read_end
        worker.ready = False
        worker.restart_at = None

    def _check_ready(self, worker: _Worker) -> None:
        if worker.ready or worker.ready_fd is None:
            return
        try:
            data = os.read(worker.ready_fd, 16)
        except BlockingIOError:
            return
        if data:
            worker.ready = True
        self._close_ready(worker)

    def _close_ready(self, worker: _Worker) -> None:
        if worker.ready_fd is not None:
            os.close(worker.ready_fd)
            worker.ready_fd = None

    def _signal_all(self, sig: int) -> None:
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(sig)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    # -- phases

    def start(self) -> None:
        """Start every worker and wait until each serves; WorkerError if one cannot."""
        for worker in self.workers:
            self.spawn(worker)
        deadline = time.monotonic() + START_TIMEOUT
        while not all(worker.ready for worker in self.workers):
            if self.signals:
                return
            for worker in self.workers:
                assert worker.proc is not None
                code = worker.proc.poll()
                self._check_ready(worker)  # after poll: a worker that said it was ready before it exited did
                if code is not None and not worker.ready:
                    raise WorkerError(
                        f"worker {worker.index} {_describe_exit(code)} before it could serve (its message is above)"
                    )
            if time.monotonic() > deadline:
                raise WorkerError(f"the workers did not start serving within {START_TIMEOUT:.0f} s")
            time.sleep(_TICK)

    def watch(self) -> None:
        """Restart workers that die until a signal asks to stop; WorkerError when one keeps dying."""
        while not self.signals:
            now = time.monotonic()
            for worker in self.workers:
                self._check_ready(worker)
                if worker.restart_at is not None:
                    if now >= worker.restart_at:
                        self.spawn(worker)
                    continue
                assert worker.proc is not None
                code = worker.proc.poll()
                if code is None:
                    continue
                self._close_ready(worker)
                worker.deaths.append(now)
                while worker.deaths and worker.deaths[0] < now - RESTART_WINDOW:
                    worker.deaths.popleft()
                how = f"worker {worker.index} (pid {worker.proc.pid}) {_describe_exit(code)}"
                if len(worker.deaths) > MAX_RESTARTS:
                    raise WorkerError(
                        f"{how}, its {len(worker.deaths)}th exit within {RESTART_WINDOW:.0f} s; giving up"
                    )
                pause = 0.0 if len(worker.deaths) == 1 else min(5.0, RESTART_PAUSE * 2 ** (len(worker.deaths) - 2))
                self.say(f"{how}; restarting it" + (f" in {pause:.1f} s" if pause else ""))
                worker.restart_at = now + pause
            time.sleep(_TICK)

    def stop(self) -> bool:
        """SIGTERM to every worker, SIGKILL to those still running after STOP_TIMEOUT (or a second signal);
        True when every worker stopped by itself."""
        self._signal_all(signal.SIGTERM)
        handled = len(self.signals)
        deadline = time.monotonic() + STOP_TIMEOUT
        clean = True
        while any(w.proc is not None and w.proc.poll() is None for w in self.workers):
            if clean and (len(self.signals) > handled or time.monotonic() > deadline):
                self.say("workers still running; killing them")
                self._signal_all(signal.SIGKILL)
                clean = False
            time.sleep(_TICK)
        for worker in self.workers:
            self._close_ready(worker)
        return clean

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            try:
                self.start()
                if self.on_ready is not None and not self.signals:
                    self.on_ready()
                self.watch()
            except WorkerError as exc:
                self.say(str(exc))
                self.stop()
                return 1
            return 0 if self.stop() else 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def supervise(
    command: Sequence[str],
    workers: int,
    sockets: Sequence[socket.socket],
    *,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run ``command`` ``workers`` times on ``sockets`` (from :func:`bind`) until SIGTERM or SIGINT; return
    the exit status (0: stopped cleanly). ``say`` prints the supervisor's messages (default: stderr);
    ``on_ready`` is called once every worker serves."""

    def to_stderr(message: str) -> None:
        print(f"mcp-ledger serve: {message}", file=sys.stderr, flush=True)

    supervisor = _Supervisor(command, workers, sockets, os.environ if env is None else env, say or to_stderr, on_ready)
    return supervisor.run()


# -- the worker's side


def inherited_socket() -> socket.socket | None:
    """The socket a supervisor handed to this process (None: not a worker). Taken once: the variable is
    removed, and the socket is not inherited further (by the processes tools start)."""
    fd = os.environ.pop(SOCKET_FD_ENV, None)
    if not fd:
        return None
    sock = socket.socket(fileno=int(fd))
    sock.set_inheritable(False)
    return sock


def _notify_ready() -> None:
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd:
        with contextlib.suppress(OSError):
            os.write(int(fd), b"ready\n")
            os.close(int(fd))


def _watch_supervisor() -> None:
    """Stop (as SIGTERM would) once the supervisor is gone: a SIGKILLed supervisor leaves no workers."""
    supervisor = os.environ.pop(SUPERVISOR_ENV, None)
    parent = int(supervisor) if supervisor else os.getppid()  # it may be gone already

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mcp-ledger-supervisor-watch", daemon=True).start()


def run_worker(asgi_app: Any, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve ``asgi_app`` with uvicorn on the inherited ``sock`` until SIGTERM; say "ready" once it accepts."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                _notify_ready()

    _watch_supervisor()
    config = uvicorn.Config(asgi_app, log_config=None, log_level=log_level, backlog=BACKLOG)
    _Server(config).run(sockets=[sock])
