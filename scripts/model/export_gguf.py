#!/usr/bin/python3
"""Write a checkpoint from train.py as a GGUF file that llama.cpp (node-llama-cpp) loads as a "llama" model.

Dependency-free GGUF v3 writer (struct + numpy only), so the repository needs no gguf-py. The bytes depend only on
the checkpoint: no timestamps or paths go into the file, so the same checkpoint always gives the same SHA-256.

GGUF v3 layout (all integers little-endian):
  header      u32 magic 0x46554747 ("GGUF") | u32 version = 3 | u64 tensor_count | u64 metadata_kv_count
  metadata    kv_count x { string key | u32 value_type | value }
                string = u64 byte_length + UTF-8 bytes (no terminator)
                array  = u32 element_type + u64 count + elements
  tensor info tensor_count x { string name | u32 n_dims | u64 ne[n_dims] (fastest-varying dim first)
                               | u32 ggml_type (0 = F32) | u64 offset (from the start of the data section) }
  padding     zero bytes up to a multiple of ALIGNMENT (general.alignment, default 32)
  data        each tensor's bytes, each starting at a multiple of ALIGNMENT

A torch Linear weight of shape (out, in), stored row-major, is exactly a GGUF tensor with ne = [in, out], so weights
are written as they are. Q/K need no permutation because train.py's RoPE already rotates adjacent pairs
(llama.cpp's LLAMA_ROPE_TYPE_NORM).

Usage: /usr/bin/python3 scripts/model/export_gguf.py /tmp/kjv-char-llama.pt models/kjv-char-llama.gguf
"""
from __future__ import annotations

import argparse
import struct
import sys

import numpy as np

GGUF_MAGIC = 0x46554747  # "GGUF" read as a little-endian u32
GGUF_VERSION = 3
ALIGNMENT = 32  # llama.cpp's default; not written to the file

# GGUF metadata value types
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9
GGML_TYPE_F32 = 0
LLAMA_FTYPE_ALL_F32 = 0  # general.file_type

# llama.cpp token types (tokenizer.ggml.token_type)
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6

MODEL_NAME = "kjv-char-llama"


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(vtype: int, v) -> bytes:
    if vtype == T_UINT32:
        return struct.pack("<I", v)
    if vtype == T_INT32:
        return struct.pack("<i", v)
    if vtype == T_FLOAT32:
        return struct.pack("<f", v)
    if vtype == T_BOOL:
        return struct.pack("<?", v)
    if vtype == T_STRING:
        return _string(v)
    raise ValueError(f"unsupported GGUF value type {vtype}")


def _kv(key: str, vtype: int, v) -> bytes:
    return _string(key) + struct.pack("<I", vtype) + _value(vtype, v)


def _kv_array(key: str, etype: int, items) -> bytes:
    body = b"".join(_value(etype, x) for x in items)
    return _string(key) + struct.pack("<IIQ", T_ARRAY, etype, len(items)) + body


def token_types(tokens: list[str]) -> list[int]:
    types = []
    for i, t in enumerate(tokens):
        if t == "<unk>":
            types.append(TOKEN_UNKNOWN)
        elif t in ("<s>", "</s>"):
            types.append(TOKEN_CONTROL)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(TOKEN_BYTE)
        else:
            types.append(TOKEN_NORMAL)
    return types


def tensor_map(cfg: dict) -> list[tuple[str, str]]:
    """(GGUF tensor name, torch state_dict key), in the order llama.cpp's own converter writes them."""
    pairs = [("token_embd.weight", "tok_embeddings.weight")]
    for i in range(cfg["layers"]):
        p = f"layers.{i}."
        pairs += [
            (f"blk.{i}.attn_norm.weight", p + "attn_norm.weight"),
            (f"blk.{i}.attn_q.weight", p + "wq.weight"),
            (f"blk.{i}.attn_k.weight", p + "wk.weight"),
            (f"blk.{i}.attn_v.weight", p + "wv.weight"),
            (f"blk.{i}.attn_output.weight", p + "wo.weight"),
            (f"blk.{i}.ffn_norm.weight", p + "ffn_norm.weight"),
            (f"blk.{i}.ffn_gate.weight", p + "w_gate.weight"),
            (f"blk.{i}.ffn_up.weight", p + "w_up.weight"),
            (f"blk.{i}.ffn_down.weight", p + "w_down.weight"),
        ]
    pairs += [("output_norm.weight", "norm.weight"), ("output.weight", "output.weight")]
    return pairs


