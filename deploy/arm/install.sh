#!/bin/sh
# Installs edgegw on a Raspberry Pi (or any Linux with systemd) from a binary
# built by `make cross`: ./install.sh dist/edgegw-linux-arm64
set -eu
bin=${1:?usage: install.sh PATH-TO-edgegw-BINARY}
install -m 0755 "$bin" /usr/local/bin/edgegw
id edgegw >/dev/null 2>&1 || useradd --system --home /var/lib/edgegw --shell /usr/sbin/nologin edgegw
install -d -m 0750 -o edgegw -g edgegw /var/lib/edgegw
install -d -m 0755 /etc/edgegw
[ -f /etc/edgegw/edgegw.yaml ] || /usr/local/bin/edgegw config example > /etc/edgegw/edgegw.yaml
/usr/local/bin/edgegw config check -c /etc/edgegw/edgegw.yaml >/dev/null
install -m 0644 "$(dirname "$0")/edgegw.service" /etc/systemd/system/edgegw.service
systemctl daemon-reload
systemctl enable --now edgegw
echo "edgegw installed; edit /etc/edgegw/edgegw.yaml and: systemctl restart edgegw"
