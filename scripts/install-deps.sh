#!/usr/bin/env bash
# Installs the system libraries Ferry links against, only when missing.
set -euo pipefail
need=()
# chromium renders the agent's entry page in its test; faketime jumps the clock in the soak test.
for pkg in libsodium-dev libsqlite3-dev libzstd-dev zlib1g-dev pkg-config chromium faketime; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
