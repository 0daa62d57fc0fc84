"""A throwaway Kubernetes control plane (etcd + kube-apiserver) for tests.

It starts the real binaries built by ``scripts/kube-binaries.sh`` on free loopback ports, the
way controller-runtime's envtest does: no kube-controller-manager, scheduler or kubelet, so
Deployments get no ReplicaSets/Pods, nothing is garbage-collected and namespace deletion
never finishes, but every API object (including ``/status`` and ``/scale`` subresources,
Events, ServiceAccount tokens via the TokenRequest API) works.

Usage::

    with KubeTestCluster(binaries_dir, kubectl="/path/to/kubectl") as cluster:
        cluster.kubectl("create", "namespace", "demo")
        env = {"KUBECONFIG": str(cluster.kubeconfig)}

Authentication is a static token file holding one admin user in ``system:masters``
(``.admin_token``); authorisation is RBAC, so identities made with
:meth:`KubeTestCluster.token_for_service_account` only get what the test grants them.
The serving certificate is the one the apiserver generates itself in ``--cert-dir``; the
kubeconfig trusts it through ``certificate-authority``.

Only the standard library and subprocess are used (``openssl`` makes the service-account key).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["KubeClusterError", "KubeTestCluster", "free_port"]

_ADMIN_USER = "taskflow-admin"


class KubeClusterError(RuntimeError):
    """The control plane could not be started or used."""


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class _Process:
    """One child process with its combined output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the test runner does not race our teardown
        )

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise KubeClusterError(
                f"{self.name} exited with code {code}; last lines of {self.log_path}:\n"
                f"{_tail(self.log_path)}"
            )

    def stop(self, grace: float) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=grace)
        self._log.close()


