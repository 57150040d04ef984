#!/usr/bin/env bash
# Installs what `make test` needs on a Debian machine: mosquitto, influxd
# (InfluxDB 1.x) and qemu-aarch64-static. As root it installs them with
# apt-get; otherwise it names the exact command to run.
set -euo pipefail
missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mosquitto || missing+=(mosquitto)
have influxd || missing+=(influxdb)
have qemu-aarch64-static || missing+=(qemu-user-static)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "make test needs: ${missing[*]}. Run:" >&2
echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
exit 1
