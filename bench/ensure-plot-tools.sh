#!/usr/bin/env bash
# Makes sure bench/report.py can draw its chart: Debian's python3-matplotlib for /usr/bin/python3
# (not pip: the machine reaches Debian's mirror, not PyPI). Installs it when run as root; otherwise
# says what to install and exits 1 (report.py then writes the tables without the chart).
set -euo pipefail

if /usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "ensure-plot-tools.sh: matplotlib is missing; install it with: sudo apt-get install -y python3-matplotlib" >&2
    exit 1
fi
echo "ensure-plot-tools.sh: installing python3-matplotlib" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null
/usr/bin/python3 -c 'import matplotlib'
