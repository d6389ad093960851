"""Running a study on Ray: the runner, its ladder of cells, and the trainable a trial runs.

Owns the driver side of a run (`runner.run_study`, `ladder.Ladder`, one
`cell.Cell` per (variant, scale): open, repair, search, close) and the
worker side (`trainable.run_trial`, which trains one model with
`models.training` and reports to Ray Tune). The only package that starts Ray;
it talks to the stores through `hpo.store` and to MLflow only through a
`hpo.store.tracker.Tracker`.
"""
