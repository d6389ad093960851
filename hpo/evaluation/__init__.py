"""How good are `hpo`'s answers: ground truths with known optima, backtests and regret.

Owns one synthetic loss landscape with known optima (`landscape`) and its two
uses (`surrogate`: learning curves for judging search methods; `synthetic`:
trial tables for judging the fits), the
leave-largest-out backtest of a real sweep (`backtest`) and the regret of a
setting in a measured cell (`regret`). Used by benchmarks/ and the tests, and
by users who backtest `hpo.analysis` on their own sweeps.

Pure: pandas and numpy in, numbers out. It may import `hpo.analysis` and
`hpo.study`; it never imports Ray, Optuna, MLflow or torch.
"""
