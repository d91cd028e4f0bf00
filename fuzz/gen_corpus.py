#!/usr/bin/env python3
"""fuzz/gen_corpus.py: hand-made seed files for the libFuzzer harnesses (fuzz/corpus/<harness>/):
.npy bytes written by hand (no numpy), .npz via zipfile (stored and deflated), JSON, tokenizer
files, JSONL/TSV/CSV data, text graphs. fuzz/gen_corpus.c writes the seeds leanprop's own writers
produce. Usage: python3 fuzz/gen_corpus.py [outdir]   (default fuzz/corpus)"""
import io
import json
import os
import struct
import sys
import zipfile

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
SEP = b"\n@@@\n"   # LPFUZZ_SEP in fuzz_common.h


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- npy / npz
def npy(descr, shape, payload, fortran=False, version=1):
    if len(shape) == 1:
        shp = "(%d,)" % shape[0]
    else:
        shp = "(" + ", ".join(str(s) for s in shape) + ")"
    hdr = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shp)
    pre = 10 if version == 1 else 12
    total = pre + len(hdr) + 1
    pad = (64 - total % 64) % 64
    hdr = hdr + " " * pad + "\n"
    magic = b"\x93NUMPY" + bytes([version, 0])
    ln = struct.pack("<H", len(hdr)) if version == 1 else struct.pack("<I", len(hdr))
    return magic + ln + hdr.encode("latin1") + payload


ARR = {
    "f4": npy("<f4", (2, 3), struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, float("inf"))),
    "f8": npy("<f8", (3,), struct.pack("<3d", 0.5, -0.25, 1e300)),
    "f2": npy("<f2", (2,), struct.pack("<2e", 1.5, -2.0)),
    "i8": npy("<i8", (4,), struct.pack("<4q", 0, 1, -1, 1 << 40)),
    "u8": npy("<u8", (1,), struct.pack("<Q", 2 ** 63 + 5)),
    "i4_fortran": npy("<i4", (2, 2), struct.pack("<4i", 1, 2, 3, 4), fortran=True),
    "u1": npy("|u1", (3,), bytes([0, 7, 255])),
    "b1": npy("|b1", (2,), bytes([0, 1])),
    "be_i2": npy(">i2", (2,), struct.pack(">2h", -3, 300)),
    "scalar": npy("<f4", (), struct.pack("<f", 42.0)),
    "empty": npy("<f4", (0, 5), b""),
    "v2": npy("<i4", (2,), struct.pack("<2i", 5, 6), version=2),
    "unicode": npy("<U3", (1,), "abc".encode("utf-32-le")),
}
for k, v in ARR.items():
    put("npy", k + ".npy", v)