class KubeTestCluster:
    """etcd + kube-apiserver on loopback, torn down on exit (a context manager)."""

    def __init__(
        self,
        binaries_dir: str | os.PathLike[str],
        kubectl: str | os.PathLike[str],
        *,
        start_timeout: float = 90.0,
        stop_grace: float = 5.0,
        extra_apiserver_args: list[str] | None = None,
    ) -> None:
        self.binaries_dir = Path(binaries_dir).resolve()
        self.kubectl_path = Path(kubectl)
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.extra_apiserver_args = list(extra_apiserver_args or [])
        for binary in (self.etcd_path, self.apiserver_path):
            if not os.access(binary, os.X_OK):
                raise KubeClusterError(f"{binary} is missing or not executable")
        if not os.access(self.kubectl_path, os.X_OK):
            raise KubeClusterError(f"kubectl {self.kubectl_path} is missing or not executable")

        self.root: Path | None = None
        self.admin_token = ""
        self.server = ""
        self.etcd_url = ""
        self.startup_seconds = 0.0
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None

    # --- paths -------------------------------------------------------------------------------
    @property
    def etcd_path(self) -> Path:
        return self.binaries_dir / "etcd"

    @property
    def apiserver_path(self) -> Path:
        return self.binaries_dir / "kube-apiserver"

    def _root(self) -> Path:
        if self.root is None:
            raise KubeClusterError("the cluster is not started")
        return self.root

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (a JSON file; kubectl and client libraries read it as YAML)."""
        return self._root() / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-generated serving certificate bundle (includes its CA)."""
        return self._root() / "certs" / "apiserver.crt"

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.root is not None:
            raise KubeClusterError("the cluster is already started")
        started = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="taskflow-kube-"))
        try:
            self._start_etcd()
            self._wait_etcd(deadline=started + self.start_timeout)
            self._start_apiserver()
            self._wait_ready(deadline=started + self.start_timeout)
            self.kubeconfig_for_token(self.admin_token, self.kubeconfig, user=_ADMIN_USER)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (SIGTERM, SIGKILL after the grace), remove temp files."""
        for attr in ("_apiserver", "_etcd"):
            proc: _Process | None = getattr(self, attr)
            if proc is not None:
                proc.stop(self.stop_grace)
                setattr(self, attr, None)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _start_etcd(self) -> None:
        root = self._root()
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        argv = [
            str(self.etcd_path),
            "--name=default",
            f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync=true",  # test data; as envtest does
            "--log-level=warn",
        ]
        self._etcd = _Process("etcd", argv, root / "etcd.log")

    def _start_apiserver(self) -> None:
        root = self._root()
        certs = root / "certs"
        certs.mkdir()
        sa_key, sa_pub = root / "sa.key", root / "sa.pub"
        _make_rsa_key(sa_key, sa_pub)
        self.admin_token = os.urandom(24).hex()
        tokens = root / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{_ADMIN_USER},{_ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)

        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        argv = [
            str(self.apiserver_path),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={certs}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            f"--token-auth-file={tokens}",
            "--v=1",
            *self.extra_apiserver_args,
        ]
        self._apiserver = _Process("kube-apiserver", argv, root / "kube-apiserver.log")

    def _wait_etcd(self, deadline: float) -> None:
        """Poll etcd's GET /health so kube-apiserver does not start against a closed port."""
        assert self._etcd is not None
        last = "no answer yet"
        while True:
            self._etcd.check_alive()
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=2.0) as response:
                    body = response.read().decode(errors="replace")
                    if json.loads(body).get("health") == "true":
                        return
                    last = body
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read().decode(errors='replace')}"
                exc.close()
            except (OSError, ValueError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise KubeClusterError(
                    f"etcd not healthy after {self.start_timeout:.0f}s ({last}); "
                    f"last lines of its log:\n{_tail(self._etcd.log_path)}"
                )
            time.sleep(0.1)

    def _wait_ready(self, deadline: float) -> None:
        """Poll GET /readyz until it answers 200, a process dies, or the deadline passes."""
        assert self._etcd is not None and self._apiserver is not None
        last = "no answer yet"
        while True:
            self._etcd.check_alive()
            self._apiserver.check_alive()
            if self.ca_file.exists():
                try:
                    status, body = self._get("/readyz", timeout=5.0)
                    if status == 200:
                        return
                    last = f"HTTP {status}: {body[-2000:]}"
                except (OSError, ssl.SSLError) as exc:
                    last = repr(exc)
            if time.monotonic() > deadline:
                raise KubeClusterError(
                    f"kube-apiserver not ready after {self.start_timeout:.0f}s ({last}); "
                    f"last lines of its log:\n{_tail(self._apiserver.log_path)}"
                )
            time.sleep(0.25)

    def _get(self, path: str, timeout: float) -> tuple[int, str]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code), exc.read().decode(errors="replace")

    # --- clients -----------------------------------------------------------------------------
    def kubeconfig_for_token(
        self,
        token: str,
        path: str | os.PathLike[str] | None = None,
        *,
        user: str = "user",
        namespace: str | None = None,
    ) -> Path:
        """Write a kubeconfig that talks to this cluster with a bearer token; return its path.

        Without ``path`` a fresh file is made in the cluster's temp dir (removed on stop).
        """
        root = self._root()
        if path is None:
            fd, name = tempfile.mkstemp(prefix="kubeconfig-", dir=root)
            os.close(fd)
            target = Path(name)
        else:
            target = Path(path)
        context: dict[str, str] = {"cluster": "taskflow-test", "user": user}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "taskflow-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "taskflow-test", "context": context}],
            "current-context": "taskflow-test",
        }
        target.write_text(json.dumps(config, indent=2) + "\n")
        target.chmod(0o600)
        return target

    def kubectl(
        self,
        *args: str,
        kubeconfig: str | os.PathLike[str] | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (as admin unless ``kubeconfig`` is given)."""
        argv = [str(self.kubectl_path), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubeClusterError(
                f"{' '.join(argv[1:])} exited {result.returncode}:\n{result.stderr}{result.stdout}"
            )
        return result

    def token_for_service_account(
        self,
        namespace: str,
        name: str,
        *,
        create: bool = True,
        duration: str = "1h",
    ) -> str:
        """Return a bearer token for ServiceAccount ``namespace/name`` via the TokenRequest API.

        With ``create`` the ServiceAccount is created if missing (the namespace must exist;
        there is no controller-manager to make ``default`` ServiceAccounts).
        """
        if create:
            exists = self.kubectl("get", "serviceaccount", name, "-n", namespace, check=False)
            if exists.returncode != 0:
                self.kubectl("create", "serviceaccount", name, "-n", namespace)
        result = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}")
        return result.stdout.strip()


def _make_rsa_key(private: Path, public: Path) -> None:
    """Write an RSA private key and its public key (PEM) for signing ServiceAccount tokens."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KubeClusterError("the openssl command is needed to make the service-account key")
    for argv in (
        [openssl, "genrsa", "-out", str(private), "2048"],
        [openssl, "rsa", "-in", str(private), "-pubout", "-out", str(public)],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KubeClusterError(f"{' '.join(argv)} failed: {result.stderr}")
    private.chmod(0o600)
