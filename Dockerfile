# pushwire container image: the static binary on an empty base, running as an unprivileged
# user. Nothing is pulled from a registry: `make image` builds the binary on the host
# (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'), stages it with the host's CA bundle in
# bin/image/, then builds this file with podman or docker:
#
#   make image                       # IMAGE=pushwire:local by default
#   podman run --rm --network host --ulimit nofile=20000:20000 pushwire:local
#   docker run --rm -p 6001:6001 -p 9601:9601 pushwire:local
#
# The default command binds 0.0.0.0 (the binary's own default, 127.0.0.1, is unreachable from
# outside a container). Arguments given to `run` replace it, so pass --host=0.0.0.0 and
# --metrics-host=0.0.0.0 again, or set host/metrics_host in the file given with --config
# (see docker-compose.yml and deploy/pushwire.yaml; mount it readable by uid 65532).
#
# Health: the image has no shell and no curl, so it declares no HEALTHCHECK. Probe over
# HTTP instead: GET /up on port 6001 (process alive: liveness) and GET /ready (503 DRAINING
# once SIGTERM arrived: readiness), e.g. Kubernetes httpGet probes. On SIGTERM pushwire
# needs drain_delay + shutdown_timeout to exit; give it a longer stop grace period
# (docker stop -t, stop_grace_period, terminationGracePeriodSeconds).
FROM scratch
COPY bin/image/pushwire /pushwire
# CA certificates for https:// webhooks (the host's bundle, staged by make image).
COPY bin/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Numeric (distroless's "nonroot", 65532), so runAsNonRoot checks can verify it.
USER 65532:65532
# 6001: WebSocket /app/{key}, REST /apps/{id}/..., /up, /ready. 9601: Prometheus /metrics.
EXPOSE 6001 9601
ENTRYPOINT ["/pushwire"]
CMD ["--host=0.0.0.0", "--metrics-host=0.0.0.0"]