def npz(members, compress):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in members.items():  # fixed timestamps: the same bytes on every run
            info = zipfile.ZipInfo(name + ".npy", date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            z.writestr(info, data)
    return b.getvalue()


put("npz", "stored.npz", npz({"a": ARR["f4"], "b": ARR["i8"], "s": ARR["scalar"]}, False))
put("npz", "deflated.npz", npz({"x": ARR["i4_fortran"], "y": ARR["be_i2"], "u": ARR["unicode"]}, True))
put("npz", "empty_archive.npz", npz({}, False))


def graph_npz(compress, dense_attr, labels=True):
    # 4 nodes: 0-1, 1-2, 2-3 (both directions), 3 features
    indptr = [0, 1, 3, 5, 6]
    indices = [1, 0, 2, 1, 3, 2]
    m = {
        "adj_data": npy("<f4", (6,), struct.pack("<6f", *[1.0] * 6)),
        "adj_indices": npy("<i4", (6,), struct.pack("<6i", *indices)),
        "adj_indptr": npy("<i4", (5,), struct.pack("<5i", *indptr)),
        "adj_shape": npy("<i8", (2,), struct.pack("<2q", 4, 4)),
    }
    if dense_attr:
        m["attr_matrix"] = npy("<f4", (4, 3), struct.pack("<12f", *[float(i % 3) for i in range(12)]))
    else:
        m["attr_data"] = npy("<f4", (4,), struct.pack("<4f", 1, 2, 3, 4))
        m["attr_indices"] = npy("<i8", (4,), struct.pack("<4q", 0, 1, 2, 0))
        m["attr_indptr"] = npy("<i8", (5,), struct.pack("<5q", 0, 1, 2, 3, 4))
        m["attr_shape"] = npy("<i8", (2,), struct.pack("<2q", 4, 3))
    if labels:
        m["labels"] = npy("<i8", (4,), struct.pack("<4q", 0, 1, 1, 0))
    return npz(m, compress)


put("graph_npz", "sparse_attr.npz", graph_npz(False, False))
put("graph_npz", "dense_attr.npz", graph_npz(True, True))
put("graph_npz", "no_labels.npz", graph_npz(False, True, labels=False))

# ---------------------------------------------------------------- json
put("json", "nested.json", json.dumps({"n_layer": 2, "eps": 1e-5, "name": "x", "flag": True, "ids": [2, 7],
                                       "rope_scaling": {"factor": 2.0, "type": "linear"}, "none": None,
                                       "layers": [{"a": 1}, {"b": [1, 2, {"c": "d"}]}]}))
put("json", "index.json", json.dumps({"metadata": {"total_size": 80},
                                      "weight_map": {"a": "model-00001-of-00002.safetensors"}}))
put("json", "scalars.json", '[1, -0, 1e308, 9007199254740993, "\\u00e9\\ud83d\\ude00", null, false]')

# config.json variants beyond what the writer produces
put("config", "mistral.json", json.dumps({
    "model_type": "mistral", "architectures": ["MistralForCausalLM"], "vocab_size": 32, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
    "max_position_embeddings": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "sliding_window": None,
    "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": [2, 3]}))
put("config", "qwen2.json", json.dumps({
    "model_type": "qwen2", "vocab_size": 32, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 16, "rope_scaling": None,
    "attention_bias": True, "tie_word_embeddings": True}))

# peft configs by hand (old PEFT keys, string target, extra keys at default values)
put("peft_config", "minimal.json", json.dumps({"peft_type": "LORA", "target_modules": ["c_attn"], "r": 4,
                                                "lora_alpha": 8}))
put("peft_config", "string_target.json", json.dumps({"peft_type": "LORA", "target_modules": "q_proj", "r": 1,
                                                      "lora_alpha": 1, "lora_dropout": 0.0, "bias": "none",
                                                      "layers_to_transform": None, "use_dora": False}))

# ---------------------------------------------------------------- tokenizers
def bytes_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
vocab = {B2U[b]: b for b in range(256)}
merges = ["\u0120 t", "h e", "\u0120t he", "i n", "\u0120 in", "o r", "\u0120 w", "\u0120w or"]
for m in merges:
    vocab[m.replace(" ", "")] = len(vocab)
vocab["<|endoftext|>"] = len(vocab)
enc = json.dumps(vocab, ensure_ascii=False).encode()
bpe = ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()
text = "the world in the word <|endoftext|> caf\u00e9 123".encode()
put("tokenizer_gpt2", "small", enc + SEP + bpe + SEP + text)
put("tokenizer_gpt2", "minimal", b'{"a":0,"b":1,"ab":2}' + SEP + b"#version: 0.2\na b\n" + SEP + b"abba")

hf_bytelevel = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": len(vocab), "content": "<|begin_of_text|>", "special": True, "lstrip": False,
                      "rstrip": False, "normalized": False, "single_word": False}],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                                                 {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [], "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [len(vocab)], "tokens": ["<|begin_of_text|>"]}}},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
              "vocab": vocab, "merges": merges},
}
put("tokenizer_hf", "bytelevel_llama3", json.dumps(hf_bytelevel, ensure_ascii=False).encode() + SEP + text)
gpt2_style = dict(hf_bytelevel)
gpt2_style["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
gpt2_style["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False}
gpt2_style["model"] = dict(hf_bytelevel["model"], merges=[m.split(" ") for m in merges], ignore_merges=False)
put("tokenizer_hf", "bytelevel_gpt2", json.dumps(gpt2_style, ensure_ascii=False).encode() + SEP + text)

SPM = "\u2581"
sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    sp_vocab["<0x%02X>" % b] = 3 + b
for piece in [SPM, "a", "b", "ab", SPM + "ab", "t", "h", "e", "th", "the", SPM + "the", "\u00e9"]:
    sp_vocab[piece] = len(sp_vocab)
sp_merges = ["a b", SPM + " ab", "t h", "th e", SPM + " the"]
sp_prepend = {
    "added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
                     {"id": 2, "content": "</s>", "special": True}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPM},
                                                        {"type": "Replace", "pattern": {"String": " "}, "content": SPM}]},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                 {"Sequence": {"id": "A", "type_id": 0}}]},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": SPM}, "content": " "},
                                                  {"type": "ByteFallback"}, {"type": "Fuse"},
                                                  {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True, "vocab": sp_vocab,
              "merges": sp_merges},
}
put("tokenizer_hf", "sentencepiece_prepend", json.dumps(sp_prepend, ensure_ascii=False).encode() + SEP +
    "ab the caf\u00e9 \U0001F600".encode())
