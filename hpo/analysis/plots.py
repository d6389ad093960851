"""PNG plots of a `Recommendation`: loss vs lr per cell, optima vs scale, loss vs scale per variant.

Matplotlib's object interface (`Figure`) is used, so plotting never touches
pyplot's global state and needs no display. Laws in (N, D) are drawn along the
target's tokens per parameter, D = r·N.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from hpo.analysis.estimate import Estimate
from hpo.analysis.recommendation import Recommendation
from hpo.analysis.scaling_fit import VariantFit
from hpo.analysis.trials import iter_cells, scale_name
from hpo.vocab import COMPLETE, DIVERGED

_LABELS = {"lr": "learning rate", "batch_size": "batch size (per step)", "weight_decay": "weight decay"}
_CURVE_POINTS = 64


def write_plots(recommendation: Recommendation, trials: pd.DataFrame, directory: str | Path) -> list[Path]:
    """Write every plot of `recommendation` into `directory` (created if missing); return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_loss_vs_lr(recommendation, trials, variant, directory / f"loss_vs_lr_{_slug(variant)}.png")
        for variant in recommendation.fit.variants
    ]
    paths.append(plot_optimum_vs_scale(recommendation, directory / "optimum_vs_scale.png"))
    paths.append(plot_loss_vs_scale(recommendation, directory / "loss_vs_scale.png"))
    return paths


def plot_loss_vs_lr(recommendation: Recommendation, trials: pd.DataFrame, variant: str, path: Path) -> Path:
    """One panel per cell: loss of complete trials vs lr, diverged ones (x) on top, the fitted optimum."""
    optima = {(o.params, o.tokens): o for o in recommendation.fit.variants[variant].optima}
    cells = [(params, tokens, rows) for name, params, tokens, rows in iter_cells(trials) if name == variant]
    columns = min(4, len(cells))
    rows_of_panels = math.ceil(len(cells) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows_of_panels), layout="constrained")
    axes = figure.subplots(rows_of_panels, columns, squeeze=False).ravel()
    log_batch = np.log2(pd.concat([rows["batch_size"] for _, _, rows in cells]).to_numpy(dtype=float))
    colors = ScalarMappable(Normalize(log_batch.min(), log_batch.max()), "viridis")
    for ax, (params, tokens, rows) in zip(axes, cells, strict=False):
        complete = rows[rows["status"] == COMPLETE]
        best = complete["loss"].min()
        top = best * 1.08
        ax.scatter(
            complete["lr"],
            complete["loss"].clip(upper=top),
            c=np.log2(complete["batch_size"]),
            s=10,
            cmap=colors.get_cmap(),
            norm=colors.norm,
        )
        diverged = rows[rows["status"] == DIVERGED]
        ax.scatter(
            diverged["lr"], np.full(len(diverged), top), marker="x", color="crimson", s=14, label="diverged"
        )
        optimum = optima.get((params, tokens))
        if optimum is not None:
            ax.axvspan(optimum.lr.low, optimum.lr.high, color="orange", alpha=0.25)
            ax.axvline(optimum.lr.value, color="orange", label=f"optimum {optimum.lr.value:.3g}")
        ax.set(xscale="log", ylim=(best * 0.995, top * 1.005), title=f"{scale_name(params)}, D={tokens:.3g}")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes[len(cells) :]:
        ax.set_visible(False)
    figure.colorbar(colors, ax=axes.tolist(), label="log2 batch size")
    figure.supxlabel("learning rate")
    figure.supylabel("loss")
    figure.savefig(path, dpi=110)
    return path


def plot_optimum_vs_scale(recommendation: Recommendation, path: Path) -> Path:
    """Cell optima vs N with each law, its band, and the prediction at the target."""
    names = sorted({name for v in recommendation.fit.variants.values() for name in v.laws})
    figure = Figure(figsize=(4.5 * max(len(names), 1), 3.8), layout="constrained")
    axes = figure.subplots(1, max(len(names), 1), squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        for index, variant_fit in enumerate(recommendation.fit.variants.values()):
            if name in variant_fit.laws:
                _draw_law(ax, recommendation, variant_fit, name, _color(index))
        ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel=_LABELS[name])
        ax.legend(fontsize=7)
    figure.savefig(path, dpi=110)
    return path


