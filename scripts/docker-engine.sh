#!/usr/bin/env bash
# Installs what the Docker tests need: Debian's Docker engine, a static busybox for the test image,
# iptables (dockerd refuses to start without the binary) and a registry for the pull tests.
# The tests start and stop their own dockerd (tests/docker/conftest.py); this script only installs.
# Without root the install is skipped with a notice (the Docker tests then skip themselves), unless
# MCP_LEDGER_REQUIRE_DOCKER=1, when a missing engine is an error.
set -euo pipefail

PACKAGES=(docker.io busybox-static iptables docker-registry)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    message="docker-engine.sh: missing ${missing[*]} and cannot install them (needs root and apt-get)"
    if [ "${MCP_LEDGER_REQUIRE_DOCKER:-}" = "1" ]; then
        echo "$message; MCP_LEDGER_REQUIRE_DOCKER=1, so this is an error" >&2
        exit 1
    fi
    echo "$message; the Docker tests will be skipped" >&2
    exit 0
fi

echo "docker-engine.sh: installing ${missing[*]}" >&2
apt-get update -qq
# policy-rc.d 101: packages must not start their services (the tests run their own daemons).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
if [ "$created_policy" = 1 ]; then
    rm -f "$policy"
fi
exit "$status"
