#!/bin/bash
# Where a scenario's extra instructions go: callgrind's exclusive cost per function, per
# request, of scenario B minus scenario A (same binary), largest first. E.g.
#   benches/instr-diff.sh target/release/instr tower_governor rl_gcra_no_headers
# (env: N requests (300), TOP rows (40)). Profiles are left in /tmp/instr-cg.<scenario>
# for callgrind_annotate (--inclusive=yes, --tree=caller).
set -euo pipefail
BIN=$1 A=$2 B=$3 N=${N:-300}
for sc in "$A" "$B"; do
  valgrind --tool=callgrind --callgrind-out-file="/tmp/instr-cg.$sc" --collect-atstart=no \
    '--toggle-collect=*kv_measured_loop*' "$BIN" "$sc" "$N" >/dev/null 2>&1
  callgrind_annotate --auto=no --threshold=100 --show-percs=no "/tmp/instr-cg.$sc" 2>/dev/null \
    | awk -v n="$N" '/^ *[0-9,]+  / { ir = $1; gsub(",", "", ir); $1 = ""; sub(/^ +/, ""); sub(/ \[.*\]$/, ""); print int(ir / n) "\t" $0 }' \
    >"/tmp/instr-cg.$sc.txt"
done
awk -F'\t' 'NR == FNR { a[$2] = $1; next } { b[$2] = $1 }
  END { for (k in b) { d = b[k] - a[k]; if (d != 0) print d "\t" k } for (k in a) if (!(k in b)) print -a[k] "\t" k }' \
  "/tmp/instr-cg.$A.txt" "/tmp/instr-cg.$B.txt" | sort -rn | head -"${TOP:-40}" | cut -c1-200