def plot_loss_vs_scale(recommendation: Recommendation, path: Path) -> Path:
    """Tuned loss per cell vs N, each variant's loss law to the target, crossovers marked."""
    figure = Figure(figsize=(6, 4.2), layout="constrained")
    ax = figure.subplots()
    target, ratio = recommendation.target_params, _tokens_per_param(recommendation)
    for index, variant_fit in enumerate(recommendation.fit.variants.values()):
        color = _color(index)
        optima = variant_fit.optima
        ax.errorbar(
            [o.params for o in optima],
            [o.loss.value for o in optima],
            yerr=_error_bars([o.loss for o in optima]),
            fmt="o",
            color=color,
            label=variant_fit.variant,
        )
        law = variant_fit.loss_law
        if law is None:
            continue
        grid = np.geomspace(
            variant_fit.params_measured[0], max(target, variant_fit.params_measured[-1]), _CURVE_POINTS
        )
        tokens = None if law.B is None else grid * ratio
        ax.plot(grid, law.predict(grid, tokens), color=color)
        predictions = law.replicate_predictions(grid, tokens)
        ax.fill_between(grid, *np.percentile(predictions, [5, 95], axis=0), color=color, alpha=0.2)
    for crossover in recommendation.crossovers:
        if crossover.verdict != "none":
            ax.axvline(
                crossover.params.value,
                color="black",
                linestyle="--",
                label=f"{crossover.variant_a}/{crossover.variant_b} {crossover.verdict}",
            )
            if math.isfinite(crossover.params.low):
                ax.axvspan(crossover.params.low, crossover.params.high, color="gray", alpha=0.15)
    ax.axvline(target, color="gray", linestyle=":", label="target")
    ax.set(xscale="log", xlabel="parameters N", ylabel="tuned loss")
    ax.legend(fontsize=7)
    figure.savefig(path, dpi=110)
    return path


def _draw_law(
    ax: Axes, recommendation: Recommendation, variant_fit: VariantFit, name: str, color: str
) -> None:
    law = variant_fit.laws[name]
    target, ratio = recommendation.target_params, _tokens_per_param(recommendation)
    optima = [o for o in variant_fit.optima if name in o.searched]
    estimates = [o.value(name) for o in optima]
    ax.errorbar(
        [o.params for o in optima],
        [e.value for e in estimates],
        yerr=_error_bars(estimates),
        fmt="o",
        color=color,
        alpha=0.8,
        label=f"{variant_fit.variant} optima",
    )
    grid = np.geomspace(
        variant_fit.params_measured[0], max(target, variant_fit.params_measured[-1]), _CURVE_POINTS
    )
    curve = [law.estimate(n, None if law.c is None else n * ratio) for n in grid]
    ax.plot(grid, [e.value for e in curve], color=color, label=_law_label(law.b, law.c))
    ax.fill_between(grid, [e.low for e in curve], [e.high for e in curve], color=color, alpha=0.2)
    at_target = law.estimate(target, None if law.c is None else target * ratio)
    ax.errorbar(
        [target], [at_target.value], yerr=_error_bars([at_target]), fmt="*", markersize=12, color=color
    )


def _law_label(b: float, c: float | None) -> str:
    return f"∝ N^{b:.2f}" + ("" if c is None else f"·D^{c:.2f}")


def _error_bars(estimates: list[Estimate]) -> np.ndarray:
    """Rows (below, above) for `Axes.errorbar`; zero where an interval is missing."""
    values = np.array([e.value for e in estimates])
    below = np.nan_to_num(values - np.array([e.low for e in estimates]), nan=0.0)
    above = np.nan_to_num(np.array([e.high for e in estimates]) - values, nan=0.0)
    return np.vstack([np.clip(below, 0, None), np.clip(above, 0, None)])


def _tokens_per_param(recommendation: Recommendation) -> float:
    """D/N of the target; laws in (N, D) are drawn along it (such a law always has a target D)."""
    if recommendation.target_tokens is None:
        return math.nan
    return recommendation.target_tokens / recommendation.target_params


def _color(index: int) -> str:
    """Matplotlib's default colour cycle, repeating after ten."""
    return f"C{index % 10}"


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
