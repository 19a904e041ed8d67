"""Private servers for the fault runs (benchmarks/faults.py): nothing shared is ever touched.

Each fault stops, kills or fills something. So that a run can never disturb the PostgreSQL,
Redis or SMTP server other people use on the same machine, every server a fault acts on is
started here, on a free loopback port, in a temporary directory, and removed at the end:

- ``PrivatePostgres``: its own cluster (``initdb``; run as the ``postgres`` user when we are
  root, as PostgreSQL refuses to run as root), socket in its own directory;
- ``PrivateRedis``: ``redis-server`` on its own port, no persistence;
- ``SmtpSink``: an aiosmtpd server in this process that counts Message-IDs;
- ``Gunicorn`` and ``DeliveryWorker``: the application's processes, with their pids so that a
  fault kills exactly them (never by name).
"""
import asyncio
import collections
import email
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email import policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port} after {timeout:.0f} s")


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (read from /proc: no dependency, no name matching)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and brackets, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port; ``restart()`` is the fault."""

    def __init__(self, port: int | None = None, base: str | None = None):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgfault-", dir=base))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_postgres = os.geteuid() == 0

    def _run(self, *args, check=True, timeout=120):
        cmd = [str(a) for a in args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)

    def init(self):
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                     f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
                     "shared_buffers = 64MB\nfsync = on\nlog_min_messages = warning\n")
        return self

    def start(self):
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast"):
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode: str = "fast") -> float:
        """Stop (terminating every session) and start again; returns seconds without a server."""
        t = time.time()
        self.stop(mode)
        self.start()
        return time.time() - t

    def url(self, dbname: str = "portal") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        out = self._run(PG_BIN / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d",
                        dbname, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
        return out.stdout.strip()

    def createdb(self, dbname: str = "portal") -> str:
        self.psql(f'DROP DATABASE IF EXISTS "{dbname}"')
        self.psql(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def tool(self, name: str) -> str:
        return str(PG_BIN / name)

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """``redis-server`` on its own port, started and stopped by pid."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc = None
        self.log = Path(tempfile.mkstemp(prefix="redisfault-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def kill(self):
        """Gone: connections are refused."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self):
        """Hung: connections are accepted by the kernel but nothing answers."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.kill()
        self.log.unlink(missing_ok=True)


class _SinkHandler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.sink.accept(msg, list(envelope.rcpt_tos))
        return "250 2.0.0 Ok: queued"


class SmtpSink:
    """A real SMTP server on loopback that counts every accepted message by its Message-ID."""

    def __init__(self, port: int | None = None, delay: float = 0.0):
        self.port = port or free_port()
        self.delay = delay
        self.controller = None
        self.lock = threading.Lock()
        self.by_id = collections.Counter()
        self.messages = []   # (time, message_id, recipients, subject, text body)

    def accept(self, msg, rcpts):
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        with self.lock:
            self.by_id[msg["Message-ID"]] += 1
            self.messages.append((time.time(), msg["Message-ID"], rcpts, str(msg["Subject"]), text))

    def start(self):
        from aiosmtpd.controller import Controller

        self.controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def running(self) -> bool:
        return self.controller is not None

    def since(self, t: float):
        with self.lock:
            return [m for m in self.messages if m[0] >= t]


class Gunicorn:
    """``gunicorn -w N app:create_app()`` with the given environment; workers found by pid."""

    def __init__(self, env: dict, workers: int = 4, threads: int = 1, log: Path | None = None,
                 timeout: int = 30, port: int | None = None):
        self.port = port or free_port()
        self.env = env
        self.workers = workers
        self.threads = threads
        self.timeout = timeout
        self.log = log or Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.proc = None

    def start(self):
        out = open(self.log, "a")  # noqa: SIM115 - the child keeps it
        # The production settings (gunicorn.conf.py: sync workers, recycled every ~5,000 requests),
        # on a free port, without the access log.
        conf = ["-c", str(ROOT / "gunicorn.conf.py")] if (ROOT / "gunicorn.conf.py").exists() else []
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), *conf, "-w", str(self.workers), "--threads", str(self.threads),
             "-b", f"127.0.0.1:{self.port}", "--timeout", str(self.timeout), "--graceful-timeout", "10",
             "--access-logfile", "/dev/null", "--log-level", "warning", "app:create_app()"],
            cwd=ROOT, env=self.env, stdout=out, stderr=out)
        out.close()
        wait_port(self.port, 60)
        deadline = time.time() + 30
        while len(self.worker_pids()) < self.workers and time.time() < deadline:
            time.sleep(0.1)
        return self

    def worker_pids(self) -> list[int]:
        return children_of(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class DeliveryWorker:
    """``flask --app app deliver-mail`` as production runs it, beside the web workers."""

    def __init__(self, env: dict, interval: float = 1.0, log: Path | None = None):
        self.env = env
        self.interval = interval
        self.log = log or Path(tempfile.mkstemp(prefix="deliver-", suffix=".log")[1])
        self.proc = None
        self.starts = 0

    def start(self):
        out = open(self.log, "a")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "deliver-mail", "--interval",
             str(self.interval)], cwd=ROOT, env=self.env, stdout=out, stderr=out)
        out.close()
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
