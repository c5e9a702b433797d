#!/usr/bin/env bash
# Agent footprint (issue 5): the whole agent during an idle run of
# BENCH_IDLE_S seconds (default 60) with 2 s sampling: its peak RSS and CPU
# (from its own getrusage, recorded in the run's finish event), the cost of one
# system sample, and beside them the peak RSS of the wandb SDK's service
# process in an offline run logging the same rows (bench/peers/wandb_peer.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
IDLE=${BENCH_IDLE_S:-60}
work=$(mktemp -d /tmp/metrictap-bench-agent.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
export METRICTAP_DIR="$work/store"
"$root/build/metrictap" run --project bench -- sleep "$IDLE"
finish=$(grep '"event":"finish"' "$METRICTAP_DIR/latest-run/events.jsonl")
rss_kb=$(echo "$finish" | sed 's/.*"agent_max_rss_kb":\([0-9]*\).*/\1/')
cpu_s=$(echo "$finish" | sed 's/.*"agent_cpu_s":\([0-9.]*\).*/\1/')
rows=$(wc -l < "$METRICTAP_DIR/latest-run/system.jsonl")
sample_us=$("$root/build/bench/agent_footprint" --samples 50 | sed -n 's/^sys_sample_cost \([0-9.]*\) us/\1/p')

peer=$("$root/bench/peers/wandb_peer.sh" footprint "$IDLE" "$IDLE" 2>/dev/null | sed -n 's/^wandb_service_peak_rss \([0-9.]*\) MiB/\1/p' || true)
rss_mib=$(echo "scale=2; $rss_kb / 1024" | bc -l)
cpu_pct=$(echo "scale=4; 100 * $cpu_s / $IDLE" | bc -l)
if [ -n "$peer" ]; then
    ratio=$(echo "scale=3; $rss_mib / $peer" | bc -l)
    printf 'ROW\tagent: peak RSS, %ss idle run, 2 s sampling (vs wandb-core)\t%s MiB\t%s MiB\t%s\t<= 8 MiB\n' "$IDLE" "$rss_mib" "$peer" "$ratio"
else
    printf 'ROW\tagent: peak RSS, %ss idle run, 2 s sampling (wandb peer unavailable)\t%s MiB\t-\t-\t<= 8 MiB\n' "$IDLE" "$rss_mib"
fi
printf 'ROW\tagent: CPU over the idle run (%s system rows)\t%s %%core\t-\t-\t<= 0.2 %%core\n' "$rows" "$cpu_pct"
printf 'ROW\tagent: cost of one system sample\t%s us\t-\t-\treport\n' "$sample_us"
