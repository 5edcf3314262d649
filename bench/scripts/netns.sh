#!/usr/bin/env bash
# Round trip and 64 MiB bandwidth between two "hosts": two network
# namespaces joined by a veth pair (198.18.0.1 and .2, the benchmarking
# range; nothing leaves the pair), one locality in each, over QUIC and over
# TLS/TCP, beside a raw tokio TCP ping-pong (in action_latency) and iperf3
# (if installed) between the same namespaces in the same run.
#
#   cargo build --release -p hpx-bench --bins && bash bench/scripts/netns.sh
#
# Needs root (ip netns). A benchmark, not a test: nothing runs it in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release
a=hpxbenchA-$$ b=hpxbenchB-$$
shm_a=$(mktemp -d /dev/shm/hpx-bench-a.XXXXXX) shm_b=$(mktemp -d /dev/shm/hpx-bench-b.XXXXXX)
cleanup() {
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$shm_a" "$shm_b"
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add "va$$" type veth peer name "vb$$"
ip link set "va$$" netns "$a"
ip link set "vb$$" netns "$b"
ip -n "$a" addr add 198.18.0.1/24 dev "va$$"
ip -n "$b" addr add 198.18.0.2/24 dev "vb$$"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "va$$" up
ip -n "$b" link set "vb$$" up

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Runs `program` as localities 0 (in A) and 1 (in B) over `parcelport`.
pair() {
    local program=$1 parcelport=$2 port=$((20000 + RANDOM % 20000))
    # Both "hosts" share this machine's cores: say so (one worker each, no
    # network thread), as hpxrun says it for localities of one host.
    local common=(HPX_NUM_LOCALITIES=2 HPX_AGAS=198.18.0.1:$port HPX_SECRET=$secret
        HPX_PARCELPORT=$parcelport HPX_LOCALITIES_ON_HOST=2)
    ip netns exec "$b" env "${common[@]}" HPX_LOCALITY=1 HPX_HOST=198.18.0.2 \
        HPX_SHM="$shm_b" "$bin/$program" >/dev/null &
    local other=$!
    ip netns exec "$a" env "${common[@]}" HPX_LOCALITY=0 HPX_HOST=198.18.0.1 \
        HPX_SHM="$shm_a" timeout 300 "$bin/$program"
    wait "$other"
}

for parcelport in quic tcp; do
    echo "== $parcelport between the namespaces: action_latency"
    pair action_latency "$parcelport" | grep -E "round trip|measure|---"
    echo "== $parcelport between the namespaces: array_ops (to_vec of 64 MiB)"
    pair array_ops "$parcelport" | grep -E "to_vec|measure|---"
done
if command -v iperf3 >/dev/null; then
    echo "== iperf3 between the namespaces (raw TCP, 3 s)"
    ip netns exec "$b" iperf3 -s -1 -B 198.18.0.2 >/dev/null &
    server=$!
    sleep 0.5
    ip netns exec "$a" iperf3 -c 198.18.0.2 -t 3 | grep -E "sender|receiver"
    wait "$server"
else
    echo "== iperf3 not installed (apt-get install iperf3): no raw TCP bandwidth baseline"
fi
