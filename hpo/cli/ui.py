"""`hpo ui`: the MLflow UI of a study's store on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable

from hpo.cli.output import stdout
from hpo.study.spec import load_spec


def ui(args: argparse.Namespace) -> int:
    """Serve the MLflow UI of the study's store on `args.host` until Ctrl-C; print the
    experiment's URL once the server answers."""
    from hpo.store.mlflow_template import open_tracking_store

    spec = load_spec(args.study)
    experiment = open_tracking_store(spec.storage.mlflow).get_experiment_by_name(spec.name)
    if experiment is None:
        raise ValueError(f"study {spec.name!r} has no MLflow experiment yet: run `hpo run {args.study}`")
    port = _free_port(args.host, args.port)
    command = [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(port),
               "--workers", "1"]
    # The store's URI (a team's PostgreSQL URL holds its password) goes in the environment, which
    # other users cannot read, not on the command line, which `ps` shows everyone.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": spec.storage.mlflow,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # Its log goes to a file, not a pipe: a pipe nobody reads fills up and stalls the server.
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
                                  preexec_fn=_ended_with_parent())
        # Ctrl-C and `kill` stop the server, also where SIGINT came ignored (a shell script's background
        # job inherits SIGINT ignored, and Python then leaves it so).
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            if _wait_until_up(server, f"http://{args.host}:{port}/health", UI_START_SECONDS):
                url = f"http://{args.host}:{port}/#/experiments/{experiment.experiment_id}/runs?{UI_QUERY}"
                stdout.print(f"MLflow UI for study {spec.name}: {url}  (Ctrl-C stops it)", markup=False,
                             highlight=False)
                code = server.wait()
            else:
                code = server.poll()
        except KeyboardInterrupt:
            _stop(server)
            return 0
        if code is None:  # never answered
            _stop(server)
            raise ValueError(f"the MLflow server on port {port} did not answer within {UI_START_SECONDS} s")
        log.seek(0)
        error = log.read().strip().splitlines()
    raise ValueError(f"the MLflow server exited with code {code}: {error[-1] if error else 'no message'}")


UI_QUERY = "workflowType=machine_learning"
"""Opens MLflow's UI in its model-training view (runs, params, metric charts) rather than GenAI's."""
UI_START_SECONDS = 120
"""How long `hpo ui` waits for the MLflow server to answer (it starts in ~7 s on an idle machine)."""


def _free_port(host: str, port: int | None) -> int:
    """`port` if given and free on `host`; with no port, 5000 when free, else one the system picks;
    with port 0, one the system picks. A given port in use is a usage error."""
    for candidate in ([port] if port is not None else [5000, 0]):
        with socket.socket() as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise ValueError(f"--port {port}: port in use on {host}; pass another, or --port 0 to pick a free one")


def _wait_until_up(server: subprocess.Popen[str], url: str, seconds: float) -> bool:
    """True once `url` answers 200, False if `server` exits or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


_PR_SET_PDEATHSIG = 1
"""Linux prctl(2) option: the signal a process gets when its parent dies."""


def _ended_with_parent() -> Callable[[], None] | None:
    """What the MLflow server runs before exec so that it gets SIGTERM (and stops its workers) when `hpo
    ui` dies, even by SIGKILL, which nothing can catch: Linux's prctl(PR_SET_PDEATHSIG); None elsewhere.
    libc is loaded here, before the fork, so the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def end_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call
            os.kill(os.getpid(), signal.SIGTERM)

    return end_with_parent


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(server: subprocess.Popen[str]) -> None:
    """Stop the MLflow server (SIGTERM ends its workers with it); kill it after 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
