"""Where trials persist: Optuna storage, the trial table read from it, and experiment tracking.

Owns the Optuna RDB storage of a study (one Optuna study per (variant,
scale)), the trial table (`trial_table.load_trials`, the input of
`hpo.analysis`) and the tracker that records trials for browsing (MLflow:
one parent run per (variant, scale), a child run per trial, the summary run
of `hpo analyze`). Never imports Ray or torch; `hpo.run` adapts Ray Tune's
events to the tracker.
"""
