# syntax=docker/dockerfile:1
# One image for the operator (`python -m inshape_operator`), the update Jobs
# (`python -m inshape_jobs update`), the MLflow tracking server and model serving
# (`mlflow server`, `mlflow models serve --env-manager local`). Every container of the chart
# names its command, so this image's CMD is only a default.
#
#   docker build -t inshape:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: compile wheels and install them into a venv ------------------------------------
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jobs/ jobs/
COPY operator/ operator/
COPY hack/inshape_hack/ hack/inshape_hack/
RUN /opt/venv/bin/pip wheel --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-index --find-links /wheels /wheels/*.whl \
 && /opt/venv/bin/python -c "import inshape_operator.handlers, inshape_jobs.update, mlflow.pyfunc"

# --- runtime: the venv on a slim Python, no compilers, non-root ----------------------------
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# 65532: the conventional "nonroot" UID; the chart runs with readOnlyRootFilesystem and an
# emptyDir at /tmp.
USER 65532:65532
WORKDIR /tmp
CMD ["python", "-m", "inshape_operator"]
