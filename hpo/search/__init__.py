"""How each (variant, scale) is searched: plans, designs, the sampler and the early stopping.

Owns the search strategies (``independent``, ``scale_aware``) behind one
small protocol with a registry, the plan a strategy makes for a scale
(enqueued trials, the narrowed space, the law it checks), the Latin-hypercube
designs, the Optuna define-by-run space, the Optuna searcher that Ray Tune
drives (`searcher`), and ASHA on tokens (`scheduler`).

The planning modules are pure (trial tables in, plans out); only `sampling`,
`searcher` and `scheduler` import Optuna or Ray. Never imports MLflow, torch or
`hpo.run`.
"""
