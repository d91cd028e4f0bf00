#include "cli/commands.h"

#include <stdio.h>

#include "leanprop/status.h"

int cli_fail(const char *what)
{
    fprintf(stderr, "leanprop: %s%s%s\n", what ? what : "", what && *what ? ": " : "", lp_error_message());
    return 1;
}

const cli_command cli_commands[] = {
    {"info", "show version, threads, BLAS and a memory self-check",
     "usage: leanprop info [--threads N]\n"
     "  Prints the version, thread count, OpenBLAS configuration, the measured\n"
     "  sgemm rate of this machine and the accounting allocator's report.\n"
     "  --threads N   threads for OpenMP and OpenBLAS (default: $LEANPROP_THREADS or all CPUs)\n",
     cmd_info},
    {"convert", "convert llama2.c / llm.c / Hugging Face checkpoints to a Hugging Face directory",
     "usage: leanprop convert --model PATH --out DIR [--dtype f32|f16|bf16] [--shard-mb N] [--format hf|llmc]\n"
     "  Loads a model (a Hugging Face directory: config.json + model.safetensors or shards;\n"
     "  an llm.c GPT-2 .bin; a llama2.c .bin) and writes it with Hugging Face names and\n"
     "  layouts, so transformers loads the result unchanged. llama2.c's q/k rows are\n"
     "  permuted to Hugging Face's RoPE layout.\n"
     "  --dtype D      stored dtype of the output (default f32)\n"
     "  --shard-mb N   write shards of at most N MiB plus model.safetensors.index.json (default: one file)\n"
     "  --format F     hf (default) or llmc (GPT-2 only: llm.c's gpt2_124M.bin layout, f32)\n",
     cmd_convert},
    {"generate", "sample text from a causal model (greedy, temperature, top-p) with a KV cache",
     "usage: leanprop generate --model PATH [--prompt TEXT | --ids 1,2,3] [flags]\n"
     "  --tokenizer P   tokenizer.json, GPT-2 directory or llama2.c tokenizer.bin (default: found\n"
     "                  in the model directory, or tokenizer.bin / tok<V>.bin beside a .bin)\n"
     "  --steps N       new tokens at most (default 256)\n"
     "  --temperature T 0 = greedy (default 1.0)\n"
     "  --top-p P       nucleus sampling mass (default 0.9; 1 = off)\n"
     "  --seed S        sampling seed (default 42)\n"
     "  --no-bos        do not put BOS before the prompt (Llama models get one by default)\n"
     "  --no-stop       keep going after EOS (and, for llama2.c models, BOS)\n"
     "  --show-ids      print token ids instead of text\n"
     "  --threads N     threads for OpenMP and OpenBLAS\n",
     cmd_generate},
    {"gnn", "train a graph neural network (GCN, SAGE, GAT) for node classification or link prediction",
     "usage: leanprop gnn --dataset PATH [flags]\n"
     "  Trains and evaluates over several runs, one split per run, and prints a line per run,\n"
     "  the mean and population std, and peak memory per category. Formats: docs/GNN.md.\n"
     "  --dataset P      .npz (gnn-benchmark / PyG CitationFull layout) or NAME.edges.txt\n"
     "                   (with NAME.labels.txt and optional NAME.features.txt beside it)\n"
     "  --model M        gcn | sage | gat (default gcn)\n"
     "  --layers N       conv layers (default 2)      --hidden N   hidden width (default 128)\n"
     "  --heads N        GAT heads (default 4)        --link-dim N link embedding width (default 128)\n"
     "  --method M       training method (default bp)\n"
     "  --task T         node | link (default node)\n"
     "  --runs N         runs (default 5); run i uses split i and seed SEED + 3i\n"
     "  --seed S         init seed of run 0 (default 10100)   --split-seed S  (default 101)\n"
     "  --epochs N       at most N epochs (default 1000)   --patience N  validations (default 100)\n"
     "  --eval-every N   validate every N epochs (default 2)\n"
     "  --lr X           Adam learning rate (default 1e-3)  --weight-decay X  L2 (default 5e-4)\n"
     "  --split-file P   load the splits from P if it exists, else make them and save them there\n"
     "  --out P          results JSON      --log P   per-epoch metrics JSONL\n"
     "  --dense          dense features    --no-normalize  skip NormalizeFeatures\n"
     "  --threads N      threads for OpenMP and OpenBLAS   --quiet  no progress bar\n",
     cmd_gnn},
};
const int cli_n_commands = (int)(sizeof cli_commands / sizeof cli_commands[0]);
