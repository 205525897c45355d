#!/usr/bin/env bash
# Times the two README commands on a fresh clone of this repository (install included):
#   bash bench/fresh_clone.sh [demo|test|both]
# Writes bench/results/fresh_clone.json with the wall times, the machine and its load.
set -euo pipefail
what=${1:-both}
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
git clone -q "$repo" "$dir/refeed"
cd "$dir/refeed"
declare -A secs
for target in demo test; do
  [[ $what == both || $what == "$target" ]] || continue
  start=$(date +%s.%N)
  make "$target" > "$dir/$target.log" 2>&1 || { tail -40 "$dir/$target.log"; echo "make $target failed (log: $dir/$target.log)"; exit 1; }
  secs[$target]=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
  tail -3 "$dir/$target.log"
done
mkdir -p "$repo/bench/results"
python3 - "$repo/bench/results/fresh_clone.json" "${secs[demo]:-null}" "${secs[test]:-null}" <<'PY'
import json, os, platform, sys
out, demo, test = sys.argv[1], sys.argv[2], sys.argv[3]
# Keep the other target's figure from an earlier run when only one target is timed now.
res = json.load(open(out)) if os.path.exists(out) else {}
machine = f"{platform.machine()} {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
for target, secs in (("demo", demo), ("test", test)):
    if secs != "null":
        res[f"make_{target}_seconds"] = float(secs)
        res[f"make_{target}_load_average_1m_at_end"] = os.getloadavg()[0]
res["machine"] = machine
res.pop("load_average_1m_at_end", None)
print(json.dumps(res))
open(out, "w").write(json.dumps(res, indent=2) + "\n")
PY