def gguf_bytes(ckpt: dict) -> bytes:
    cfg, tokens, sd = ckpt["cfg"], ckpt["tokens"], ckpt["state_dict"]
    if len(tokens) != cfg["vocab"]:
        raise ValueError(f"checkpoint has {len(tokens)} tokens but cfg.vocab = {cfg['vocab']}")
    head_dim = cfg["dim"] // cfg["heads"]
    arch = "llama"
    kvs = [
        _kv("general.architecture", T_STRING, arch),
        _kv("general.name", T_STRING, MODEL_NAME),
        _kv("general.description", T_STRING,
            "Tiny character-level Llama trained on the King James Bible (Debian bible-kjv) by "
            "scripts/model/train.py. Writes KJV-like English; not an instruction-following model."),
        _kv("general.license", T_STRING, "public-domain"),
        _kv("general.file_type", T_UINT32, LLAMA_FTYPE_ALL_F32),
        _kv(f"{arch}.vocab_size", T_UINT32, cfg["vocab"]),
        _kv(f"{arch}.context_length", T_UINT32, cfg["ctx"]),
        _kv(f"{arch}.embedding_length", T_UINT32, cfg["dim"]),
        _kv(f"{arch}.block_count", T_UINT32, cfg["layers"]),
        _kv(f"{arch}.feed_forward_length", T_UINT32, cfg["ff"]),
        _kv(f"{arch}.attention.head_count", T_UINT32, cfg["heads"]),
        _kv(f"{arch}.attention.head_count_kv", T_UINT32, cfg["heads"]),
        _kv(f"{arch}.attention.layer_norm_rms_epsilon", T_FLOAT32, cfg["norm_eps"]),
        _kv(f"{arch}.rope.dimension_count", T_UINT32, head_dim),
        _kv(f"{arch}.rope.freq_base", T_FLOAT32, cfg["rope_base"]),
        _kv("tokenizer.ggml.model", T_STRING, "llama"),  # SentencePiece-style (SPM) tokenizer
        _kv_array("tokenizer.ggml.tokens", T_STRING, tokens),
        _kv_array("tokenizer.ggml.scores", T_FLOAT32, [0.0] * len(tokens)),
        _kv_array("tokenizer.ggml.token_type", T_INT32, token_types(tokens)),
        _kv("tokenizer.ggml.unknown_token_id", T_UINT32, tokens.index("<unk>")),
        _kv("tokenizer.ggml.bos_token_id", T_UINT32, tokens.index("<s>")),
        _kv("tokenizer.ggml.eos_token_id", T_UINT32, tokens.index("</s>")),
        _kv("tokenizer.ggml.add_bos_token", T_BOOL, True),
        _kv("tokenizer.ggml.add_eos_token", T_BOOL, False),
        _kv("tokenizer.ggml.add_space_prefix", T_BOOL, False),
    ]

    names, arrays = [], []
    for gguf_name, torch_key in tensor_map(cfg):
        if torch_key not in sd:
            raise KeyError(f"checkpoint lacks tensor {torch_key!r} (needed for {gguf_name})")
        arrays.append(np.ascontiguousarray(sd[torch_key].detach().cpu().float().numpy(), dtype="<f4"))
        names.append(gguf_name)
    if len(arrays) != len(sd):
        extra = set(sd) - {k for _, k in tensor_map(cfg)}
        raise KeyError(f"checkpoint has tensors the exporter does not know: {sorted(extra)}")

    infos, offset = [], 0
    for name, a in zip(names, arrays):
        ne = list(reversed(a.shape))  # GGUF lists the fastest-varying dimension first
        infos.append(_string(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
                     + struct.pack("<IQ", GGML_TYPE_F32, offset))
        offset += -(-a.nbytes // ALIGNMENT) * ALIGNMENT

    out = bytearray(struct.pack("<IIQQ", GGUF_MAGIC, GGUF_VERSION, len(arrays), len(kvs)))
    out += b"".join(kvs) + b"".join(infos)
    out += b"\0" * (-len(out) % ALIGNMENT)
    for a in arrays:
        out += a.tobytes()
        out += b"\0" * (-len(out) % ALIGNMENT)
    return bytes(out)


def export(ckpt: dict, path: str) -> None:
    data = gguf_bytes(ckpt)
    with open(path, "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="file written by train.py --out")
    ap.add_argument("gguf", help="GGUF file to write")
    args = ap.parse_args()
    import torch  # only needed to read the checkpoint

    try:
        ckpt = torch.load(args.checkpoint, map_location="cpu")
    except FileNotFoundError:
        sys.exit(f"export_gguf.py: no checkpoint at {args.checkpoint}; run scripts/model/train.py --out {args.checkpoint} first")
    export(ckpt, args.gguf)
    print(f"wrote {args.gguf}: {ckpt['n_params']} params, context {ckpt['cfg']['ctx']}, vocab {ckpt['cfg']['vocab']}")


if __name__ == "__main__":
    main()
