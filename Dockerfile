# gridwatch service image (used by docker-compose.yml).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Numba's on-disk cache must be writable by the unprivileged user (site-packages is not).
    NUMBA_CACHE_DIR=/var/cache/gridwatch/numba

WORKDIR /app
# Dependencies first (cached layer), at the versions the test suite ran with.
COPY pyproject.toml constraints.txt README.md ./
COPY gridwatch ./gridwatch
COPY ingest ./ingest
COPY detectors ./detectors
COPY notifier ./notifier
COPY simulators ./simulators
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app gridwatch \
    && mkdir -p /var/cache/gridwatch/numba \
    && chown -R gridwatch /var/cache/gridwatch

USER gridwatch
EXPOSE 8080
# The compose file overrides this with its own healthcheck and command; these are the
# defaults for `docker run`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=3).status == 200 else 1)"]
CMD ["sh", "-c", "gridwatch migrate && exec gridwatch serve"]
