"""The ready-made studies in studies/: each passes `hpo validate`, and a
miniature of each question study (its two smallest scales, a few trials, a tiny
token budget) runs end to end through `hpo run`, `hpo status` and `hpo analyze`
in a subprocess, with its output under a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpo.study.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
STUDY_FILES = sorted((ROOT / "studies").glob("*.yaml"))
QUESTIONS = ("weight_decay", "batch_size", "learning_rate", "lr_width_crossover")
HPO = [sys.executable, "-m", "hpo.cli"]


def hpo(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HPO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("path", STUDY_FILES, ids=[path.stem for path in STUDY_FILES])
def test_every_study_file_passes_hpo_validate(path: Path, tmp_path: Path) -> None:
    result = hpo("validate", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"study {yaml.safe_load(path.read_text())['name']}" in result.stdout


def test_each_question_has_its_study_file() -> None:
    assert {path.stem for path in STUDY_FILES} >= set(QUESTIONS)


def test_the_crossover_study_scales_lr_by_width_in_one_variant_only() -> None:
    spec = load_spec(ROOT / "studies" / "lr_width_crossover.yaml")
    exponents = {v.name: v.train.get("lr_width_exponent", 0.0) for v in spec.variants}
    assert exponents == {"constant": 0.0, "c_over_width": 1.0}


def miniature(name: str, folder: Path) -> Path:
    """Study `name` cut down to its two smallest scales, 2 trials each, a tiny
    token budget and an independent search, written into `folder`."""
    data = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())
    spec = load_spec(ROOT / "studies" / f"{name}.yaml")
    data.update({
        "scales": list(spec.scales[:2]), "budget": {"tokens": 4_000}, "trials_per_scale": 2,
        "fidelity": {"grace_tokens": 2_000, "reduction_factor": 3, "eval_every_tokens": 2_000},
        "search": "independent", "output": str(folder / "out"),
        "family_options": {**data.get("family_options", {}), "seq_len": 32, "val_windows": 4},
    })
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", QUESTIONS)
def test_a_miniature_of_the_study_runs_end_to_end(name: str, tmp_path: Path) -> None:
    path = miniature(name, tmp_path)
    run = hpo("run", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    status = hpo("status", str(path), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "tuning compute" in status.stdout
    analyze = hpo("analyze", str(path), "--plots", str(tmp_path / "plots"), cwd=tmp_path)
    # Two sizes and two trials are enough for a recommendation, or for one clear error line.
    if analyze.returncode == 0:
        assert "Recommendation for N = " in analyze.stdout
        assert (tmp_path / "plots" / "optimum_vs_scale.png").exists()
    else:
        assert analyze.returncode == 2
        assert analyze.stderr.startswith("hpo analyze: error: "), analyze.stderr
        assert "Traceback" not in analyze.stderr
