"""A study store that cannot be used ends the CLI in one line, its password unshown."""

from __future__ import annotations

import secrets
from pathlib import Path

from cluster_helpers import hpo, write_study
from pg_server import free_port


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    """A database nobody listens on ends `hpo run` and `hpo status` in one line
    on stderr and exit code 2, without printing the URL's password."""
    secret = f"pw-{secrets.token_hex(8)}"
    url = f"postgresql+psycopg2://hpo:{secret}@127.0.0.1:{free_port()}/optuna"
    path = write_study(tmp_path, "unreachable", records=tmp_path / "records", trials=1,
                       storage={"optuna": url, "mlflow": url.replace("/optuna", "/mlflow")})
    for command in ("run", "status"):
        result = hpo(command, str(path), cwd=tmp_path, timeout=120)
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert "127.0.0.1" in result.stderr and secret not in result.stdout + result.stderr
