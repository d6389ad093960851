"""Real ground truth as a table: the learning curves of a grid at every scale, replayed without training.

A *ladder table* (``benchmarks/data/*.csv.gz``, documented in
``benchmarks/data/README.md``) holds one row per evaluation of every run of a
grid: lr × batch size × weight decay × seed at each scale of a model family,
every run evaluated every D/27 tokens (or finer) up to its budget D. Columns
are `COLUMNS`: ``params`` is the scale's N (non-embedding parameters),
``tokens`` the run's budget D, ``tokens_seen`` the tokens trained on before
the evaluation, ``loss`` the eval loss there (nats per token, or the
regression family's mean squared error), ``train_loss`` the mean training loss
since the previous evaluation, ``status`` how the run ended (``complete`` or
``diverged``; a diverged run has rows only for the evaluations it reached).

`TabularLadder` answers the questions ``benchmarks/search_efficiency.py`` asks
its ground truth (the interface of `hpo.evaluation.surrogate.Surrogate`) from
a table, as HPOBench's and LCBench's tabular benchmarks do:

* a setting is *snapped* to the grid: lr to the nearest grid value in log,
  batch size to the nearest grid value in log, weight decay to the nearest
  grid value (0 counts as its own value; a positive wd goes to the nearest
  positive grid value in log). A search restricted to the grid's values is
  replayed exactly; one that samples between them reads its nearest point;
* the seed of a trial is drawn from the table's seeds with the benchmark's
  `rng` when the trial first asks: a trial asks at increasing tokens seen
  (its rungs), so an ask for a grid point at or below the tokens of the
  previous ask for that point starts a new trial, which draws its seed. Two
  trials of one grid point may so read different seeds, as two real runs would. A trial
  with its own seed k (a plan's repeated setting) reads the grid's k-th seed instead;
* ``loss(N, D, setting, t, rng)`` is the eval loss of the first evaluation at
  or after t tokens of that run's curve (the rungs D/27, D/9, D/3, D are
  evaluations), NaN if the run diverged before t;
* ``regret_pct`` compares final losses averaged over every seed at the target
  (the largest scale of the table) with the grid's best such average;
* ``optimal_loss(N, D)`` is the lowest final loss at the scale of N over the
  grid (the benchmark sizes the penalty of a diverged trial with it).

Pure pandas and numpy: replaying needs no torch. The scripts that make the
tables (``real_mlp_ladder.py``, ``real_gpt_ladder.py``) train with
``models.training`` and write them with `curve_rows` and `write_table`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange

DATA_DIR = Path(__file__).resolve().parent / "data"
TABLES = {"mlp": DATA_DIR / "mlp_ladder.csv.gz", "gpt": DATA_DIR / "gpt_ladder.csv.gz"}
"""The committed ladder tables by name (``search_efficiency.py --real NAME``)."""
COLUMNS = ("family", "scale", "params", "tokens", "lr", "batch_size", "weight_decay", "seed",
           "tokens_seen", "loss", "train_loss", "status")
"""Columns of a ladder table, one row per evaluation (see the module docstring)."""
SETTING = ("lr", "batch_size", "weight_decay")
RUN = ("scale", "lr", "batch_size", "weight_decay", "seed")
"""Columns that identify one run within a table (a scale has one budget D)."""
STATUSES = ("complete", "diverged")

Setting = dict[str, float]
"""``lr``, ``batch_size`` (sequences or examples per step) and ``weight_decay``."""
Curve = list[tuple[int, float, float]]
"""A run's evaluations: (tokens seen, eval loss, train loss), in order."""


# ---------------------------------------------------------------- making a table


@dataclass(frozen=True)
class Run:
    """One grid run to train: the family, its scale and N, the budget D (tokens) and evaluation interval
    (tokens), the setting and the seed."""

    family: str
    scale: str
    params: int
    tokens: int
    eval_every: int
    lr: float
    batch_size: int
    weight_decay: float
    seed: int

    def key(self, version: int) -> str:
        """The run's identity in a cache (JSON), `version` bumped when the training settings change."""
        return json.dumps([version, self.family, self.scale, self.tokens, self.eval_every, self.lr,
                           self.batch_size, self.weight_decay, self.seed])


@dataclass(frozen=True)
class Result:
    """How a run ended (``complete`` or ``diverged``), its curve and the seconds its loop ran."""

    status: str
    curve: Curve
    seconds: float


def cached_result(run: Run, train: Callable[[Run], Result], cache_dir: Path, version: int) -> Result:
    """`run`'s result from `cache_dir` (one JSON file per run), else trained by `train` and written there
    atomically first: a grid killed part way loses at most the runs in flight."""
    key = run.key(version)
    path = cache_dir / run.scale / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
    if path.exists():
        record = json.loads(path.read_text())
        return Result(record["status"], [tuple(point) for point in record["curve"]], record["seconds"])
    result = train(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"key": json.loads(key), "status": result.status,
                                   "curve": result.curve, "seconds": result.seconds}))
    partial.replace(path)
    return result


