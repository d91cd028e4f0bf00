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
     "usage: leanprop convert --model PATH --out DIR [--dtype f32|f16|bf16] [--shard-mb N] [--format hf|llmc] [--merge DIR]\n"
     "  Loads a model (a Hugging Face directory: config.json + model.safetensors or shards;\n"
     "  an llm.c GPT-2 .bin; a llama2.c .bin) and writes it with Hugging Face names and\n"
     "  layouts, so transformers loads the result unchanged. llama2.c's q/k rows are\n"
     "  permuted to Hugging Face's RoPE layout.\n"
     "  --dtype D      stored dtype of the output (default f32)\n"
     "  --shard-mb N   write shards of at most N MiB plus model.safetensors.index.json (default: one file)\n"
     "  --format F     hf (default) or llmc (GPT-2 only: llm.c's gpt2_124M.bin layout, f32)\n"
     "  --merge DIR    merge the PEFT LoRA adapter in DIR (adapter_config.json +\n"
     "                 adapter_model.safetensors) into the base weights before writing\n"
     "  --merge-method lora (default) | qlora: qlora merges into the NF4-quantised base\n"
     "                 (dequantised to f32: the result computes what the QLoRA model computed)\n",
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
    {"memplan", "predict peak memory per category of a fine-tuning step from a config, without running it",
     "usage: leanprop memplan --model DIR|config.json [flags]\n"
     "  Reads only the config (no weights) and prints the exact bytes one training step (forward,\n"
     "  backward, optimizer update) holds per category at its peak: weights (NF4 for QLoRA),\n"
     "  gradients, optimizer state, saved activations, scratch, data (one batch) and the total.\n"
     "  Formulas: docs/FINETUNE_MODEL.md.\n"
     "  --method M        full | lora (default) | qlora       --full-only S  full: train names containing S\n"
     "  --lora-r N        rank (default 8)   --lora-alpha A (default 16)   --lora-dropout P (default 0.05)\n"
     "  --lora-targets L  e.g. q_proj,v_proj or all-linear (default: PEFT's for the model type)\n"
     "  --tokens S        TokenTune: all (default), K per sequence, or a fraction 0.3 / 30%\n"
     "  --batch B         sequences (default 8)   --seq T   tokens per sequence (default 256)\n"
     "  --optimizer O     adamw (default) | adam | sgd (momentum) | sgd0 | none\n"
     "  --task lm|cls     cls: a decoder gets a \"score\" head (--num-labels N, default 2)\n"
     "  --no-double-quant QLoRA absmax in fp32     --threads N   (attention scratch is per thread)\n"
     "  --json            one JSON object instead of the table\n",
     cmd_memplan},
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
     "  --out P          results JSON      --log P   per-epoch metrics JSONL (appended on --resume)\n"
     "  --checkpoint P   crash-safe checkpoint of the whole job (temp file, fsync, rename, CRC-32),\n"
     "                   saved every --checkpoint-every N epochs (default 50) and after each run\n"
     "  --resume P       continue the job saved in P exactly (same losses; the saved thread count\n"
     "                   unless --threads); keeps saving to P unless --checkpoint is given\n"
     "  --on-nonfinite stop|skip  NaN/Inf in output, loss or a gradient: stop (default) naming run,\n"
     "                   epoch and tensor, or skip that epoch's update (bp)\n"
     "  --dense          dense features    --no-normalize  skip NormalizeFeatures\n"
     "  --max-memory SIZE  budget for all accounted memory (e.g. 64M): a run that would pass it\n"
     "                   stops cleanly, naming the category and size of the refused allocation\n"
     "  --threads N      threads for OpenMP and OpenBLAS   --quiet  no progress bar\n",
     cmd_gnn},
    {"finetune", "fine-tune a transformer: full / LoRA / QLoRA, with TokenTune token selection",
     "usage: leanprop finetune --model PATH --data FILE [flags]\n"
     "  Trains on causal-LM data (plain text, or JSONL: Alpaca {instruction,input,output},\n"
     "  {prompt,response}, {text}; loss only on response tokens) or classification data\n"
     "  (TSV label<TAB>text, CSV or JSONL {text,label}); validates periodically (exact forward,\n"
     "  no token selection), saves best/last checkpoints and a resumable training state, and\n"
     "  ends with validation before/after, tokens/s and the allocator's memory by category\n"
     "  (current and peak), also the last line of the JSONL log. Formats: docs/DATA.md;\n"
     "  methods, results and commands: docs/FINETUNE.md.\n"
     " model and data:\n"
     "  --model P         Hugging Face dir, llm.c GPT-2 .bin or llama2.c .bin\n"
     "  --tokenizer P     tokenizer.json, GPT-2 dir / encoder.json, llama2.c tokenizer.bin\n"
     "                    (default: in the model dir, or tokenizer.bin / tok<V>.bin beside a .bin)\n"
     "  --task T          lm (default) | cls (decoders get a \"score\" head on the last token)\n"
     "  --data F          .txt corpus (windows of --seq tokens), .jsonl, .tsv, .csv\n"
     "  --val F           validation file (classification: the training file's labels)\n"
     "  --val-fraction X  without --val: .txt holds out its last X of tokens (default 0.1),\n"
     "                    other files a seeded split of X of the records (default lm 0.1, cls 0.2)\n"
     "  --split-seed S    seed of that split (default 1234)\n"
     "  --labels L        cls: fixed label list, e.g. ham,spam (index order); default: sorted\n"
     "  --text-field N, --label-field N   column / key names (default text, label)\n"
     "  --on-bad-line stop|skip        malformed record: stop naming file:line (default) or skip, count\n"
     "  --on-unknown-label stop|skip   label outside the set (default stop)\n"
     " method:\n"
     "  --method M        full | lora (default) | qlora (NF4 base, double quantisation)\n"
     "  --lora-r N        rank (default 8)   --lora-alpha A (default 16)   --lora-dropout P (default 0.05)\n"
     "  --lora-targets L  e.g. q_proj,v_proj or gate_proj,up_proj,down_proj or all-linear\n"
     "                    (default: PEFT's for the model type)\n"
     "  --tokens S        TokenTune: all (default), K tokens per sequence, or a fraction 0.25 / 25%\n"
     "  --token-strategy  random (the paper's, default) | answer (response tokens first)\n"
     " optimisation:\n"
     "  --batch N         sequences per micro-batch (default 8)   --accum N  micro-batches per step (default 1)\n"
     "  --seq N           maximum tokens per sequence (default 256; capped at the model's maximum)\n"
     "  --steps N | --epochs X   run length (default one epoch)\n"
     "  --lr X            peak rate (default 4e-4 LoRA/QLoRA, 4e-5 full)   --min-lr X (default 0)\n"
     "  --warmup N        linear warm-up steps (default 0)   --schedule cosine|linear|constant\n"
     "  --weight-decay X  AdamW decay on weight matrices only (default 0.01)\n"
     "  --clip X          max gradient norm (default 1.0; 0 = off)\n"
     "  --seed S          data order, token selection, adapter init (default 42)\n"
     "  --threads N       threads for OpenMP and OpenBLAS\n"
     " output and safety:\n"
     "  --eval-every N    validate (and checkpoint) every N steps (default steps/5)\n"
     "  --out DIR         DIR/best, DIR/last (adapter or model), DIR/state, DIR/metrics.jsonl\n"
     "  --log F           JSONL metrics log (default DIR/metrics.jsonl)\n"
     "  --plot F.svg      training and validation loss curves from the log\n"
     "  --resume DIR      continue a run from DIR/state (same flags): identical losses\n"
     "  --stop-at N       stop after step N with a checkpoint, as an interruption would (then --resume)\n"
     "  --on-nonfinite stop|skip   NaN/Inf loss or gradient: stop (default) or drop that update\n"
     "  --max-memory SIZE refuse to start when the planned peak exceeds SIZE (e.g. 2G), and stop\n"
     "                    cleanly if an allocation would pass it\n"
     "  --quiet           no progress bar\n",
     cmd_finetune},
    {"eval", "evaluate a model or adapter: LM loss, classification accuracy/F1, multiple choice",
     "usage: leanprop eval --model PATH --data FILE [--task lm|cls|mc] [flags]\n"
     "  lm   mean next-token loss and perplexity (.txt windows or JSONL responses)\n"
     "  cls  accuracy, macro F1, per-class precision/recall/F1, confusion matrix, F1 of class 1\n"
     "  mc   JSONL {question, choices, answer} (ARC / HellaSwag layouts too): each choice scored by\n"
     "       its summed log-likelihood after the context; acc and acc_norm (per character), as\n"
     "       lm-evaluation-harness\n"
     "  --adapter DIR     PEFT adapter dir (from finetune --out DIR/best) on top of --model\n"
     "  --method M        lora (default) | qlora: how the adapter's base is held\n"
     "  --tokenizer P     as for finetune\n"
     "  --part P          all (default) | val | train: with val/train the same held-out tail or\n"
     "                    seeded split finetune used (--val-fraction X, --split-seed S as there)\n"
     "  --labels L        cls: fixed label list (must match the one used in training)\n"
     "  --seq N           maximum tokens (default 256)   --batch N (default 8)\n"
     "  --n-shot N        mc: solved examples before each question (default 0)  --seed S  which ones\n"
     "  --template T      mc: context template with {question} (default \"Question: {question}\\nAnswer:\")\n"
     "  --on-bad-line stop|skip, --on-unknown-label stop|skip, --text-field, --label-field\n"
     "  --json F          write the numbers as one JSON object\n"
     "  --threads N       threads for OpenMP and OpenBLAS\n",
     cmd_eval},
    {"tokenize", "encode text or decode ids with a tokenizer (BPE, WordPiece); count tokens and time it",
     "usage: leanprop tokenize --tokenizer PATH (--text STR | --file PATH | --decode IDS) [flags]\n"
     "  --tokenizer P     tokenizer.json, BERT vocab.txt, GPT-2 encoder.json, llama2.c tokenizer.bin,\n"
     "                    or a directory holding one (docs/TOKENIZERS.md)\n"
     "  --text S          text to encode           --file P   a file to encode ('-': standard input)\n"
     "  --decode IDS      decode ids such as 101,7592,102 and print the text\n"
     "  Encoding prints one 'id<TAB>token' line per token (the token as the vocabulary spells it).\n"
     "  --ids             print only the ids, comma-separated (the form --decode reads)\n"
     "  --count           print the token count and the encode time and speed instead\n"
     "  --special         add what the tokenizer's template adds ([CLS] ... [SEP] for BERT, BOS for Llama)\n"
     "  --bos / --eos     put BOS first / EOS last\n"
     "  --special-as-text special tokens written in the text are ordinary text\n"
     "  --skip-special    with --decode: leave special tokens out\n",
     cmd_tokenize},
};
const int cli_n_commands = (int)(sizeof cli_commands / sizeof cli_commands[0]);
