# givtcp-async container image.
#
#   docker build -t givtcp-async .
#   docker run -d --name givtcp-async -p 6345:6345 -v givtcp-data:/data \
#       -e INVERTOR_IP=192.168.1.20 -e MQTT_ADDRESS=192.168.1.2 givtcp-async
#
# Configured by the same environment variables as everywhere else (GIVTCP_* and GivTCP's own,
# see docs/configuration.md), or a config file at /data/givtcp-async.toml or /etc/givtcp-async/config.toml.

ARG PYTHON_VERSION=3.11

# --- build: the wheels of givtcp-async and of everything it needs ----------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime ---------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm

# mosquitto serves the internal broker (mqtt.internal_broker); tzdata the local time zone.
# Debian's stable packages are used as the release ships them, so no versions are pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends mosquitto tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 givtcp \
    && useradd --system --uid 10001 --gid givtcp --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin givtcp \
    && install -d -o givtcp -g givtcp -m 0750 /data

COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links=/tmp/wheels /tmp/wheels/givtcp_async-*.whl \
    && rm -rf /tmp/wheels

# The slim base image ships its standard library without bytecode (it deletes every .pyc), and
# the daemon runs as a user that may not write there: without this step every start compiles
# each standard module it imports, in memory (+3.5 MiB RSS, +0.45 s to import the daemon;
# `python -m bench.bench_memory --without-stdlib-bytecode`). pip compiled what it installed.
RUN python -m compileall -q -j 0 \
        -x '/(test|tests|idle_test|idlelib|tkinter|turtledemo|lib2to3|ensurepip|pydoc_data|site-packages)/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"

# REST listens on every interface of the container (publish the port to choose who reaches
# it); write counters, override state and the internal broker's data live in /data.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GIVTCP_REST__HOST=0.0.0.0 \
    GIVTCP_CONTROL__STATE_DIR=/data

WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 6345 1883

# Healthy while the daemon answers /health (200: the loop runs and an inverter answered lately).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('GIVTCP_REST__PORT', '6345'), timeout=4)"]

ENTRYPOINT ["givtcp-async"]
CMD ["run"]
