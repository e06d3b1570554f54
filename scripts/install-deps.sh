#!/usr/bin/env bash
# Installs the system libraries Ferry links against, only when missing.
set -euo pipefail
need=()
# chromium: the console's page tests and the agent's entry page test.
# postgresql: the tests start a throwaway server of their own (scripts/pg-test.sh).
# iproute2, nftables and python3 are for the link lab (scripts/linklab.sh, run by `make test` as root).
# faketime jumps the clock in the soak test.
# `make package`/`check-package`: binutils (strip), dpkg-dev is not needed
# (dpkg-deb is in dpkg), systemd (systemd-analyze verify), adduser (postinst).
for pkg in libsodium-dev libsqlite3-dev libzstd-dev zlib1g-dev pkg-config chromium postgresql iproute2 nftables python3 faketime \
    binutils systemd adduser; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
