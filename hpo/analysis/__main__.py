"""``python -m hpo.analysis TRIALS.csv --target 1e9 [--target-tokens D] [--plots DIR]``.

Prints the recommendation for the target as plain-text tables (until the
``hpo analyze`` subcommand of the CLI takes this over).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hpo.analysis.extrapolate import recommend
from hpo.analysis.report import format_recommendation
from hpo.analysis.scaling_fit import fit_scaling
from hpo.analysis.trials import read_trials, require_positive


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m hpo.analysis", description=__doc__.splitlines()[0])
    parser.add_argument("trials", help="CSV trial table (columns: params, tokens, lr, batch_size, loss, ...)")
    parser.add_argument("--target", type=float, required=True, help="target model size N (parameters)")
    parser.add_argument("--target-tokens", type=float, default=None, help="target token budget D")
    parser.add_argument("--plots", default=None, help="folder to write PNG plots into")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        require_positive("target_params", args.target)
        require_positive("target_tokens", args.target_tokens)
        trials = read_trials(args.trials)
        fit = fit_scaling(trials, n_bootstrap=args.bootstrap, seed=args.seed)
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
