"""Names the update Job and the operator both rely on, in a module with no heavy imports
(the operator reads them without loading MLflow or scikit-learn)."""

from __future__ import annotations

# MLflow: the alias that marks the serving version, and the tags a run is found by.
CHAMPION_ALIAS = "champion"
RUN_KEY_TAG = "inshape.run_key"
POLICY_TAG = "inshape.policy"
OUTCOME_TAG = "inshape.outcome"

# Exit codes of `python -m inshape_jobs update`.
EXIT_RUN_FAILED = 1
EXIT_SPEC_ERROR = 2  # the policy can never work: retrying the Job would not help
