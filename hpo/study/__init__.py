"""What a study is: the study file read into a validated `StudySpec`, and what its tuning cost.

Owns the study-file schema and its field checks (`spec`, `checks`), the
search-space values (`LogRange`, `PowerOfTwoRange`, `WeightDecayRange`,
`SearchSpace`) and the compute accounting of a study against one target run
(`compute`). Everything here is pure and quick to import: it never imports
torch, Ray, Optuna or MLflow, so `hpo validate` answers in a moment.
"""
