# entra-dg-exporter image: `docker compose build`, or `docker build -t entra-dg-exporter .`
# The same image runs the exporter (`serve`), the simulator (`simulate`) and the operations
# commands (`check-resume`, `pause`, `resume`, `plan`, `lint-rules`).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# exporter/http/runbook.md links to the runbook, which the exporter serves at /runbook.
COPY alerts/runbook.md ./alerts/runbook.md
# The source revision `--version` and build_info report: there is no .git in the build context,
# so pass it: docker build --build-arg REVISION=$(git rev-parse HEAD) .
ARG REVISION=unknown
RUN printf '%s\n' "$REVISION" > exporter/REVISION \
    && python -m venv /opt/entra-dg \
    && /opt/entra-dg/bin/pip install . \
    && /opt/entra-dg/bin/entra-dg-exporter --version

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/entra-dg --create-home \
        --shell /usr/sbin/nologin entra-dg
COPY --from=build /opt/entra-dg /opt/entra-dg
ENV PATH=/opt/entra-dg/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The SQLite state (store.path) lives here; mount a volume to keep it across restarts.
WORKDIR /var/lib/entra-dg
USER 10001:10001
EXPOSE 9717
# The slim image has no curl: ask /healthz with the standard library. /healthz needs no
# credentials even with basic auth on (exporter/http/app.py), so this works behind auth too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9717/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["entra-dg-exporter"]
CMD ["serve", "--web.listen-address=0.0.0.0:9717"]
