#!/bin/sh
# Summarise the logs of the last `make fuzz` (build-fuzz/<harness>.log) as a Markdown table:
# harness, seconds, executions, coverage (edges), corpus size, result. Usage: sh fuzz/summary.sh
dir=${1:-build-fuzz}
echo "| harness | seconds | executions | exec/s | coverage (edges) | corpus | result |"
echo "|---|---:|---:|---:|---:|---:|---|"
for log in "$dir"/*.log; do
    [ -f "$log" ] || continue
    name=$(basename "$log" .log)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
    corp=$(grep -o 'corp: [0-9]*/[0-9A-Za-z]*' "$log" | tail -1 | sed 's/corp: //')
    bug=$(grep -m1 -E '^SUMMARY: |ERROR: libFuzzer|^lpfuzz: ' "$log" | sed 's/|/\\|/g')
    if [ -n "$bug" ]; then result="**finding**: $bug"; [ -z "$secs" ] && secs="(stopped)"; else result="clean"; fi
    echo "| $name | ${secs:-?} | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${corp:-?} | $result |"
done
