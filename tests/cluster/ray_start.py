"""A Ray cluster of real ``ray start`` processes on this machine: a head (no CPUs, its dashboard and
job server on 127.0.0.1) and one worker node, as README "Run on a cluster" starts them.

Each node runs ``ray start --block`` in a session of its own, with a private ``--temp-dir`` (two nodes
sharing one would share the folder a job's working directory is unpacked to: the worker node's copy
deletes the one the job's driver runs in), ports picked free just before, and a token of its own for
Ray's token authentication, passed in the environment (``RAY_AUTH_TOKEN``), never written to
``~/.ray``. `stop` ends only these processes: ``ray stop`` would end every Ray process of this
user, other sessions' included. It sends SIGTERM to each ``ray start --block`` (which ends its
node's processes), then SIGKILL to whatever still carries this cluster's token in its environment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
"""The folder of this environment's ``ray``, ``hpo`` and ``python``: the nodes find them on $PATH."""


def free_port() -> int:
    """A TCP port that nothing listens on (just now), on any interface."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """The local addresses that TCP sockets listen on at `port` (from /proc/net/tcp and tcp6), e.g.
    ``{"127.0.0.1"}``; ``0.0.0.0`` or ``::`` means every interface."""
    return {address for address, listening_port, _ in _listening() if listening_port == port}


def listening_sockets(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that the processes `pids` listen on."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(int(target[8:-1]))
    return {(address, port) for address, port, inode in _listening() if inode in inodes}


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc: the children of each of its threads)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found |= {int(child)} | descendants(int(child))
    return found


def _listening() -> list[tuple[str, int, int]]:
    """(address, port, socket inode) of every listening TCP socket of this machine's network namespace."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                address, hex_port = fields[1].split(":")
                if fields[3] == "0A" and len(address) == width:
                    found.append((_address(address), int(hex_port, 16), int(fields[9])))
    return found


def _address(hexed: str) -> str:
    """An address of /proc/net/tcp{,6} (little-endian 32-bit words) as text; IPv4-mapped IPv6 as IPv4."""
    raw = b"".join(bytes.fromhex(hexed[i:i + 8])[::-1] for i in range(0, len(hexed), 8))
    if len(raw) == 16 and raw[:12] == b"\0" * 10 + b"\xff\xff":
        raw = raw[12:]
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


@dataclass
class RayStartCluster:
    """The running cluster: `dashboard` is the job server's address for ``ray job --address``."""

    root: Path
    token: str
    gcs_port: int
    dashboard_port: int
    env: dict[str, str]
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def ray(self, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``ray ARGS`` of this environment, with the cluster's token, run to the end."""
        return subprocess.run([str(BIN / "ray"), *args], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def job_server_answers(self, *, with_token: bool = True) -> int:
        """The HTTP status of the job server's job list (401 without the token)."""
        headers = {"Authorization": f"Bearer {self.token}"} if with_token else {}
        request = urllib.request.Request(f"{self.dashboard}/api/jobs/", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def logs(self) -> str:
        """The last lines of each node's ``ray start`` output, for a failing test's message."""
        return "\n".join(path.read_text()[-2000:] for path in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        """End this cluster's processes (only them) and delete its folder."""
        for node in reversed(self.nodes):  # the worker first, then the head
            with contextlib.suppress(ProcessLookupError):
                node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.pid, signal.SIGKILL)
        for pid in processes_with(f"RAY_AUTH_TOKEN={self.token}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def processes_with(entry: str) -> list[int]:
    """The processes whose environment holds `entry` (``NAME=value``), this one excepted."""
    found = []
    wanted = entry.encode() + b"\0"
    for folder in Path("/proc").iterdir():
        if not folder.name.isdigit() or int(folder.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if wanted in (folder / "environ").read_bytes():
                found.append(int(folder.name))
    return found


def start_cluster(*, worker_cpus: int = 2, timeout: float = 120) -> RayStartCluster:
    """Start the head (0 CPUs) and one worker node with `worker_cpus` CPUs; `RuntimeError` (with the
    nodes' output) when they do not come up within `timeout` seconds. Call `stop` in every case."""
    root = Path(tempfile.mkdtemp(prefix="hpo-raystart-"))  # short: Ray's socket paths live under it
    token = secrets.token_hex(32)
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    cluster = RayStartCluster(root, token, free_port(), free_port(), env)
    common = ["--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
              "--min-worker-port", "0", "--max-worker-port", "0"]
    head = ["--head", "--port", str(cluster.gcs_port), "--num-cpus", "0", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(cluster.dashboard_port), "--ray-client-server-port", str(free_port())]
    worker = ["--address", cluster.gcs_address, "--num-cpus", str(worker_cpus)]
    try:
        for name, args in (("head", head), ("worker", worker)):
            temp_dir = root / name
            temp_dir.mkdir()
            ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                     "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
            log = root / f"{name}.log"
            with log.open("wb") as output:
                cluster.nodes.append(subprocess.Popen(
                    [str(BIN / "ray"), "start", *args, *common, "--temp-dir", str(temp_dir),
                     *[item for port in ports for item in (port, str(free_port()))]],
                    env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True))
            _wait(lambda log=log: b"block forever" in log.read_bytes(), cluster, timeout, f"the {name} node")
        _wait(lambda: cluster.job_server_answers() == 200, cluster, timeout, "the job server")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait(condition: Callable[[], bool], cluster: RayStartCluster, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if condition():
                return
        if any(node.poll() is not None for node in cluster.nodes):
            raise RuntimeError(f"a `ray start` exited before {what} was up:\n{cluster.logs()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up in {timeout:.0f} s:\n{cluster.logs()}")
        time.sleep(0.5)