def lattice_lr(step: int) -> float:
    """The grids' learning rate 10^(step/4), to 4 significant digits (the value trained with): lattices
    of every table share these points, a factor 10^¼ ≈ 1.78 apart."""
    return float(f"{10 ** (step / 4):.4g}")


def train_all(runs: Sequence[Run], train: Callable[[Run], Result], cache_dir: Path, version: int,
              report: Callable[[int, Run, Result], None] | None = None) -> list[Result]:
    """The results of `runs`, one at a time, each from the cache or trained and cached (`cached_result`);
    `report(i, run, result)` hears of each run trained."""
    results = []
    for i, run in enumerate(runs):
        trained = False

        def train_once(run: Run) -> Result:
            nonlocal trained
            trained = True
            return train(run)

        results.append(cached_result(run, train_once, cache_dir, version))
        if trained and report is not None:
            report(i, run, results[-1])
    return results


def cached_results(runs: Sequence[Run], cache_dir: Path, version: int) -> list[Result]:
    """The results of `runs` from the cache; `LookupError` naming the first run it lacks."""
    def missing(run: Run) -> Result:
        raise LookupError(f"{run} is not in the cache {cache_dir}")

    return [cached_result(run, missing, cache_dir, version) for run in runs]


def curve_rows(run: Run, result: Result) -> list[dict[str, object]]:
    """The table's rows of one run: one per evaluation."""
    return [{"family": run.family, "scale": run.scale, "params": run.params, "tokens": run.tokens,
             "lr": run.lr, "batch_size": run.batch_size, "weight_decay": run.weight_decay, "seed": run.seed,
             "tokens_seen": seen, "loss": loss, "train_loss": train_loss, "status": result.status}
            for seen, loss, train_loss in result.curve]


def write_table(rows: Iterable[dict[str, object]], path: Path) -> pd.DataFrame:
    """Write `rows` as a ladder table at `path` (gzip if it ends in ``.gz``), sorted by run and tokens seen,
    every number to 6 significant digits; returns the table as written (read back)."""
    table = pd.DataFrame(list(rows), columns=list(COLUMNS))
    table = table.sort_values(["params", "lr", "batch_size", "weight_decay", "seed", "tokens_seen"])
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6g")
    return pd.read_csv(path)


# ---------------------------------------------------------------- reading a table


def load_table(path: Path) -> pd.DataFrame:
    """A ladder table, checked (`check_table`)."""
    table = pd.read_csv(path)
    check_table(table)
    return table


