# zulip-bridge container image (docs/deployment.md).
#
#   docker build -t zulip-bridge .
#   docker run --read-only -v zulip-bridge-state:/var/lib/zulip-bridge \
#     -v ./zulip-bridge.yaml:/etc/zulip-bridge/zulip-bridge.yaml:ro \
#     -e ZULIP_API_KEY --stop-timeout 60 zulip-bridge
#
# The runtime image holds the binary, the shared libraries it links and curl (for HEALTHCHECK),
# runs as an unprivileged user, writes only to /var/lib/zulip-bridge (a volume), so it works
# with a read-only root file system.

# ---- build -----------------------------------------------------------------------------------
FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not reinstall them.
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps && rm -rf /var/lib/apt/lists/*
# Only what a build without tests needs (the context may hold developers' build directories).
COPY CMakeLists.txt ./
COPY daemon/ daemon/
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DZB_BUILD_TESTS=OFF \
 && cmake --build build \
 && cmake --install build --prefix /usr --strip

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim
# The libraries zulip-bridge links (ldd on the binary, mapped to Debian 12 packages), the CA
# bundle for TLS to Zulip and Kafka, and curl for the health check.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libcurl4 librdkafka1 libyaml-cpp0.7 libsystemd0 libcpp-httplib0.11 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged UID/GID so that volume ownership and Kubernetes' runAsUser/fsGroup can
# name it.
RUN groupadd --system --gid 10001 zulip-bridge \
 && useradd --system --uid 10001 --gid zulip-bridge --no-create-home \
      --home-dir /var/lib/zulip-bridge --shell /usr/sbin/nologin zulip-bridge \
 && install -d -o zulip-bridge -g zulip-bridge -m 0700 /var/lib/zulip-bridge \
 && install -d -m 0755 /etc/zulip-bridge
COPY --from=build /usr/bin/zulip-bridge /usr/bin/zulip-bridge
COPY config/zulip-bridge.example.yaml /usr/share/doc/zulip-bridge/zulip-bridge.example.yaml
# Smoke step: the binary starts and finds every library.
RUN zulip-bridge --version

USER 10001:10001
# Checkpoints and the dead-letter spool: keep them across container replacements, or the
# bridge starts new Zulip queues and loses what happened in between.
VOLUME ["/var/lib/zulip-bridge"]
# /healthz, /readyz, /metrics. The config's http.listen must be 0.0.0.0:9187 for anything
# outside the container (Kubernetes probes, Prometheus) to reach it; the HEALTHCHECK below
# works with the default 127.0.0.1:9187 too.
EXPOSE 9187
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl --fail --silent --show-error --max-time 4 http://127.0.0.1:9187/healthz >/dev/null || exit 1
# SIGTERM: stop polling, flush to Kafka (kafka.flush_timeout_secs, default 30), save
# checkpoints, exit 0. Give it longer than Docker's default 10 s: `docker stop -t 60`,
# compose's stop_grace_period, Kubernetes' terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/zulip-bridge"]
CMD ["--config", "/etc/zulip-bridge/zulip-bridge.yaml"]
