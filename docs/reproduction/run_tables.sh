#!/bin/bash
cd "$(dirname "$0")/../.."
for t in 1 2 3 4 5 6 7; do
  start=$(date +%s)
  # Table 1 is computed in closed form and has no per-replication CSV.
  csv=()
  if [ "$t" != 1 ]; then csv=(--csv "docs/reproduction/table$t.csv"); fi
  target/debug/rose experiment --table $t "${csv[@]}" > docs/reproduction/table$t.md 2> docs/reproduction/table$t.log
  end=$(date +%s)
  echo "table $t: $((end-start)) s" >> docs/reproduction/timings.txt
done
echo done >> docs/reproduction/timings.txt
