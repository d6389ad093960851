"""``python -m hpo.analysis TRIALS.csv --target N`` or ``python -m hpo.analysis --backtest TRIALS.csv``.

With ``--target``: the recommendation for a model of N parameters (and
``--target-tokens`` D), as plain-text tables, and with ``--plots`` its PNG
plots. With ``--backtest``: hold every model size out in turn, fit the rest,
and judge the prediction at the held-out size against its own runs
(`hpo.evaluation.backtest`). ``--rename N=params,D=tokens`` maps a foreign
sweep's columns onto the trial table's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hpo.analysis.recommendation import recommend
from hpo.analysis.report import format_recommendation
from hpo.analysis.scaling_fit import METHODS, fit_scaling
from hpo.analysis.trials import parse_renames, read_trials, require_positive

DESCRIPTION = "Recommend the large run's settings from a trial table, or backtest the laws on it."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m hpo.analysis", description=DESCRIPTION)
    parser.add_argument("trials", help="CSV trial table (columns: params, tokens, lr, batch_size, loss, ...)")
    parser.add_argument("--target", type=float, default=None, help="target model size N (parameters)")
    parser.add_argument("--target-tokens", type=float, default=None, help="target token budget D")
    parser.add_argument("--backtest", action="store_true", help="backtest the laws on the sweep instead")
    parser.add_argument("--method", choices=METHODS, default="auto", help="how the laws are fitted")
    parser.add_argument("--rename", default="", help="FROM=TO column renames, comma separated")
    parser.add_argument("--plots", default=None, help="folder to write PNG plots into")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    try:
        trials = read_trials(args.trials, rename=parse_renames(args.rename))
        if args.backtest:
            from hpo.evaluation.backtest import run_backtest
            from hpo.evaluation.backtest_report import format_backtest

            report = run_backtest(trials, method=args.method, n_bootstrap=args.bootstrap, seed=args.seed)
            print(format_backtest(report))
            return 0
        if args.target is None:
            raise ValueError("pass --target N (parameters) for a recommendation, or --backtest")
        require_positive("target_params", args.target)
        require_positive("target_tokens", args.target_tokens)
        fit = fit_scaling(trials, method=args.method, n_bootstrap=args.bootstrap, seed=args.seed)
        recommendation = recommend(fit, target_params=args.target, target_tokens=args.target_tokens)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_recommendation(recommendation))
    if args.plots:
        from hpo.analysis.plots import write_plots

        for path in write_plots(recommendation, trials, args.plots):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
