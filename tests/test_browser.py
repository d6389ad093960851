"""The MLflow UI, checked in a real headless Chromium: what a user browsing a study sees.

The test runs a small two-variant `mlp` study and its analysis through the
real CLI, serves the study's store with `hpo ui`, and drives the system's
Chromium (Debian's ``chromium``, installed by ``.ci/install_chromium.sh``)
with Playwright. It checks that the experiment's runs table lists the
``{scale} · {variant}`` parent runs with their best trial's params and loss
and nests the trials under them, that a trial's page shows its params and its
loss-over-tokens chart, and that the summary run's plot artifact renders.
Screenshots of every step are saved under the test's temporary folder (and a
``failed-*.png`` of the page where a check failed).

Without Chromium the test fails when ``$CI`` is set (CI must run it) and is
skipped otherwise, saying how to install it.

The same code makes the guide's screenshots (docs/browse_in_mlflow.md), from a
study that already ran and was analysed::

    .venv/bin/python -m tests.test_browser studies/quickstart.yaml --screenshots docs/images
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from small_studies import HPO, run_hpo, write_mlp_study

if TYPE_CHECKING:
    from mlflow.entities import Run
    from playwright.sync_api import Locator, Page

CHROMIUM = os.environ.get("HPO_CHROMIUM", "/usr/bin/chromium")
"""The browser driven: the system's Chromium, never one Playwright downloads."""
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
]
"""Flags these machines need (no sandbox as root, no GPU, no network beyond 127.0.0.1).
Playwright gives every launch a fresh, temporary user-data-dir of its own."""
UI_QUERY = "workflowType=machine_learning"
"""Query of every page opened: MLflow's model-training view (its default is the GenAI one)."""
TIMEOUT_MS = 90_000
"""How long to wait for an element: the React UI on a busy 2-core machine can take tens of seconds."""
VIEWPORT = {"width": 1600, "height": 1200}


def study_file(folder: Path, name: str = "browse_mlp") -> Path:
    """A small `mlp` study, two variants × two scales, 3 trials per scale (the scale-aware default runs
    w8, the cheap scale, as a design of 9), about 2 min on 2 cores, written to `folder`."""
    return write_mlp_study(
        folder, name,
        space={"lr": {"low": 1e-3, "high": 0.3}, "batch_size": {"low": 16, "high": 64},
               "weight_decay": {"low": 1e-4, "high": 0.1, "zero": True}},
        variants={"baseline": {}, "no_wd": {"weight_decay": 0}}, trials_per_scale=3,
        fidelity={"grace_tokens": 2_000, "reduction_factor": 2})


