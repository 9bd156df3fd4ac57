# One image for the operator (`python -m inshape_operator`), the update Jobs
# (`python -m inshape_jobs update|produce`), the MLflow tracking server and model serving
# (`mlflow server`, `mlflow models serve --env-manager local`). Every container of the chart
# names its command, so this image's CMD is only a default.
#
#   docker build -t inshape:0.1.0 .
#
# Needs BuildKit (Docker's default builder since 23.0; DOCKER_BUILDKIT=1 before that). Where
# PyPI is reached only through a custom CA, give the build that bundle as a secret: it is
# mounted for the pip steps alone and lands in no layer.
#
#   docker build --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt -t inshape:0.1.0 .
#
# Every dependency installs from a wheel (--only-binary), so the build needs no compiler and
# no apt; PYTHON_IMAGE may be any Debian bookworm image with python3.11 and its venv module.
# The compiled record decoder (jobs/native) is the one exception: hack builds its wheel on the
# host into .build/native/ (`make images` does), and it is installed when it is there and fits
# this image's glibc; otherwise the Job parses with msgspec, the same records, slower.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- deps: a venv with every dependency, from pyproject.toml alone --------------------------
# Its own stage and layer, so a source change reuses it (and the runtime's copy of it).
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
      > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# --- wheel: the product wheel (inshape_jobs, inshape_operator) -----------------------------
FROM deps AS wheel
COPY README.md ./
COPY api/ api/
COPY jobs/ jobs/
COPY operator/ operator/
# Holds a README at least (committed), so this COPY never lacks a source.
COPY .build/native/ /native/
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels .

# --- runtime: the venv and the wheel on the same Python, non-root --------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
COPY --from=deps /opt/venv /opt/venv
# /tmp (HOME) is a tmpfs for this step: what the check writes there (matplotlib's config, as
# root) stays out of the image, and so does the wheel.
RUN --mount=type=tmpfs,target=/tmp --mount=type=bind,from=wheel,source=/wheels,target=/tmp/wheels \
    --mount=type=bind,from=wheel,source=/native,target=/tmp/native \
    pip install --no-deps --no-index --no-cache-dir /tmp/wheels/*.whl \
 && for w in /tmp/native/*.whl; do [ -f "$w" ] || continue; \
      pip install --no-deps --no-index --no-cache-dir "$w" \
      || echo "The compiled decoder $w does not fit this image: the Job parses with msgspec"; \
    done \
 && pip check \
 && python -c "import inshape_operator.handlers, inshape_jobs.update, mlflow.pyfunc"
# 65532: the conventional "nonroot" UID, with a passwd entry (Kopf, like getpass, asks for
# the user's name); the chart runs with readOnlyRootFilesystem and an
# emptyDir at /tmp.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin nonroot
USER 65532:65532
WORKDIR /tmp
CMD ["python", "-m", "inshape_operator"]
