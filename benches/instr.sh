#!/bin/bash
# Instructions per request (callgrind), only the measured loop counted: deterministic on a
# noisy machine. Build: cargo build --profile bench -p kv-benches --bin instr (in both trees).
# Run:   BASE_BIN=../other/target/release/instr N=400 benches/instr.sh bare rl_gcra ...
# (`target/release/instr list` names the scenarios; .ci/instr-check compares one build
# with benches/instr-baseline.txt.)
N=${N:-400}
for sc in "$@"; do
  for side in base new; do
    if [ $side = base ]; then bin=${BASE_BIN:?set BASE_BIN to the instr binary of the tree to compare with}; else bin=${NEW_BIN:-target/release/instr}; fi
    ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no '--toggle-collect=*kv_measured_loop*' $bin $sc $N 2>&1 | grep -oP 'Collected : \K[0-9]+')
    echo "$sc $side $(( ir / N ))"
  done
done
