#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package when
# either is missing: the end-to-end tests scrape the plugin with a real
# Prometheus and check the shipped rules with promtool. Safe to run any time;
# it installs nothing when both are there.
#
# The tests start their own Prometheus on a free port in a temporary
# directory, so the package's own service is neither wanted nor left running:
# it is kept from starting during the install, and disabled where systemd
# would start it at boot.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install-prometheus.sh: prometheus/promtool are missing; run as root or install them: apt-get install prometheus" >&2
    exit 1
  }
  SUDO=(sudo)
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "install-prometheus.sh: no apt-get here; install Prometheus (prometheus and promtool on PATH) by other means" >&2
  exit 1
}

echo "==> Installing Prometheus from Debian (apt-get install prometheus)" >&2

# invoke-rc.d (and deb-systemd-invoke) ask policy-rc.d whether a package may
# start its service; exit 101 says no. Only a policy we created is removed.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# written by install-prometheus.sh for the duration of one install\nexit 101\n' |
    "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  trap '"${SUDO[@]}" rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >&2
# No recommends: prometheus-node-exporter would be one more service.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >&2

if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  "${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi

command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || {
  echo "install-prometheus.sh: the package installed, but prometheus/promtool are not on PATH" >&2
  exit 1
}
echo "==> $(prometheus --version 2>&1 | head -1)" >&2
