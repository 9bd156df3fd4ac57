"""Names the update Job, the operator and the chart all rely on: one place, no heavy imports.

A name used on both sides of a seam (an env var the operator sets and the Job reads, a label
the operator selects by, a tag the Job writes and the operator looks for) is spelled here once.
"""

from __future__ import annotations

# The API.
API_GROUP = "inshape.dev"
API_VERSION = "v1alpha1"
KIND = "ModelUpdatePolicy"
PLURAL = "modelupdatepolicies"
SINGULAR = "modelupdatepolicy"

# Metadata on update Jobs (and their pods) and on policies.
LABEL_POLICY = f"{API_GROUP}/policy"
LABEL_POLICY_UID = f"{API_GROUP}/policy-uid"
LABEL_RUN = f"{API_GROUP}/run"
ANNOTATION_TRIGGER = f"{API_GROUP}/trigger"
ANNOTATION_GENERATION = f"{API_GROUP}/policy-generation"
ROLLBACK_ANNOTATION = f"{API_GROUP}/rollback"
FINALIZER = f"{API_GROUP}/finalizer"
# On a target Deployment, set by its owner: the one policy allowed to patch it.
TARGET_OPT_IN_LABEL = LABEL_POLICY

# The update Job's container and what the operator hands it.
UPDATE_CONTAINER = "update"
POLICY_ENV = "INSHAPE_POLICY"  # the policy document, JSON, defaults applied
RUN_KEY_ENV = "INSHAPE_RUN_KEY"  # idempotency key: the Job's controller uid
TERMINATION_LOG_ENV = "INSHAPE_TERMINATION_LOG"  # where the one-line result goes

# MLflow: the alias that marks the serving version, and the tags a run is found by.
CHAMPION_ALIAS = "champion"
RUN_KEY_TAG = "inshape.run_key"
POLICY_TAG = "inshape.policy"
OUTCOME_TAG = "inshape.outcome"

# Exit codes of `python -m inshape_jobs update`.
EXIT_RUN_FAILED = 1
EXIT_SPEC_ERROR = 2  # the policy can never work: retrying the Job would not help
