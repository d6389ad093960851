"""A local Ray runtime serves this machine only: every socket it listens on is bound to 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import ray


def listening_sockets_of_session(session: str) -> list[tuple[str, str]]:
    """(local address, process) of every listening TCP socket whose process was started for `session`."""
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    found = []
    for line in lines:
        fields = line.split()
        for pid in (part.split("=")[1] for part in fields[-1].split(",") if part.startswith("pid=")):
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.exists() and session in cmdline.read_bytes().decode(errors="replace"):
                found.append((fields[3], fields[-1]))
    return found


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to list listening sockets")
def test_a_local_runtime_listens_on_the_loopback_address_only(ray_runtime: None) -> None:
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    session = Path(ray._private.worker._global_node.get_session_dir_path()).name
    sockets = listening_sockets_of_session(session)
    assert sockets, "found no socket of the runtime's processes"
    exposed = [(address, process) for address, process in sockets
               if not address.removeprefix("[::ffff:").startswith("127.0.0.1")]
    assert not exposed, exposed