sp_meta = dict(sp_prepend)
sp_meta["normalizer"] = None
sp_meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPM, "prepend_scheme": "first", "split": False}
sp_meta["decoder"] = {"type": "Metaspace", "replacement": SPM, "prepend_scheme": "first", "split": False}
put("tokenizer_hf", "sentencepiece_metaspace", json.dumps(sp_meta, ensure_ascii=False).encode())


def llama2c_tok(pieces, max_len=None):
    ml = max_len or max(len(p) for _, p in pieces)
    out = struct.pack("<i", ml)
    for score, p in pieces:
        out += struct.pack("<fi", score, len(p)) + p
    return out


pieces = [(0.0, b"<unk>"), (0.0, b"\n<s>\n"), (0.0, b"\n</s>\n")]
pieces += [(0.0, b"<0x%02X>" % b) for b in range(256)]
for i, p in enumerate([b" ", b"a", b"b", b"ab", b" ab", b"t", b"he", b"the", b" the", b"\xc3\xa9"]):
    pieces.append((-float(i), p))
put("tokenizer_llama2c", "small.bin", llama2c_tok(pieces) + SEP + b"ab the caf\xc3\xa9 xyz")
put("tokenizer_llama2c", "three.bin", llama2c_tok(pieces[:3] + [(-1.0, b"x")]))

# ---------------------------------------------------------------- datasets
lines = [
    {"instruction": "Say hi", "input": "", "output": "hi"},
    {"instruction": "Add", "input": "1+1", "output": "2"},
    {"prompt": "Q: 2+2?\nA:", "response": " 4"},
    {"prompt": "x", "completion": "y"},
    {"text": "plain text example"},
    {"text": "great movie", "label": "pos"},
    {"text": "bad movie", "label": 0},
    {"question": "2+2?", "choices": ["3", "4", "5"], "answer": 1},
    {"ctx": "The cat", "endings": [" sat", " flew"], "label": "0"},
    {"question": {"stem": "Sky colour?", "choices": [{"text": "blue", "label": "A"}, {"text": "red", "label": "B"}]},
     "answerKey": "A"},
]
put("dataset_jsonl", "mixed.jsonl", "\ufeff" + "\n".join(json.dumps(l) for l in lines) + "\r\n\n")
put("dataset_jsonl", "alpaca.jsonl", "\n".join(json.dumps(l) for l in lines[:2]) + "\n")
put("dataset_jsonl", "mc.jsonl", "\n".join(json.dumps(l) for l in lines[7:]) + "\n")
put("dataset_jsonl", "cls.jsonl", "\n".join(json.dumps(l) for l in lines[5:7]) + "\n{not json}\n[1]\n")

put("dataset_text", "plain.tsv", "ham\tGo until jurong point\nspam\tFree entry in 2 a wkly comp\nham\tOk lar...\n")
put("dataset_text", "header.tsv", "class\tsms\nham\thello there\nspam\tWIN now\n")
put("dataset_text", "quoted.csv", 'sms,class\n"hello, ""world""",ham\n"multi\nline",spam\nplain,ham\r\n')
put("dataset_text", "numeric.csv", "text,label\na,0\nb,1\nc,10\n")

# ---------------------------------------------------------------- graphs
put("graph_text", "edges_only", "# comment\n0 1\n1 2\n2,3\n3 0 extra\n% other comment\n4 4\n")
put("graph_text", "with_features", b"0 1\n1 2\n2 0\n" + SEP + b"0\n1\n-1\n" + SEP +
    b"0 1.0 0.5\n1 0 0\n2 -1e3 2\n")
