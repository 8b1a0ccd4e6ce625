# CPU image running the same make targets as a developer machine: `docker build -t repdyn .`,
# `docker run --rm repdyn make run` / `docker run --rm repdyn make test`.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make git build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /repdyn
# Dependency layer first (cached while only the code changes).
COPY pyproject.toml README.md Makefile ./
COPY src/repdyn/__init__.py src/repdyn/__init__.py
RUN python -m venv .venv && .venv/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && .venv/bin/pip install -q -e '.[dev]'
COPY conf conf
COPY src src
COPY launch launch
COPY tests tests
COPY .ci .ci
RUN touch .venv/.repdyn-installed
ENV WANDB_MODE=offline
CMD ["make", "run"]
