#!/bin/sh
# `make demo` part: fine-tune the pretrained stories260K (TinyStories) on
# Moby-Dick, text it never saw: full fine-tuning against LoRA and QLoRA with
# TokenTune (25% of the tokens get gradients), then a table of validation loss
# on the book's held-out tail, tokens/s and the allocator's peak memory by
# category. About a minute on 1 thread.
#   sh scripts/demo_finetune.sh [BUILD]      (LEANPROP_SHARED: the shared data folder)
set -e
build=${1:-build}
lp="$build/leanprop"
shared=${LEANPROP_SHARED:-../shared}
model="$shared/data/models/stories260K/stories260K.bin"
tok="$shared/data/models/stories260K/tok512.bin"
text="$shared/data/text/moby_dick.txt"
for f in "$model" "$tok" "$text"; do
    [ -f "$f" ] || { echo "demo_finetune: $f not found (set LEANPROP_SHARED); skipped"; exit 0; }
done
out=${LEANPROP_DEMO_OUT:-$(mktemp -d /tmp/leanprop_demo_ft.XXXXXX)}
steps=${LEANPROP_DEMO_STEPS:-120}
targets=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
common="--model $model --tokenizer $tok --data $text --steps $steps --batch 8 --seq 128 --warmup 10 --eval-every 0 --threads 1 --quiet"
echo "== fine-tuning stories260K on Moby-Dick ($steps steps of 8 x 128 tokens; validation: the book's last 10%)"
run() { # name, flags...
    name=$1; shift
    echo "-- $name: $lp finetune ... $*"
    "$lp" finetune $common "$@" --out "$out/$name" > "$out/$name.txt" 2>&1 || { cat "$out/$name.txt"; exit 1; }
    grep -E '^(before|after|training):' "$out/$name.txt" | sed 's/^/   /'
}
run full            --method full --tokens all --lr 2e-3
run lora_tt25       --method lora --lora-targets $targets --tokens 25% --lr 1e-2
run qlora_tt25      --method qlora --lora-targets $targets --tokens 25% --lr 1e-2
echo
echo "| run | val loss before | val loss after | tokens/s | weights | gradients | optimizer | activations | scratch | data | total |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for name in full lora_tt25 qlora_tt25; do
    grep '^summary ' "$out/$name.txt" | awk -v name="$name" '
        function mib(b) { return sprintf("%.2f MiB", b / 1048576) }
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        END { printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", name, v["val_before"], v["val_after"],
              v["tok_s"], mib(v["weights"]), mib(v["gradients"]), mib(v["optimizer"]), mib(v["activations"]),
              mib(v["scratch"]), mib(v["data"]), mib(v["total"]) }'
done
echo
echo "(memory: the accounting allocator's exact peak per category over the training steps; total = peak of the sum."
echo " data = the tokenised book. TokenTune 25%: every token is computed, a quarter save activations and get gradients."
echo " At equal steps TokenTune trains on a quarter of the tokens: at equal tokens with gradients it matches the"
echo " all-token loss (docs/FINETUNE.md). Runs, logs, adapters: $out)"
