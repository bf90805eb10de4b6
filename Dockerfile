# syntax=docker/dockerfile:1
# One image for the three services; compose.yaml picks the console script with `command:`
# (prevex-ingest, prevex-orientation or prevex-notifier). Configuration comes from the environment only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN groupadd --system --gid 10001 prevex \
    && useradd --system --uid 10001 --gid prevex --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin prevex

WORKDIR /app

COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY services/ services/
COPY deploy/ deploy/

RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

# Numeric so that orchestrators enforcing runAsNonRoot can check it.
USER 10001:10001

# No default service: compose.yaml (or `docker run IMAGE prevex-...`) names the console script to run.
CMD ["python", "-c", "import sys; sys.exit('usage: run prevex-ingest, prevex-orientation or prevex-notifier')"]
