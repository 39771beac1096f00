#!/usr/bin/env python3
"""The reference for segscore's text input: token sequences built with the Python `tokenizers`
library under the rules in README.md ("Text input"), for tests/it/text.rs.

stdin:  {"tokenizer": PATH, "separator": TEXT or null,
         "generations": [{"prompt": TEXT, "segments": [TEXT, ...]}, ...], "pieces": [TEXT, ...]}
stdout: {"checksums": [[float per segment] per generation], "lengths": [[int ...] ...],
         "pieces": [[ids] per piece, no special tokens], "prompts": [[ids] per generation]}

A segment's checksum is sum over positions p of its sequence of ids[p] * (p + 1): what
tests/data/prefix_checksum.onnx reads at the segment's last token.
"""
import json
import sys

from tokenizers import Tokenizer

job = json.load(sys.stdin)
tok = Tokenizer.from_file(job["tokenizer"])
tok.no_padding()
tok.no_truncation()
sep = job.get("separator")
sep_ids = tok.encode(sep, add_special_tokens=False).ids if sep else []
out = {"checksums": [], "lengths": [], "pieces": [], "prompts": []}
for g in job["generations"]:
    ids = list(tok.encode(g["prompt"], add_special_tokens=True).ids)
    out["prompts"].append(ids[:])
    sums, lengths = [], []
    for text in g["segments"]:
        ids += tok.encode(text, add_special_tokens=False).ids + sep_ids
        sums.append(float(sum(t * (p + 1) for p, t in enumerate(ids))))
        lengths.append(len(ids))
    out["checksums"].append(sums)
    out["lengths"].append(lengths)
for text in job.get("pieces", []):
    out["pieces"].append(tok.encode(text, add_special_tokens=False).ids)
json.dump(out, sys.stdout)
