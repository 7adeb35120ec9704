#!/usr/bin/env bash
# Builds the container image (Dockerfile) from the static binary: `make image`.
#   IMAGE   tag to build (default pushwire:local)
#   ENGINE  podman or docker (default: the first of them that can build here: podman, then
#           a docker whose engine answers)
# Builds bin/image/pushwire (CGO_ENABLED=0, -trimpath, -ldflags='-s -w'), stages the host's CA
# bundle beside it, builds FROM scratch (no registry pull) and prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${IMAGE:-pushwire:local}"
engine="${ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v podman >/dev/null 2>&1; then
    engine=podman
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
  else
    echo "make image: neither podman nor a docker with a running engine is available (make deps installs podman as root on Debian)" >&2
    exit 1
  fi
fi
mkdir -p bin/image
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/image/pushwire ./cmd/pushwire
ca=""
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
  if [ -s "$f" ]; then ca="$f"; break; fi
done
if [ -n "$ca" ]; then
  cp "$ca" bin/image/ca-certificates.crt
else
  echo "make image: no CA bundle found on this host: https:// webhooks will fail in the image" >&2
  : > bin/image/ca-certificates.crt
fi
"$engine" build --quiet -t "$image" -f Dockerfile . >/dev/null
size=$("$engine" image inspect --format '{{.Size}}' "$image")
echo "built $image with $engine: $size bytes ($((size / 1024 / 1024)) MiB)"
