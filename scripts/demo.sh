#!/bin/sh
# `make demo`: the main jobs on the real data in ../shared (LEANPROP_SHARED).
#  1. TokenTune: fine-tune the pretrained stories260K on Moby-Dick, full
#     fine-tuning against LoRA / QLoRA with 25% of tokens selected.
#  2. ForwardGNN: GCN on Cora, backprop against the single-forward method,
#     4 layers, 5 runs each: accuracy and peak activation memory side by side.
set -e
build=${1:-build}
lp="$build/leanprop"
shared=${LEANPROP_SHARED:-../shared}
"$lp" info | head -4
echo
sh scripts/demo_finetune.sh "$build"
echo
cora="$shared/data/graphs/cora.npz"
if [ ! -f "$cora" ]; then
    echo "demo: $cora not found (set LEANPROP_SHARED); GNN part skipped"
    exit 0
fi
out=$(mktemp -d /tmp/leanprop_demo_gnn.XXXXXX)
echo "== ForwardGNN on Cora: GCN, 4 layers, hidden 128, 5 runs of 64/16/20 splits"
for method in bp sf; do
    echo "-- $lp gnn --dataset $cora --model gcn --layers 4 --method $method --runs 5 --out $out/$method.json"
    "$lp" gnn --dataset "$cora" --model gcn --layers 4 --method $method --runs 5 --out "$out/$method.json" \
        > "$out/$method.txt" 2>&1 || { cat "$out/$method.txt"; exit 1; }
    grep -E '^(run|summary)' "$out/$method.txt" | sed 's/^/   /'
done
echo
echo "| method | test accuracy (mean ± std, 5 runs) | peak saved activations | peak total | wall time |"
echo "|---|---|---|---|---|"
for method in bp sf; do
    acc=$(sed -n 's/^summary .*test acc \([0-9.]* ± [0-9.]*\) %.*/\1 %/p' "$out/$method.txt")
    act=$(sed -n 's/^memory .*activations \([0-9.]* [KMG]*i*B\).*/\1/p' "$out/$method.txt")
    tot=$(sed -n 's/^memory .*total \([0-9.]* [KMG]*i*B\).*/\1/p' "$out/$method.txt")
    secs=$(awk '/^run /{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/ && $(i+1) == "s") s += $i } END { printf "%.1f s", s }' "$out/$method.txt")
    echo "| $method | $acc | $act | $tot | $secs |"
done
echo
echo "(bp: backpropagation through all 4 layers keeps every layer's output; sf: each layer learns"
echo " alone with virtual class nodes, so only the layer being trained holds activations.)"
