#!/usr/bin/python3
"""Train the project's default language model: a tiny character-level Llama on the King James Bible.

Runs with Debian's packages only (bookworm): python3-torch 1.13 (CPU), python3-numpy, libopenblas0-pthread
(makes torch's BLAS ~5x faster) and bible-kjv (the text). See scripts/model/README.md for the exact commands.

The model follows llama.cpp's "llama" architecture exactly, so the GGUF written by export_gguf.py generates the
same greedy text in llama.cpp (node-llama-cpp) as in torch:
  - token embedding -> N x [RMSNorm -> causal self-attention with RoPE -> residual,
                            RMSNorm -> SwiGLU feed-forward -> residual] -> RMSNorm -> output projection
  - RMSNorm eps 1e-5 (llama.attention.layer_norm_rms_epsilon), weight only, no biases anywhere
  - RoPE type NORM: rotates ADJACENT pairs (x[2i], x[2i+1]) by angle pos * base^(-2i/head_dim), base 10000
    (Meta/llama2.c style; NOT Hugging Face's rotate_half, which would need llama.cpp's Q/K permutation)
  - SwiGLU: down(silu(gate(x)) * up(x))
  - every training sample starts with BOS at position 0, as llama.cpp adds BOS in front of every prompt

Tokenizer (llama.cpp "llama" = SentencePiece-style, see kjv_vocab below): one token per character of the training
text, space written as U+2581, newline and every character outside the vocabulary as UTF-8 byte tokens <0xXX>.
With all scores 0 and no multi-character tokens, llama.cpp's SPM tokenizer splits text into single characters,
which is exactly what encode() does here.

Usage:  /usr/bin/python3 scripts/model/train.py --out /tmp/kjv-char-llama.pt
        (then scripts/model/export_gguf.py; or pass --gguf to export in the same run)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- Tokenizer layout (token ids are part of the model file's contract; tests may assert them) ----
UNK_ID = 0  # "<unk>", never produced by encode(): unknown characters become byte tokens instead
BOS_ID = 1  # "<s>", put at position 0 of every sequence
EOS_ID = 2  # "</s>", the model was never trained to emit it (training windows are running text)
FIRST_BYTE_ID = 3  # ids 3..258 are the byte tokens <0x00>..<0xFF>
BYTE_TOKEN_COUNT = 256
FIRST_CHAR_ID = FIRST_BYTE_ID + BYTE_TOKEN_COUNT  # 259: one token per character, sorted by code point
SPM_SPACE = "\u2581"  # SentencePiece writes a space as "▁" in token texts

# The text: every verse of the KJV, one verse per line, as printed by Debian's `bible` program.
BIBLE_COMMAND = ["bible", "-f", "Gen1:1-Rev22:21"]
VERSE_REFERENCE = re.compile(r"^[1-3]?[A-Za-z]+\d+:\d+ ")  # "Ge1:1 ", "1Co13:4 ", "Rev22:21 "
EXPECTED_VERSES = 31102


def load_kjv(path: str | None) -> str:
    """Returns the KJV as plain text, one verse per line, verse references removed.

    Reads `path` if given (output of `bible -f Gen1:1-Rev22:21`), else runs the `bible` program.
    Lines that `bible` wrapped (it wraps when given a width) are joined back onto their verse.
    """
    if path:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
    else:
        try:
            raw = subprocess.run(BIBLE_COMMAND, check=True, capture_output=True, text=True).stdout
        except FileNotFoundError:
            sys.exit("train.py: the `bible` program is missing; install it with `apt-get install bible-kjv`")
    verses: list[str] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        m = VERSE_REFERENCE.match(line)
        if m:
            verses.append(line[m.end():].strip())
        elif verses:
            verses[-1] += " " + line.strip()
        else:
            sys.exit(f"train.py: text does not start with a verse reference like 'Ge1:1 ': {line[:60]!r}")
    if len(verses) != EXPECTED_VERSES:
        sys.exit(f"train.py: expected {EXPECTED_VERSES} verses from bible-kjv, got {len(verses)}; "
                 f"is the input the output of `{' '.join(BIBLE_COMMAND)}`?")
    return "\n".join(verses) + "\n"


def kjv_vocab(text: str) -> list[str]:
    """Token texts in id order: specials, 256 byte tokens, then each character of `text` except newline.

    Newline is left out on purpose: llama.cpp's SPM tokenizer maps "\\n" to the byte token <0x0A> (its linefeed
    token), so the model learns newline as that byte token.
    """
    chars = sorted(set(text) - {"\n"})
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(BYTE_TOKEN_COUNT)]
    tokens += [SPM_SPACE if c == " " else c for c in chars]
    return tokens


class CharTokenizer:
    """Mirror of llama.cpp's SPM tokenizer for this vocabulary (add_space_prefix = false)."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.char_to_id = {}
        for i in range(FIRST_CHAR_ID, len(tokens)):
            self.char_to_id[" " if tokens[i] == SPM_SPACE else tokens[i]] = i

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for c in text:
            tid = self.char_to_id.get(c)
            if tid is not None:
                ids.append(tid)
            else:  # byte fallback, as llama.cpp does for characters missing from the vocabulary
                ids.extend(FIRST_BYTE_ID + b for b in c.encode("utf-8"))
        return ids

    def decode(self, ids: list[int]) -> str:
        out = bytearray()
        for i in ids:
            if FIRST_BYTE_ID <= i < FIRST_CHAR_ID:
                out.append(i - FIRST_BYTE_ID)
            elif i >= FIRST_CHAR_ID:
                out += self.tokens[i].replace(SPM_SPACE, " ").encode("utf-8")
        return out.decode("utf-8", errors="replace")


