# pushwire container image: a static binary on distroless, running as an unprivileged user.
#
#   docker build -t pushwire .
#   docker run --rm -p 6001:6001 -p 9601:9601 pushwire
#
# The default command binds 0.0.0.0 (the binary's own default, 127.0.0.1, is unreachable from
# outside a container). Arguments given to `docker run` replace it, so pass --host=0.0.0.0 and
# --metrics-host=0.0.0.0 again, or set host/metrics_host in the file given with --config
# (see docker-compose.yml and deploy/pushwire.yaml).
#
# Health: the image has no shell and no curl, so it declares no HEALTHCHECK. Probe over
# HTTP instead: GET /up on port 6001 (process alive: liveness) and GET /ready (503 DRAINING
# once SIGTERM arrived: readiness), e.g. Kubernetes httpGet probes. On SIGTERM pushwire
# needs drain_delay + shutdown_timeout to exit; give it a longer stop grace period
# (docker stop -t, stop_grace_period, terminationGracePeriodSeconds).

# The Go version must be at least the go line of go.mod (official images use GOTOOLCHAIN=local).
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so editing the source does not download them again.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/pushwire ./cmd/pushwire

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pushwire /pushwire
# distroless "nonroot" (65532), numeric so that runAsNonRoot checks can verify it.
USER 65532:65532
# 6001: WebSocket /app/{key}, REST /apps/{id}/..., /up, /ready. 9601: Prometheus /metrics.
EXPOSE 6001 9601
ENTRYPOINT ["/pushwire"]
CMD ["--host=0.0.0.0", "--metrics-host=0.0.0.0"]
