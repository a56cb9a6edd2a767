# Voicex server image: slim Python, non-root, health-checked.
#   docker build -t voicex .                                        the server (vendor providers)
#   docker build --build-arg VOICEX_EXTRAS=local -t voicex:local .  plus the embedded offline models (`voicex demo`)
# The entrypoint is the `voicex` command: `docker run voicex:local demo`, `docker compose run --rm voicex admin create`.
# Not built on the development machines (no Docker engine there); keep it simple and obviously right.
FROM python:3.11-slim

ARG VOICEX_EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VOICEX_HOST=0.0.0.0 \
    VOICEX_PORT=3001 \
    VOICEX_DATA_DIR=/data \
    VOICEX_CONFIG_DIR=/app/config

WORKDIR /app

# espeak-ng: the emergency voice every call falls back to (and the demo caller's voice). A compiler only while
# the `local` extra builds llama-cpp-python from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && if [ -n "$VOICEX_EXTRAS" ]; then apt-get install -y --no-install-recommends build-essential cmake; fi \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so code changes don't reinstall them: exact versions from the lock file, every download
# checked against its SHA-256 (scripts/lock.sh writes them; requirements/local.lock for VOICEX_EXTRAS=local).
COPY requirements ./requirements
RUN pip install --require-hashes -r "requirements/${VOICEX_EXTRAS:-server}.lock" \
    && if [ -n "$VOICEX_EXTRAS" ]; then apt-get purge -y --auto-remove build-essential cmake; fi

COPY pyproject.toml README.md ./
COPY config ./config
COPY voicex ./voicex
COPY pipelines ./pipelines
COPY providers ./providers
# The simulated Twilio caller, for `voicex demo` (found in the working directory).
COPY scripts/__init__.py scripts/__init__.py
COPY scripts/twilio_sim ./scripts/twilio_sim
# Voicex itself, its dependencies already in place (none is fetched here).
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin voicex \
    && mkdir -p /data && chown voicex /data

USER 10001
VOLUME ["/data"]
EXPOSE 3001

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('VOICEX_PORT', '3001'), timeout=2)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["voicex"]
CMD ["serve"]
