#!/usr/bin/env bash
# Runs dnsperf for a bounded time against CoreDNS serving the demo
# manifests on a loopback port. Usage: run.sh PATH-TO-COREDNS [SECONDS]
set -euo pipefail
bin=$1
secs=${2:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
port=15353
conf=$(mktemp)
trap 'kill $pid 2>/dev/null; rm -f "$conf"' EXIT
cat > "$conf" <<CONF
cluster.local:$port in-addr.arpa:$port {
    bind 127.0.0.1
    headless {
        manifests $root/corefile/demo
    }
}
CONF
"$bin" -conf "$conf" -quiet &
pid=$!
for _ in $(seq 50); do dig @127.0.0.1 -p $port +time=1 +tries=1 web-0.web.demo.svc.cluster.local >/dev/null 2>&1 && break; sleep 0.1; done
dnsperf -s 127.0.0.1 -p $port -d "$root/test/dnsperf/queries.txt" -l "$secs" -c 4 -Q 200000