def check_table(table: pd.DataFrame) -> None:
    """Raise `ValueError` unless `table` is a ladder table: the documented columns, one family, one N and
    one D per scale, every scale the full product of its lr, batch size, weight decay and seed values,
    every curve increasing in tokens seen, a complete run reaching its D, known statuses."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"ladder table lacks columns {missing}")
    if table["family"].nunique() != 1:
        raise ValueError(f"ladder table mixes families {sorted(table['family'].unique())}")
    bad = sorted(set(table["status"]) - set(STATUSES))
    if bad:
        raise ValueError(f"ladder table has unknown statuses {bad}: use {STATUSES}")
    for scale, rows in table.groupby("scale"):
        if rows["params"].nunique() != 1 or rows["tokens"].nunique() != 1:
            raise ValueError(f"scale {scale}: one N and one D per scale, found {rows[['params', 'tokens']]}")
        runs = rows.groupby(list(RUN[1:]))
        expected = math.prod(rows[c].nunique() for c in RUN[1:])
        if runs.ngroups != expected:
            raise ValueError(f"scale {scale}: {runs.ngroups} runs, not the full grid of {expected}")
        for run, curve in runs:
            seen = curve["tokens_seen"].to_numpy()
            if not (np.diff(seen) > 0).all():
                raise ValueError(f"scale {scale}, run {run}: tokens_seen not increasing")
            status = curve["status"].unique()
            if len(status) != 1 or (status[0] == "complete" and seen[-1] < curve["tokens"].iloc[0]):
                raise ValueError(f"scale {scale}, run {run}: status {status} with last evaluation {seen[-1]}")


# ---------------------------------------------------------------- replaying a table


def _nearest_log(value: float, grid: Sequence[float]) -> float:
    return min(grid, key=lambda g: abs(math.log(value / g)))


class TabularLadder:
    """Ground truth replayed from a ladder table (see the module docstring).

    Args:
        table: a ladder table (`load_table`); its largest scale is the target, the others the ladder.
    """

    def __init__(self, table: pd.DataFrame) -> None:
        check_table(table)
        self.table = table
        self.family = str(table["family"].iloc[0])
        by_scale = table.groupby("scale")[["params", "tokens"]].first().sort_values("params")
        self.scales: tuple[str, ...] = tuple(by_scale.index)
        """Every scale of the table, smallest N first; the last is the target."""
        self._params = {float(n): str(s) for s, n in by_scale["params"].items()}
        self._tokens = {str(s): int(d) for s, d in by_scale["tokens"].items()}
        self._grid = {s: {c: tuple(sorted(rows[c].unique())) for c in (*SETTING, "seed")}
                      for s, rows in table.groupby("scale")}
        self._curves = {run: (curve["tokens_seen"].to_numpy(), curve["loss"].to_numpy(),
                              str(curve["status"].iloc[0]))
                        for run, curve in table.groupby(list(RUN))}
        final = self.final_losses()
        self._final_mean = final.groupby(["scale", *SETTING])["loss"].agg(_mean_or_nan)
        self._best = {s: float(self._final_mean.loc[s].min()) for s in self.scales}
        self._best_final = {s: float(final.loc[final["scale"] == s, "loss"].min()) for s in self.scales}
        self._trials: dict[tuple[object, ...], tuple[int, float]] = {}
        """The seed and last tokens seen asked of the trial now reading each grid point."""

    @classmethod
    def from_csv(cls, path: Path) -> TabularLadder:
        return cls(load_table(path))

    def up_to(self, target: str) -> TabularLadder:
        """The same table without the scales above `target`, which becomes the target: a second held-out
        scale, so that a method is judged where its defaults were not chosen.

        Raises:
            ValueError: `target` is not a scale of the table, or leaves fewer than two ladder scales.
        """
        if target not in self.scales:
            raise ValueError(f"target {target!r} is not a scale of the table: use one of "
                             f"{', '.join(self.scales)}")
        if self.scales.index(target) < 2:
            raise ValueError(f"target {target!r} leaves fewer than two scales to search: use one of "
                             f"{', '.join(self.scales[2:])}")
        return TabularLadder(self.table[self.table["params"] <= self.params(target)])

    # ------------------------------------------------ the ladder

    @property
    def target_scale(self) -> str:
        return self.scales[-1]

    @property
    def ladder_scales(self) -> tuple[str, ...]:
        """The scales searched: every scale but the target."""
        return self.scales[:-1]

    def params(self, scale: str) -> float:
        """N of `scale` (non-embedding parameters)."""
        return next(n for n, s in self._params.items() if s == scale)

    def tokens(self, scale: str) -> int:
        """D of every run at `scale`, tokens (examples for a regression family)."""
        return self._tokens[scale]

    def scale(self, params: float) -> str:
        """The scale of N = `params`."""
        return self._params[float(params)]

    def grid(self, scale: str) -> dict[str, tuple[float, ...]]:
        """The values of ``lr``, ``batch_size``, ``weight_decay`` and ``seed`` at `scale`, ascending."""
        return self._grid[scale]

    def space(self) -> SearchSpace:
        """The smallest space holding every scale's grid: lr from the lowest to the highest grid lr of any
        scale, every batch size between, weight decay its positive grid values' range (plus 0 if a grid
        value)."""
        lrs = [float(lr) for grid in self._grid.values() for lr in grid["lr"]]
        batches = [int(b) for grid in self._grid.values() for b in grid["batch_size"]]
        wds = sorted({float(w) for grid in self._grid.values() for w in grid["weight_decay"]})
        positive = [w for w in wds if w > 0]
        weight_decay: WeightDecayRange | float
        if not positive:
            weight_decay = 0.0
        elif len(positive) == 1:
            weight_decay = (WeightDecayRange(positive[0] / 10, positive[0], zero=True) if 0 in wds
                            else positive[0])
        else:
            weight_decay = WeightDecayRange(positive[0], positive[-1], zero=0 in wds)
        return SearchSpace(lr=LogRange(min(lrs), max(lrs)),
                           batch_size=PowerOfTwoRange(min(batches), max(batches)),
                           weight_decay=weight_decay)

    def snap(self, scale: str, setting: Setting) -> Setting:
        """The grid point of `scale` that answers for `setting` (see the module docstring)."""
        grid = self._grid[scale]
        wd = float(setting["weight_decay"])
        positive = [w for w in grid["weight_decay"] if w > 0]
        if wd <= 0 or not positive:
            wd = 0.0 if 0.0 in grid["weight_decay"] else min(grid["weight_decay"])
        else:
            wd = _nearest_log(wd, positive)
        return {"lr": float(_nearest_log(float(setting["lr"]), grid["lr"])),
                "batch_size": int(_nearest_log(float(setting["batch_size"]), grid["batch_size"])),
                "weight_decay": float(wd)}

    # ------------------------------------------------ the truth interface of search_efficiency

    def curve(self, scale: str, setting: Setting, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Tokens seen, eval losses and status of the run of grid point `setting` with `seed` at `scale`."""
        point = self.snap(scale, setting)
        return self._curves[(scale, point["lr"], point["batch_size"], point["weight_decay"], seed)]

    def loss(self, params: float, tokens: float, setting: Setting, tokens_seen: float,
             rng: np.random.Generator, seed: int | None = None) -> float:
        """Eval loss of the trial's run at the first evaluation at or after `tokens_seen` (NaN once it
        diverged). The trial's seed is drawn from the grid's seeds with `rng` when it first asks, unless
        the trial has its own `seed` k: then it reads the grid's k-th seed (the table holds only so many;
        a trial asking for more raises `ValueError` rather than replay one seed as another)."""
        scale = self.scale(params)
        if int(tokens) != self._tokens[scale]:
            raise ValueError(f"scale {scale} was tabled at D = {self._tokens[scale]} tokens, not {tokens}")
        point = self.snap(scale, setting)
        seeds = self._grid[scale]["seed"]
        if seed is not None:
            if not 0 <= seed < len(seeds):
                raise ValueError(f"scale {scale} holds {len(seeds)} seeds per grid point; a trial asked for "
                                 f"seed index {seed}")
            run_seed = int(seeds[seed])
        else:
            run = (scale, *point.values())
            run_seed, last = self._trials.get(run, (0, math.inf))
            if tokens_seen <= last:  # a new trial of this grid point: its seed
                run_seed = int(seeds[int(rng.integers(len(seeds)))])
            self._trials[run] = (run_seed, tokens_seen)
        seen, losses, status = self.curve(scale, point, run_seed)
        index = int(np.searchsorted(seen, tokens_seen - 1e-9))
        if index < len(seen):
            return float(losses[index])
        if status == "diverged":
            return math.nan
        raise ValueError(f"the run stops at {seen[-1]} tokens, before {tokens_seen:.0f}")

    def optimal_loss(self, params: float, tokens: float) -> float:
        """The lowest final eval loss of any run at the scale of `params` (sizes a diverged trial's
        penalty)."""
        return self._best_final[self.scale(params)]

    def mean_final_loss(self, scale: str, setting: Setting) -> float:
        """Final eval loss of grid point `setting` at `scale`, mean over the grid's seeds; NaN if a seed
        diverged."""
        point = self.snap(scale, setting)
        return float(self._final_mean.loc[(scale, point["lr"], point["batch_size"], point["weight_decay"])])

    def best(self, scale: str) -> tuple[Setting, float]:
        """The grid point of `scale` with the lowest mean final loss over seeds, and that loss."""
        means = self._final_mean.loc[scale]
        lr, batch, wd = means.idxmin()
        return {"lr": float(lr), "batch_size": int(batch), "weight_decay": float(wd)}, float(means.min())

    def regret_pct(self, params: float, tokens: float, setting: Setting, space: SearchSpace) -> float:
        """100·(mean final loss of `setting`'s grid point at the scale of `params` / the grid's best − 1);
        inf if it diverged on a seed. `space` is unused: the grid is the space."""
        scale = self.scale(params)
        loss = self.mean_final_loss(scale, setting)
        return 100.0 * (loss / self._best[scale] - 1.0) if math.isfinite(loss) else math.inf

    def final_losses(self) -> pd.DataFrame:
        """One row per run: its setting, seed and final eval loss (NaN if it diverged)."""
        last = self.table.sort_values("tokens_seen").groupby(list(RUN), as_index=False).last()
        last.loc[last["status"] != "complete", "loss"] = math.nan
        return last[[*RUN, "params", "tokens", "loss", "status"]]


def _mean_or_nan(values: pd.Series) -> float:
    return float(values.mean()) if values.notna().all() else math.nan


def optima_lines(truth: TabularLadder) -> list[str]:
    """A table (text lines) of each scale's best mean final loss over seeds at each lr, any batch size and
    weight decay, and its best grid point."""
    final = truth.final_losses()
    lrs = sorted(final["lr"].unique())
    lines = ["scale  " + " ".join(f"{lr:>8.3g}" for lr in lrs) + "   best: lr, batch, wd, mean loss"]
    for scale in truth.scales:
        means = final[final["scale"] == scale].groupby(list(SETTING))["loss"].agg(_mean_or_nan)
        per_lr = means.groupby("lr").min()
        best, loss = truth.best(scale)
        lines.append(f"{scale:<6} " + " ".join(f"{per_lr.get(lr, math.nan):8.4f}" for lr in lrs)
                     + f"   {best['lr']:g}, {best['batch_size']}, {best['weight_decay']:g}, {loss:.4f}")
    return lines