# ---- Model ----
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim: int, ctx: int, base: float):
    """cos/sin of shape (ctx, head_dim/2): angle(pos, i) = pos * base^(-2i/head_dim)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(ctx, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope_adjacent(x, cos, sin):
    """llama.cpp LLAMA_ROPE_TYPE_NORM: rotate pairs (x[..., 2i], x[..., 2i+1]). x: (B, H, T, head_dim)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        d, ff = cfg["dim"], cfg["ff"]
        self.n_heads = cfg["heads"]
        self.head_dim = d // self.n_heads
        self.attn_norm = RMSNorm(d, cfg["norm_eps"])
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d, cfg["norm_eps"])
        self.w_gate = nn.Linear(d, ff, bias=False)
        self.w_up = nn.Linear(d, ff, bias=False)
        self.w_down = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, D = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(h).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.wv(h).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope_adjacent(q, cos, sin), apply_rope_adjacent(k, cos, sin)
        # torch 1.13 has no F.scaled_dot_product_attention: written out by hand.
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.wo(y)
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class TinyLlama(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg["vocab"], cfg["dim"])
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["layers"]))
        self.norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.output = nn.Linear(cfg["dim"], cfg["vocab"], bias=False)
        cos, sin = rope_tables(cfg["dim"] // cfg["heads"], cfg["ctx"], cfg["rope_base"])
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        causal = torch.triu(torch.ones(cfg["ctx"], cfg["ctx"], dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)
        self._init_weights()

    def _init_weights(self):
        residual_std = 0.02 / math.sqrt(2 * self.cfg["layers"])  # GPT-2 style scaling of residual projections
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = residual_std if name.endswith(("wo.weight", "w_down.weight")) else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx):
        T = idx.shape[1]
        if T > self.cfg["ctx"]:
            raise ValueError(f"sequence of {T} tokens is longer than the context length {self.cfg['ctx']}")
        x = self.tok_embeddings(idx)
        cos, sin, mask = self.rope_cos[:T], self.rope_sin[:T], self.causal_mask[:T, :T]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.output(self.norm(x))


@torch.no_grad()
def greedy(model: TinyLlama, tok: CharTokenizer, prompt: str, n: int) -> str:
    """Greedy continuation of BOS + prompt, recomputing the prefix each step (fine for a model this small)."""
    ids = [BOS_ID] + tok.encode(prompt)
    out: list[int] = []
    for _ in range(n):
        if len(ids) >= model.cfg["ctx"]:
            break
        nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
        ids.append(nxt)
        out.append(nxt)
    return tok.decode(out)


# ---- Training ----
def lr_at(step: int, cfg: dict) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg["warmup"]:
        return cfg["lr"] * (step + 1) / cfg["warmup"]
    progress = (step - cfg["warmup"]) / max(1, cfg["steps"] - cfg["warmup"])
    return cfg["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_batch(data, starts, ctx: int, batch: int, gen: torch.Generator):
    """`batch` windows that each begin at a verse start: input = BOS + ctx-1 tokens, target = the next ctx tokens."""
    picks = starts[torch.randint(len(starts), (batch,), generator=gen)]
    offsets = picks.unsqueeze(1) + torch.arange(ctx).unsqueeze(0)  # (batch, ctx)
    y = data[offsets]
    x = torch.cat([torch.full((batch, 1), BOS_ID, dtype=torch.long), y[:, :-1]], dim=1)
    return x, y


@torch.no_grad()
def evaluate(model, data, starts, ctx, batch, batches, seed):
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    losses = []
    for _ in range(batches):
        x, y = make_batch(data, starts, ctx, batch, gen)
        losses.append(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/kjv-char-llama.pt", help="checkpoint to write (torch.save)")
    ap.add_argument("--gguf", default=None, help="also export the GGUF to this path (see export_gguf.py)")
    ap.add_argument("--text", default=None, help="read `bible -f Gen1:1-Rev22:21` output from a file")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 measured 2.5x faster than 2 on the shared 2-core box (see README)")
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--val-fraction", type=float, default=0.02, help="held-out tail of the text (2 Peter 3:10 to the end, by default)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    text = load_kjv(args.text)
    tokens = kjv_vocab(text)
    tok = CharTokenizer(tokens)
    data = torch.tensor(tok.encode(text), dtype=torch.long)
    assert tok.decode(data.tolist()) == text, "tokenizer round trip failed"

    # Windows start at verse starts so that "BOS + beginning of a verse" is what the model knows best.
    verse_starts = torch.tensor([0] + [i + 1 for i, t in enumerate(data.tolist()) if t == FIRST_BYTE_ID + 10][:-1])
    split = int(len(data) * (1 - args.val_fraction))
    train_starts = verse_starts[verse_starts + args.ctx <= split]  # whole window inside the training part
    val_starts = verse_starts[(verse_starts >= split) & (verse_starts + args.ctx <= len(data))]

    cfg = dict(vocab=len(tokens), dim=args.dim, layers=args.layers, heads=args.heads, ff=args.ff, ctx=args.ctx,
               norm_eps=1e-5, rope_base=10000.0, lr=args.lr, warmup=args.warmup, steps=args.steps,
               batch=args.batch, seed=args.seed, weight_decay=args.weight_decay)
    if args.dim % args.heads or (args.dim // args.heads) % 2:
        sys.exit("train.py: --dim must split into --heads heads of even size (RoPE rotates pairs)")
    model = TinyLlama(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"text: {len(text)} chars, {len(verse_starts)} verses; vocab {len(tokens)}; "
          f"train windows {len(train_starts)}, val windows {len(val_starts)}", flush=True)
    print(f"model: {n_params} params {json.dumps(cfg)}; torch {torch.__version__}, threads {args.threads}", flush=True)

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    running = None
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        x, y = make_batch(data, train_starts, args.ctx, args.batch, gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if (step + 1) % 25 == 0:
            print(f"step {step + 1}/{args.steps} loss {running:.3f} lr {lr_at(step, cfg):.2e} "
                  f"{time.time() - t0:.0f}s", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            val = evaluate(model, data, val_starts, args.ctx, args.batch, 8, args.seed + 1)
            print(f"  val loss {val:.3f} nats/char", flush=True)
    train_seconds = time.time() - t0
    model.eval()

    samples = {p: greedy(model, tok, p, 60) for p in ("And God said", "In the beginning")}
    for p, s in samples.items():
        print(f"greedy {p!r} -> {s!r}", flush=True)
    ckpt = dict(cfg=cfg, tokens=tokens, state_dict=model.state_dict(), n_params=n_params,
                train_seconds=round(train_seconds, 1), val_loss=round(val, 4), torch_greedy=samples)
    torch.save(ckpt, args.out)
    print(f"wrote {args.out} after {train_seconds:.0f}s of training", flush=True)
    if args.gguf:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from export_gguf import export
        export(ckpt, args.gguf)
        print(f"wrote {args.gguf}", flush=True)


if __name__ == "__main__":
    main()