def hpo(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the `hpo` command line; fail with its error output if it does not exit 0."""
    result = run_hpo(*args, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"hpo {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}"
    return result


@dataclass(frozen=True)
class StudyRuns:
    """What the study's MLflow store holds, read directly: the pages must show these."""

    tracking_uri: str
    experiment_id: str
    parents: list[Run]
    trials: list[Run]
    summary: Run

    @classmethod
    def read(cls, tracking_uri: str, study: str) -> StudyRuns:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(study)
        assert experiment is not None, f"no MLflow experiment {study!r} at {tracking_uri}"
        runs = client.search_runs([experiment.experiment_id], max_results=10_000)
        kinds: dict[str, list[Run]] = {}
        for run in runs:
            kinds.setdefault(run.data.tags.get("kind", ""), []).append(run)
        assert kinds.get("summary"), "no summary run: run `hpo analyze` first"
        return cls(tracking_uri, experiment.experiment_id, kinds.get("scale", []), kinds.get("trial", []),
                   kinds["summary"][0])

    def largest_parent(self) -> Run:
        """The parent run of the largest scale (most parameters), of the first variant by name."""
        largest = max(int(r.data.tags["N"]) for r in self.parents)
        return min((r for r in self.parents if int(r.data.tags["N"]) == largest),
                   key=lambda r: r.data.tags["variant"])

    def loss_steps(self, trial: Run) -> list[int]:
        """The steps (tokens seen) of a trial's eval-loss curve."""
        from mlflow import MlflowClient

        return [m.step for m in MlflowClient(self.tracking_uri).get_metric_history(trial.info.run_id, "loss")]

    def best_trial(self, parent: Run) -> Run:
        """The trial whose params the parent carries."""
        return next(r for r in self.trials if r.info.run_id == parent.data.tags["best_run_id"])


# ---------------------------------------------------------------- the server and the browser


@contextlib.contextmanager
def serve_ui(study: Path, cwd: Path) -> Iterator[str]:
    """`hpo ui STUDY --port 0` until the block ends; yields the experiment URL it prints."""
    ui = subprocess.Popen([*HPO, "ui", str(study), "--port", "0"], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert ui.stdout is not None and ui.stderr is not None
        line = ui.stdout.readline()  # printed once the server answers
        match = re.search(r"(http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?\S*)", line)
        assert match, f"hpo ui printed no experiment URL: {line!r}{'' if line else ui.stderr.read()[-2000:]}"
        yield match.group(1)
        ui.send_signal(signal.SIGINT)
        assert ui.wait(timeout=60) == 0, "hpo ui did not stop cleanly on Ctrl-C"
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()


@contextlib.contextmanager
def chromium_page() -> Iterator[Page]:
    """A page of a fresh headless Chromium (the system's, see `CHROMIUM`)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # expect's own default is 5 s, whatever the page's is
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def chromium_missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: run .ci/install_chromium.sh (Debian's chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the Python package playwright is missing: pip install -e '.[dev]'"
    return None


# ---------------------------------------------------------------- the pages, checked and photographed


class Browse:
    """Opens the pages of one study's experiment, checks them, and saves a screenshot of each in `shots`."""

    def __init__(self, page: Page, experiment_url: str, runs: StudyRuns, shots: Path) -> None:
        self.page, self.runs, self.shots = page, runs, shots
        self.base = experiment_url.split("/#/")[0]
        self.experiment_url = experiment_url
        shots.mkdir(parents=True, exist_ok=True)

    def all(self) -> list[Path]:
        """Every check, in the order a user browses; returns the screenshots."""
        return [self.experiment_page(), *self.trial_page(), *self.summary_page()]

    def experiment_page(self) -> Path:
        """The runs table: every `{scale} · {variant}` parent and the summary run; the columns lr,
        batch_size, weight_decay and loss show each parent's best trial; the largest scale's
        parent expands into its trials."""
        from playwright.sync_api import expect

        page = self.page
        page.goto(self.experiment_url)
        for run in [*self.runs.parents, self.runs.summary]:
            expect(self._run_link(run.info.run_name)).to_be_visible()
        self._close_assistant()
        columns = [("Parameters", "lr"), ("Parameters", "batch_size"), ("Parameters", "weight_decay"),
                   ("Metrics", "loss"), ("Tags", "status")]
        self._show_columns(columns, hide=("Dataset", "Source", "Models"))
        self._widen_name_column()
        for parent in self.runs.parents:
            row = self._row(parent)
            expect(row.locator('[col-id="params.`lr`"]')).to_have_text(parent.data.params["lr"])
            expect(row.locator('[col-id="params.`batch_size`"]')).to_have_text(parent.data.params["batch_size"])
            expect(row.locator('[col-id="metrics.`loss`"]')).to_have_text(_metric_cell(parent.data.metrics["loss"]))
        parent = self.runs.largest_parent()
        self._row(parent).locator('button[data-component-id$="runnamecellrenderer.tsx_46"]').click()
        children = [r for r in self.runs.trials if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert children, f"{parent.info.run_name} has no trials"
        for child in children:
            expect(self._run_link(child.info.run_name, child.info.run_id)).to_be_visible()
            expect(self._row(child).locator('[col-id="tags.`status`"]')).to_have_text(child.data.tags["status"])
        return self._shot("experiment_runs")

    def trial_page(self) -> list[Path]:
        """The best trial of the largest scale: its name, params, tags; then its loss chart over tokens."""
        from playwright.sync_api import expect

        page, trial = self.page, self.runs.best_trial(self.runs.largest_parent())
        page.goto(f"{self.base}/#/experiments/{self.runs.experiment_id}/runs/{trial.info.run_id}?{UI_QUERY}")
        expect(page.get_by_role("heading", name=trial.info.run_name)).to_be_visible()
        self._close_assistant()
        expect(page.get_by_text("step is tokens seen")).to_be_visible()  # its description
        parent = next(r for r in self.runs.parents if r.info.run_id == trial.data.tags["mlflow.parentRunId"])
        expect(page.get_by_role("link", name=parent.info.run_name, exact=True)).to_be_visible()
        for key in ("lr", "batch_size", "weight_decay", "variant", "scale"):
            expect(self._param_row(key)).to_contain_text(trial.data.params[key])
        overview = self._shot("trial_overview", full_page=True)

        page.get_by_role("tab", name="Model metrics").click()
        card = page.locator('[data-testid="experiment-view-compare-runs-card"]').filter(
            has=page.locator('h4[title="loss"]'))
        points = card.locator(".js-plotly-plot g.scatterlayer path.point")
        expect(points).to_have_count(len(self.runs.loss_steps(trial)))
        ticks = card.locator(".js-plotly-plot g.xtick text")
        expect(ticks.last).to_have_text(re.compile(r"\d"))  # steps are tokens: up to the budget
        return [overview, self._shot("trial_loss_curve")]

    def summary_page(self) -> list[Path]:
        """The summary run: the recommendation as description and params; its optima-vs-scale plot renders."""
        from playwright.sync_api import expect

        page, summary = self.page, self.runs.summary
        run_url = f"{self.base}/#/experiments/{self.runs.experiment_id}/runs/{summary.info.run_id}"
        page.goto(f"{run_url}?{UI_QUERY}")
        expect(page.get_by_role("heading", name=summary.info.run_name)).to_be_visible()
        self._close_assistant()
        expect(page.get_by_text("Recommendation for N =").first).to_be_visible()
        page.get_by_text("Show more", exact=True).first.click()  # the description is folded
        expect(page.get_by_text("Show less", exact=True).first).to_be_visible()
        for key in ("variant", "lr", "batch_size", "target_N"):
            expect(self._param_row(key)).to_contain_text(summary.data.params[key])
        overview = self._shot("summary_overview", full_page=True)

        page.goto(f"{run_url}/artifacts/plots/optimum_vs_scale.png?{UI_QUERY}")
        image = page.locator('img[alt="plots/optimum_vs_scale.png"]')  # its src is a blob of the fetched file
        expect(image).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
        return [overview, self._shot("summary_plot")]

    def _param_row(self, key: str) -> Locator:
        """The row of param `key` in a run page's Parameters table."""
        page = self.page
        table = page.get_by_role("table").filter(
            has=page.get_by_role("columnheader").filter(has_text=re.compile(r"^Parameter$")))
        named = page.get_by_role("cell").get_by_text(key, exact=True)
        return table.get_by_role("row").filter(has=named).first

    def _run_link(self, name: str, run_id: str | None = None) -> Locator:
        if run_id is not None:
            return self.page.locator(f'a[href$="/runs/{run_id}"]').filter(has_text=name).first
        return self.page.get_by_role("link", name=name, exact=True).first

    def _row(self, run: Run) -> Locator:
        """The cells of `run`'s row in the runs table (ag-grid splits a row into a pinned and a scrolled
        part, both with the run id as row id)."""
        return self.page.locator(f'.ag-row[row-id="{run.info.run_id}"]')

    def _close_assistant(self) -> None:
        """Close the MLflow Assistant side panel when it is open (it narrows the page)."""
        close = self.page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
        if close.count() and close.first.is_visible():
            close.first.click()

    def _show_columns(self, columns: list[tuple[str, str]], hide: tuple[str, ...]) -> None:
        """Tick `columns` ((group, name): group is Metrics, Parameters or Tags) and untick the
        attribute columns `hide` in the table's Columns menu."""
        page = self.page
        page.locator('button[data-testid="column-selection-dropdown"]').first.click()
        search = page.get_by_placeholder("Search columns")
        for group, name in [*columns, *(("Attributes", name) for name in hide)]:
            search.fill(name)
            nodes = page.locator(".du-bois-light-tree-treenode")
            header = nodes.filter(has_text=re.compile(rf"^{group}( \(\d+\))?$"))
            header.first.wait_for()
            texts = nodes.all_inner_texts()
            start = next(i for i, text in enumerate(texts) if text.startswith(group))
            index = next(i for i in range(start + 1, len(texts)) if texts[i] == name)
            nodes.nth(index).locator(".du-bois-light-tree-checkbox").click()
        page.keyboard.press("Escape")

    def _widen_name_column(self, pixels: int = 200) -> None:
        """Drag the Run Name column `pixels` wider, so trial names show in full (ag-grid follows
        a pointer that hovers the handle first and then moves in small steps)."""
        handle = self.page.locator('.ag-header-cell[col-id="attributes.`Run Name`"] .ag-header-cell-resize')
        handle.hover()
        box = handle.bounding_box()
        assert box is not None, "the Run Name column has no resize handle"
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.down()
        for step in range(1, 21):
            self.page.mouse.move(x + pixels * step / 20, y)
            self.page.wait_for_timeout(20)
        self.page.mouse.up()

    def _shot(self, name: str, *, full_page: bool = False) -> Path:
        path = self.shots / f"{name}.png"
        self.page.mouse.move(0, 0)  # no hover highlight in the picture
        self.page.screenshot(path=path, full_page=full_page)
        return path


def _metric_cell(value: float) -> re.Pattern[str]:
    """A metric as the runs table shows it: rounded to a few decimals."""
    return re.compile(rf"^{re.escape(f'{value:.4f}'[:-1])}\d*")


def browse_study(study: Path, shots: Path, *, cwd: Path) -> list[Path]:
    """Serve `study`'s store with `hpo ui`, check its pages in Chromium, save their screenshots in `shots`.

    The study must have run and been analysed (``hpo run``, ``hpo analyze``).
    On a failed check, the page as it was is saved as ``failed-<step>.png``.
    """
    from hpo.study.spec import load_spec

    spec = load_spec(study)
    runs = StudyRuns.read(spec.storage.mlflow, spec.name)
    with serve_ui(study, cwd) as url, chromium_page() as page:
        return _photographing_failures(page, shots, Browse(page, url, runs, shots).all)


def _photographing_failures(page: Page, shots: Path, check: Callable[[], list[Path]]) -> list[Path]:
    try:
        return check()
    except BaseException:
        with contextlib.suppress(Exception):
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shots / "failed-page.png", full_page=True)
            (shots / "failed-page.html").write_text(page.content())
        raise


# ---------------------------------------------------------------- the test


@pytest.mark.slow
def test_mlflow_ui_shows_runs_params_loss_curves_and_the_summary_plot(tmp_path: Path) -> None:
    missing = chromium_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {missing}")
        pytest.skip(missing)
    path = study_file(tmp_path)
    hpo("run", str(path), cwd=tmp_path)
    hpo("analyze", str(path), cwd=tmp_path)
    shots = browse_study(path, tmp_path / "screenshots", cwd=tmp_path)
    assert all(shot.stat().st_size > 10_000 for shot in shots)


def main(argv: list[str] | None = None) -> int:
    """Make the guide's screenshots from a study that ran and was analysed."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("study", help="study file, e.g. studies/quickstart.yaml")
    parser.add_argument("--screenshots", required=True, help="folder for the PNG files, e.g. docs/images")
    args = parser.parse_args(argv)
    missing = chromium_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    shots = Path(args.screenshots)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(_scratch_folder()))
        made = browse_study(Path(args.study).absolute(), scratch, cwd=Path.cwd())
        shots.mkdir(parents=True, exist_ok=True)
        for shot in made:
            shutil.copy(shot, shots / shot.name)
            print(f"wrote {shots / shot.name}")
    return 0


@contextlib.contextmanager
def _scratch_folder() -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        yield folder


if __name__ == "__main__":
    sys.exit(main())
