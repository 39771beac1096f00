#!/usr/bin/env python3
"""Builds the small ONNX models segscore ships, with fixed weights (deterministic).

    python3 models/build_models.py        # needs: pip install onnx numpy

models/reward_small.onnx   the demo reward model:
    input_ids, attention_mask (int64 [batch, seq]) -> score (float32 [batch, 1])
    token embedding (vocab 1000, width 8) -> masked mean pool -> tanh MLP (8 -> 16 -> 1).
    Embedding column 0 is the demo data's token value v(t) (see below) plus fixed noise,
    and the MLP reads mostly that column, so the model approximates the demo's scoring
    rule without being exact: residuals are small but real.

models/reward_transformer.onnx   a heavier model for the model-bound benchmarks:
    input_ids, attention_mask -> score (float32 [batch, 1]); token + position embedding
    (vocab 1000, 512 positions, width 256), 2 pre-norm encoder layers (4 heads, feed-forward
    1024, GELU), final layer norm, masked mean pool, linear head. Random fixed weights: it is
    for measuring speed, its scores mean nothing.

tests/data/*.onnx          tiny models the tests use for exact expectations:
    affine_mean.onnx   score = masked_mean(input_ids) * 0.001 - 1.0   ([batch]),
                       token_count = sum(attention_mask)               ([batch])
    bert_like.onnx     as affine_mean's score, plus token_type_ids (added as 0.5 * masked mean)
    needs_pixels.onnx  also asks for a float input `pixel_values` that no column provides
    affine_batch1.onnx, affine_batch3.onnx   affine_mean's score with the batch dimension
                       fixed at 1 and 3 ([1, seq]: torch.onnx.export without dynamic_axes)
    affine_f16.onnx, affine_bf16.onnx   affine_mean's score cast to float16 and bfloat16
    int_count.onnx     only an int64 token count ([batch]): no output can be the score
    affine_mask_f32.onnx, affine_mask_f16.onnx, affine_mask_bool.onnx   affine_mean's score
                       with attention_mask declared float32, float16 and bool
    mean_no_mask.onnx  mean(input_ids) * 0.001 - 1 over every position, with no attention_mask
                       input: padding would change its score
    last_nonpad.onnx   input_ids * 0.001 at each row's last token that is not the pad id 7, found
                       by comparing the ids with it, as transformers' classifiers for decoder
                       models do (they ignore the attention mask there)
    affine_two_class.onnx   a two-label sequence classifier: logits [batch, 2] = (0, 4 * affine
                       score), so softmax's class 1 is sigmoid(4 * affine_mean's score)
    affine_b11.onnx    affine_mean's score shaped [batch, 1, 1]
    external/reward_small.onnx   models/reward_small.onnx saved as large exports are, its
                       weights in external data (`reward_small.onnx.data` beside it; tensors of
                       1 KiB or more)

models/prm_causal.onnx   the text demo's per-token reward model (a value head), causal:
    input_ids, attention_mask, position_ids (int64 [batch, seq]) -> scores (float32 [batch, seq])
    hashed token embedding (ids mod 4096, width 64) + position embedding (1024 positions) + the
    demo token value v(t) in channel 0; 2 pre-norm layers of causal self-attention (4 heads,
    near-uniform attention) and a feed-forward block; the value channel carries the running
    mean of v over the prefix, and the head reads 0.8 * tanh(1.5 * that) plus a little of the
    rest. So at a segment's last token it approximates the text demo's cumulative score, which
    `segscore demo --text` reads with --prediction cumulative.

tests/data/prm_bidirectional.onnx   prm_causal without the causal mask: each position sees the
    whole sequence, so one pass over a generation differs from per-prefix calls.
tests/data/prefix_checksum.onnx     scores (float64 [batch, seq]) = cumulative sum over the positions
    p <= i of input_ids[p] * (p + 1): at a segment's last token, a checksum of exactly the
    token sequence up to there (ids and order), so tests can check the sequences segscore builds.
tests/data/wordpiece-tokenizer.json a small BERT-style WordPiece tokenizer trained here with the
    Python `tokenizers` library: [CLS] ... [SEP] around a single sequence, and padding to 128
    and truncation switched on in the file (segscore must ignore both).
tests/data/prm_two_class.onnx       prm_causal with a two-class head: logits [batch, seq, 2] =
    (0, 4 * value), so softmax's class 1 is sigmoid(4 * value).

The demo data (`segscore demo`) uses the same token value:
    v(t) = ((t * 7919) mod 1000) / 500 - 1
and a segment's true score 0.8 * tanh(1.5 * mean_t v(t)) plus Gaussian noise (sd 0.05).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = [helper.make_opsetid("", 17)]
VOCAB = 1000


def token_value(t):
    return ((t * 7919) % 1000) / 500.0 - 1.0


def ids_inputs(extra=(), batch="batch"):
    dims = [batch, "seq"]
    ins = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims),
    ]
    return ins + list(extra)


def masked_mean_nodes(values_3d, out):
    """Nodes computing the mean over `seq` of values_3d ([b, s, d] float) where attention_mask is 1."""
    return [
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
        helper.make_node("Mul", [values_3d, "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one_f"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], [out]),
    ]


def common_inits():
    return [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one_f"),
    ]


def save(graph, path, doc):
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="segscore/build_models.py")
    model.ir_version = 8
    model.doc_string = doc
    onnx.checker.check_model(model)
    full = os.path.join(ROOT, path)
    onnx.save(model, full)
    print(f"wrote {path} ({os.path.getsize(full)} bytes)")


def reward_small():
    rng = np.random.default_rng(20261127)
    d, h = 8, 16
    emb = rng.normal(0.0, 0.5, size=(VOCAB, d)).astype(np.float32)
    emb[:, 0] = np.array([token_value(t) for t in range(VOCAB)]) + rng.normal(0.0, 0.15, VOCAB)
    w1 = rng.normal(0.0, 0.05, size=(d, h)).astype(np.float32)
    w1[0, 0] = 1.5
    b1 = np.zeros(h, dtype=np.float32)
    w2 = rng.normal(0.0, 0.02, size=(h, 1)).astype(np.float32)
    w2[0, 0] = 0.8
    b2 = np.array([0.01], dtype=np.float32)
    nodes = [helper.make_node("Gather", ["embedding", "input_ids"], ["tok"], axis=0)]
    nodes += masked_mean_nodes("tok", "pooled")
    nodes += [
        helper.make_node("MatMul", ["pooled", "w1"], ["h_lin"]),
        helper.make_node("Add", ["h_lin", "b1"], ["h_pre"]),
        helper.make_node("Tanh", ["h_pre"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["o_lin"]),
        helper.make_node("Add", ["o_lin", "b2"], ["score"]),
    ]
    inits = common_inits() + [
        numpy_helper.from_array(emb.astype(np.float32), "embedding"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    out = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])]
    graph = helper.make_graph(nodes, "reward_small", ids_inputs(), out, inits)
    save(graph, "models/reward_small.onnx", "segscore demo reward model: embedding, masked mean pool, MLP")


def reward_small_external():
    """models/reward_small.onnx (built first) with its weights in an external data file."""
    model = onnx.load(os.path.join(ROOT, "models/reward_small.onnx"))
    folder = os.path.join(ROOT, "tests/data/external")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "reward_small.onnx")
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="reward_small.onnx.data", size_threshold=1024)
    for name in ("reward_small.onnx", "reward_small.onnx.data"):
        print(f"wrote tests/data/external/{name} ({os.path.getsize(os.path.join(folder, name))} bytes)")


def affine_nodes(out):
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_f", "axis2"], ["ids3"]),
    ]
    nodes += masked_mean_nodes("ids3", "mean_id2")
    nodes += [
        helper.make_node("Squeeze", ["mean_id2", "axis1"], ["mean_id"]),
        helper.make_node("Mul", ["mean_id", "milli"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "one_f"], [out]),
    ]
    return nodes


def affine_inits():
    return common_inits() + [numpy_helper.from_array(np.array(0.001, dtype=np.float32), "milli")]


def affine_mean():
    nodes = affine_nodes("score")
    nodes += [
        helper.make_node("Squeeze", ["count", "axis1"], ["token_count"]),
    ]
    outs = [
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("token_count", TensorProto.FLOAT, ["batch"]),
    ]
    graph = helper.make_graph(nodes, "affine_mean", ids_inputs(), outs, affine_inits())
    save(graph, "tests/data/affine_mean.onnx", "test model: masked mean of token ids * 0.001 - 1")


def affine_fixed_batch(rows):
    """affine_mean's score from a model whose batch dimension is fixed at `rows`, as
    `torch.onnx.export` writes a model without `dynamic_axes`."""
    nodes = affine_nodes("score")
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, [rows])]
    graph = helper.make_graph(nodes, f"affine_batch{rows}", ids_inputs(batch=rows), outs, affine_inits())
    save(graph, f"tests/data/affine_batch{rows}.onnx", f"test model: affine_mean's score, batch fixed at {rows}")


def affine_half(elem, name):
    """affine_mean's score in half precision (a model converted for GPUs): float32, then a
    Cast to `elem`."""
    nodes = affine_nodes("score32")
    nodes += [helper.make_node("Cast", ["score32"], ["score"], to=elem)]
    outs = [helper.make_tensor_value_info("score", elem, ["batch"])]
    graph = helper.make_graph(nodes, name, ids_inputs(), outs, affine_inits())
    save(graph, f"tests/data/{name}.onnx", f"test model: affine_mean's score as {name.split('_')[1]}")


def affine_mask(elem, name):
    """affine_mean's score from a model whose attention_mask is `elem` (some exports declare a
    float or boolean mask); the graph casts it to float as before."""
    nodes = affine_nodes("score")
    ins = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", elem, ["batch", "seq"]),
    ]
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, name, ins, outs, affine_inits())
    save(graph, f"tests/data/{name}.onnx", f"test model: affine_mean's score, attention_mask {name.split('_')[2]}")


def mean_no_mask():
    """A model that takes no attention_mask: the mean over every position it is given."""
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["ids_f"], ["mean_id"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["mean_id", "milli"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "one_f"], ["score"]),
    ]
    ins = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, "mean_no_mask", ins, outs, affine_inits())
    save(graph, "tests/data/mean_no_mask.onnx", "test model: mean of every position's id * 0.001 - 1, no attention mask")


def last_nonpad():
    """A score read at each row's last token whose id is not the pad id (7), the way
    `LlamaForSequenceClassification` finds it: (ids != pad) * position, argmax."""
    nodes = [
        helper.make_node("Equal", ["input_ids", "pad_id"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["not_pad"]),
        helper.make_node("Cast", ["not_pad"], ["not_pad_i"], to=TensorProto.INT64),
        helper.make_node("Shape", ["input_ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "one_i"], ["seq"], axis=0),
        helper.make_node("Range", ["zero_i", "seq", "one_i"], ["positions"]),
        helper.make_node("Mul", ["not_pad_i", "positions"], ["weighted"]),
        helper.make_node("ArgMax", ["weighted"], ["last"], axis=1, keepdims=1),
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids_f", "milli"], ["values"]),
        helper.make_node("GatherElements", ["values", "last"], ["score"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array(7, dtype=np.int64), "pad_id"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_i"),
        numpy_helper.from_array(np.array(0.001, dtype=np.float32), "milli"),
    ]
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])]
    graph = helper.make_graph(nodes, "last_nonpad", ids_inputs(), outs, inits)
    save(graph, "tests/data/last_nonpad.onnx", "test model: the last non-pad token's id * 0.001 (pad id 7)")


def affine_two_class():
    """A sequence classifier with two labels (as exported with num_labels=2): logits [batch, 2]."""
    nodes = affine_nodes("score")
    nodes += [
        helper.make_node("Unsqueeze", ["score", "axis1"], ["score_col"]),
        helper.make_node("Mul", ["score_col", "class_w"], ["logits"]),
    ]
    inits = affine_inits() + [numpy_helper.from_array(np.array([0.0, 4.0], dtype=np.float32), "class_w")]
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])]
    graph = helper.make_graph(nodes, "affine_two_class", ids_inputs(), outs, inits)
    save(graph, "tests/data/affine_two_class.onnx", "test model: two-label logits (0, 4 * affine_mean's score)")


def affine_b11():
    """affine_mean's score as `[batch, 1, 1]` (a head's output kept with both its axes)."""
    nodes = affine_nodes("score")
    nodes += [helper.make_node("Reshape", ["score", "shape_b11"], ["score_b11"])]
    inits = affine_inits() + [numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape_b11")]
    outs = [helper.make_tensor_value_info("score_b11", TensorProto.FLOAT, ["batch", 1, 1])]
    graph = helper.make_graph(nodes, "affine_b11", ids_inputs(), outs, inits)
    save(graph, "tests/data/affine_b11.onnx", "test model: affine_mean's score as [batch, 1, 1]")


def int_count():
    """A model whose only output is an integer (a token count): not a score."""
    nodes = affine_nodes("score")
    nodes += [
        helper.make_node("Squeeze", ["count", "axis1"], ["count1"]),
        helper.make_node("Cast", ["count1"], ["token_count"], to=TensorProto.INT64),
    ]
    outs = [helper.make_tensor_value_info("token_count", TensorProto.INT64, ["batch"])]
    graph = helper.make_graph(nodes, "int_count", ids_inputs(), outs, affine_inits())
    save(graph, "tests/data/int_count.onnx", "test model: an int64 token count, no score")


def bert_like():
    tt = helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "seq"])
    nodes = affine_nodes("base")
    nodes += [
        helper.make_node("Cast", ["token_type_ids"], ["tt_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["m_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["tt_f", "m_f"], ["tt_m"]),
        helper.make_node("ReduceSum", ["tt_m", "axis1"], ["tt_sum"], keepdims=0),
        helper.make_node("Squeeze", ["count", "axis1"], ["cnt1"]),
        helper.make_node("Div", ["tt_sum", "cnt1"], ["tt_mean"]),
        helper.make_node("Mul", ["tt_mean", "half"], ["tt_term"]),
        helper.make_node("Add", ["base", "tt_term"], ["score"]),
    ]
    inits = affine_inits() + [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")]
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, "bert_like", ids_inputs([tt]), outs, inits)
    save(graph, "tests/data/bert_like.onnx", "test model with token_type_ids")


def needs_pixels():
    px = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3])
    nodes = affine_nodes("base")
    nodes += [
        helper.make_node("ReduceSum", ["pixel_values", "axis1"], ["px"], keepdims=0),
        helper.make_node("Add", ["base", "px"], ["score"]),
    ]
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, "needs_pixels", ids_inputs([px]), outs, affine_inits())
    save(graph, "tests/data/needs_pixels.onnx", "test model with an input no column provides")


def reward_transformer():
    rng = np.random.default_rng(20261128)
    d, heads, ff, layers, max_pos = 256, 4, 1024, 2, 512
    dh = d // heads
    w = lambda *shape: rng.normal(0.0, 0.02, size=shape).astype(np.float32)
    inits = common_inits() + [
        numpy_helper.from_array(w(VOCAB, d), "tok_emb"),
        numpy_helper.from_array(w(max_pos, d), "pos_emb"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_i"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "idx1"),
        numpy_helper.from_array(np.array(-10000.0, dtype=np.float32), "neg_big"),
        numpy_helper.from_array(np.array(1.0 / np.sqrt(dh), dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([0, 0, heads, dh], dtype=np.int64), "split_shape"),
        numpy_helper.from_array(np.array([0, 0, d], dtype=np.int64), "merge_shape"),
        numpy_helper.from_array(np.array(1.702, dtype=np.float32), "gelu_k"),
        numpy_helper.from_array(np.ones(d, dtype=np.float32), "ln_g"),
        numpy_helper.from_array(np.zeros(d, dtype=np.float32), "ln_b"),
        numpy_helper.from_array(w(d, 1), "head_w"),
        numpy_helper.from_array(np.array([0.0], dtype=np.float32), "head_b"),
    ]
    nodes = [
        helper.make_node("Gather", ["tok_emb", "input_ids"], ["tok"], axis=0),
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "one_i"], ["seq_len"], axis=0),
        helper.make_node("Range", ["zero_i", "seq_len", "one_i"], ["positions"]),
        helper.make_node("Gather", ["pos_emb", "positions"], ["pos"], axis=0),
        helper.make_node("Add", ["tok", "pos"], ["x0"]),
        # additive attention mask [b, 1, 1, s]: 0 on tokens, -1e4 on padding
        helper.make_node("Cast", ["attention_mask"], ["am_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one_f", "am_f"], ["am_inv"]),
        helper.make_node("Mul", ["am_inv", "neg_big"], ["am_add2"]),
        helper.make_node("Unsqueeze", ["am_add2", "idx1"], ["am_add3"]),
        helper.make_node("Unsqueeze", ["am_add3", "idx1"], ["am_add"]),
    ]
    x = "x0"
    for l in range(layers):
        p = f"l{l}_"
        inits += [
            numpy_helper.from_array(w(d, 3 * d), p + "wqkv"),
            numpy_helper.from_array(np.zeros(3 * d, dtype=np.float32), p + "bqkv"),
            numpy_helper.from_array(w(d, d), p + "wo"),
            numpy_helper.from_array(w(d, ff), p + "w1"),
            numpy_helper.from_array(np.zeros(ff, dtype=np.float32), p + "b1"),
            numpy_helper.from_array(w(ff, d), p + "w2"),
        ]
        nodes += [
            helper.make_node("LayerNormalization", [x, "ln_g", "ln_b"], [p + "ln1"], axis=-1, epsilon=1e-5),
            helper.make_node("MatMul", [p + "ln1", p + "wqkv"], [p + "qkv0"]),
            helper.make_node("Add", [p + "qkv0", p + "bqkv"], [p + "qkv"]),
            helper.make_node("Split", [p + "qkv", p + "split_sizes"], [p + "q0", p + "k0", p + "v0"], axis=-1),
        ]
        inits.append(numpy_helper.from_array(np.array([d, d, d], dtype=np.int64), p + "split_sizes"))
        for t in "qkv":
            nodes += [
                helper.make_node("Reshape", [p + t + "0", "split_shape"], [p + t + "1"]),
                helper.make_node("Transpose", [p + t + "1"], [p + t], perm=[0, 2, 1, 3] if t != "k" else [0, 2, 3, 1]),
            ]
        nodes += [
            helper.make_node("MatMul", [p + "q", p + "k"], [p + "s0"]),
            helper.make_node("Mul", [p + "s0", "scale"], [p + "s1"]),
            helper.make_node("Add", [p + "s1", "am_add"], [p + "s2"]),
            helper.make_node("Softmax", [p + "s2"], [p + "a"], axis=-1),
            helper.make_node("MatMul", [p + "a", p + "v"], [p + "o0"]),
            helper.make_node("Transpose", [p + "o0"], [p + "o1"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [p + "o1", "merge_shape"], [p + "o2"]),
            helper.make_node("MatMul", [p + "o2", p + "wo"], [p + "o3"]),
            helper.make_node("Add", [x, p + "o3"], [p + "x1"]),
            helper.make_node("LayerNormalization", [p + "x1", "ln_g", "ln_b"], [p + "ln2"], axis=-1, epsilon=1e-5),
            helper.make_node("MatMul", [p + "ln2", p + "w1"], [p + "f0"]),
            helper.make_node("Add", [p + "f0", p + "b1"], [p + "f1"]),
            # GELU, sigmoid approximation: x * sigmoid(1.702 x)
            helper.make_node("Mul", [p + "f1", "gelu_k"], [p + "f2"]),
            helper.make_node("Sigmoid", [p + "f2"], [p + "f3"]),
            helper.make_node("Mul", [p + "f1", p + "f3"], [p + "f4"]),
            helper.make_node("MatMul", [p + "f4", p + "w2"], [p + "f5"]),
            helper.make_node("Add", [p + "x1", p + "f5"], [p + "x2"]),
        ]
        x = p + "x2"
    nodes.append(helper.make_node("LayerNormalization", [x, "ln_g", "ln_b"], ["hf"], axis=-1, epsilon=1e-5))
    nodes += masked_mean_nodes("hf", "pooled")
    nodes += [
        helper.make_node("MatMul", ["pooled", "head_w"], ["head0"]),
        helper.make_node("Add", ["head0", "head_b"], ["score"]),
    ]
    out = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])]
    graph = helper.make_graph(nodes, "reward_transformer", ids_inputs(), out, inits)
    save(graph, "models/reward_transformer.onnx", "segscore benchmark model: 2-layer transformer encoder, width 256")


def log_shifted():
    nodes = affine_nodes("affine")
    nodes += [
        helper.make_node("Add", ["affine", "half"], ["shifted"]),
        helper.make_node("Log", ["shifted"], ["score"]),
    ]
    inits = affine_inits() + [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")]
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, "log_shifted", ids_inputs(), outs, inits)
    save(graph, "tests/data/log_shifted.onnx", "test model: log(mean(ids) * 0.001 - 0.5); NaN below id 500, -inf at 500")


def wrong_shape():
    nodes = affine_nodes("affine")
    nodes += [helper.make_node("Concat", ["affine", "affine"], ["score"], axis=0)]
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, "wrong_shape", ids_inputs(), outs, affine_inits())
    save(graph, "tests/data/wrong_shape.onnx", "test model: two scores per row, though it declares one")


def prm(path, causal=True, two_class=False):
    """The per-token causal transformer (see the module docs)."""
    rng = np.random.default_rng(20261129)
    d, heads, ff, layers, hashed, max_pos = 64, 4, 128, 2, 4096, 1024
    dh = d // heads
    w = lambda *shape, sd=0.02: rng.normal(0.0, sd, size=shape).astype(np.float32)
    tok = w(hashed, d, sd=0.1)
    tok[:, 0:2] = 0.0  # channel 0: the token value (added below); channel 1: the running mean
    pos = w(max_pos, d, sd=0.02)
    pos[:, 0:2] = 0.0
    e0 = np.zeros(d, dtype=np.float32)
    e0[0] = 1.0
    inits = common_inits() + [
        numpy_helper.from_array(tok, "tok_emb"),
        numpy_helper.from_array(pos, "pos_emb"),
        numpy_helper.from_array(e0, "e0"),
        numpy_helper.from_array(np.array(hashed, dtype=np.int64), "hashed"),
        numpy_helper.from_array(np.array(7919, dtype=np.int64), "k7919"),
        numpy_helper.from_array(np.array(1000, dtype=np.int64), "k1000"),
        numpy_helper.from_array(np.array(500.0, dtype=np.float32), "f500"),
        numpy_helper.from_array(np.array(-10000.0, dtype=np.float32), "neg_big"),
        numpy_helper.from_array(np.array(1.0 / np.sqrt(dh), dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([0, 0, heads, dh], dtype=np.int64), "split_shape"),
        numpy_helper.from_array(np.array([0, 0, d], dtype=np.int64), "merge_shape"),
        numpy_helper.from_array(np.array(1.702, dtype=np.float32), "gelu_k"),
        numpy_helper.from_array(np.ones(d, dtype=np.float32), "ln_g"),
        numpy_helper.from_array(np.zeros(d, dtype=np.float32), "ln_b"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one_1d"),
    ]
    nodes = [
        # v(t) = ((t * 7919) mod 1000) / 500 - 1, in channel 0
        helper.make_node("Mul", ["input_ids", "k7919"], ["t7919"]),
        helper.make_node("Mod", ["t7919", "k1000"], ["tmod"]),
        helper.make_node("Cast", ["tmod"], ["tmod_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["tmod_f", "f500"], ["v_half"]),
        helper.make_node("Sub", ["v_half", "one_f"], ["v"]),
        helper.make_node("Unsqueeze", ["v", "axis2"], ["v3"]),
        helper.make_node("Mul", ["v3", "e0"], ["v_chan"]),
        helper.make_node("Mod", ["input_ids", "hashed"], ["ids_h"]),
        helper.make_node("Gather", ["tok_emb", "ids_h"], ["tok"], axis=0),
        helper.make_node("Gather", ["pos_emb", "position_ids"], ["pos"], axis=0),
        helper.make_node("Add", ["tok", "pos"], ["x00"]),
        helper.make_node("Add", ["x00", "v_chan"], ["x0"]),
        # key padding mask [b, 1, 1, s]
        helper.make_node("Cast", ["attention_mask"], ["am_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one_f", "am_f"], ["am_inv"]),
        helper.make_node("Mul", ["am_inv", "neg_big"], ["am_add2"]),
        helper.make_node("Unsqueeze", ["am_add2", "one_1d"], ["am_add3"]),
        helper.make_node("Unsqueeze", ["am_add3", "one_1d"], ["key_mask"]),
    ]
    if causal:
        # causal mask [s, s]: 0 on and below the diagonal, -1e4 above
        nodes += [
            helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
            helper.make_node("Gather", ["ids_shape", "one_1d"], ["seq_1d"], axis=0),
            helper.make_node("Concat", ["seq_1d", "seq_1d"], ["ss"], axis=0),
            helper.make_node("ConstantOfShape", ["ss"], ["ones_ss"], value=numpy_helper.from_array(np.array([1.0], dtype=np.float32))),
            helper.make_node("Trilu", ["ones_ss"], ["lower"], upper=0),
            helper.make_node("Sub", ["one_f", "lower"], ["upper_f"]),
            helper.make_node("Mul", ["upper_f", "neg_big"], ["causal"]),
            helper.make_node("Add", ["key_mask", "causal"], ["mask"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["key_mask"], ["mask"]))
    x = "x0"
    for l in range(layers):
        p = f"l{l}_"
        wq, wk = w(d, d), w(d, d)
        wv, wo = w(d, d), w(d, d)
        if l == 0:
            # The value channel's running mean: head 0 carries v (channel 0) to channel 1.
            wv[:, 1] = 0.0
            wv[0, 1] = 1.0
            wo[:, 1] = 0.0
            wo[1, 1] = 1.0
        wv[:, 0] = 0.0
        wo[:, 0] = 0.0
        inits += [
            numpy_helper.from_array(wq, p + "wq"),
            numpy_helper.from_array(wk, p + "wk"),
            numpy_helper.from_array(wv, p + "wv"),
            numpy_helper.from_array(wo, p + "wo"),
            numpy_helper.from_array(w(d, ff), p + "w1"),
            numpy_helper.from_array(np.zeros(ff, dtype=np.float32), p + "b1"),
            numpy_helper.from_array(w(ff, d, sd=0.01), p + "w2"),
        ]
        nodes += [
            helper.make_node("LayerNormalization", [x, "ln_g", "ln_b"], [p + "ln1"], axis=-1, epsilon=1e-5),
            helper.make_node("MatMul", [p + "ln1", p + "wq"], [p + "q0"]),
            helper.make_node("MatMul", [p + "ln1", p + "wk"], [p + "k0"]),
            # values from the residual stream itself, so the value channel is kept exactly
            helper.make_node("MatMul", [x, p + "wv"], [p + "v0"]),
        ]
        for t in "qkv":
            nodes += [
                helper.make_node("Reshape", [p + t + "0", "split_shape"], [p + t + "1"]),
                helper.make_node("Transpose", [p + t + "1"], [p + t], perm=[0, 2, 1, 3] if t != "k" else [0, 2, 3, 1]),
            ]
        nodes += [
            helper.make_node("MatMul", [p + "q", p + "k"], [p + "s0"]),
            helper.make_node("Mul", [p + "s0", "scale"], [p + "s1"]),
            helper.make_node("Add", [p + "s1", "mask"], [p + "s2"]),
            helper.make_node("Softmax", [p + "s2"], [p + "a"], axis=-1),
            helper.make_node("MatMul", [p + "a", p + "v"], [p + "o0"]),
            helper.make_node("Transpose", [p + "o0"], [p + "o1"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [p + "o1", "merge_shape"], [p + "o2"]),
            helper.make_node("MatMul", [p + "o2", p + "wo"], [p + "o3"]),
            helper.make_node("Add", [x, p + "o3"], [p + "x1"]),
            helper.make_node("LayerNormalization", [p + "x1", "ln_g", "ln_b"], [p + "ln2"], axis=-1, epsilon=1e-5),
            helper.make_node("MatMul", [p + "ln2", p + "w1"], [p + "f0"]),
            helper.make_node("Add", [p + "f0", p + "b1"], [p + "f1"]),
            helper.make_node("Mul", [p + "f1", "gelu_k"], [p + "f2"]),
            helper.make_node("Sigmoid", [p + "f2"], [p + "f3"]),
            helper.make_node("Mul", [p + "f1", p + "f3"], [p + "f4"]),
            helper.make_node("MatMul", [p + "f4", p + "w2"], [p + "f5"]),
            helper.make_node("Add", [p + "x1", p + "f5"], [p + "x2"]),
        ]
        x = p + "x2"
    head = w(d, 1, sd=0.01)
    head[0, 0] = 0.0
    head[1, 0] = 1.5
    inits += [
        numpy_helper.from_array(head, "head_w"),
        numpy_helper.from_array(np.array(0.8, dtype=np.float32), "head_amp"),
    ]
    nodes += [
        helper.make_node("MatMul", [x, "head_w"], ["h0"]),
        helper.make_node("Tanh", ["h0"], ["h1"]),
        helper.make_node("Mul", ["h1", "head_amp"], ["value3"]),
    ]
    dims = ["batch", "seq"]
    ins = [
        helper.make_tensor_value_info(n, TensorProto.INT64, dims)
        for n in ["input_ids", "attention_mask", "position_ids"]
    ]
    if two_class:
        inits.append(numpy_helper.from_array(np.array([0.0, 4.0], dtype=np.float32), "class_w"))
        nodes.append(helper.make_node("Mul", ["value3", "class_w"], ["logits"]))
        out = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", 2])]
    else:
        nodes.append(helper.make_node("Squeeze", ["value3", "axis2"], ["scores"]))
        out = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "seq"])]
    used = {i for n in nodes for i in n.input}
    inits = [i for i in inits if i.name in used]
    graph = helper.make_graph(nodes, "prm", ins, out, inits)
    kind = "causal" if causal else "bidirectional"
    save(graph, path, f"segscore per-token reward model ({kind}{', two-class head' if two_class else ''}): value head read at segment ends")


def prefix_checksum():
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.DOUBLE),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.DOUBLE),
        helper.make_node("Shape", ["input_ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "one_i"], ["seq"], axis=0),
        helper.make_node("Cast", ["seq"], ["seq_d"], to=TensorProto.DOUBLE),
        helper.make_node("Add", ["seq_d", "one_d"], ["seq_plus"]),
        helper.make_node("Range", ["one_d", "seq_plus", "one_d"], ["weights"]),
        helper.make_node("Mul", ["ids_f", "weights"], ["weighted"]),
        helper.make_node("Mul", ["weighted", "mask_f"], ["masked"]),
        helper.make_node("CumSum", ["masked", "axis_1"], ["scores"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float64), "one_d"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "axis_1"),
    ]
    out = [helper.make_tensor_value_info("scores", TensorProto.DOUBLE, ["batch", "seq"])]
    graph = helper.make_graph(nodes, "prefix_checksum", ids_inputs(), out, inits)
    save(graph, "tests/data/prefix_checksum.onnx", "test model: per-token checksum of the token sequence so far")


def wordpiece_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    corpus = [
        "The sum of two and three is five, therefore the answer is 5.",
        "Zürich is über cold; café au lait costs 3.5 francs. Naïve résumé!",
        "東京は日本の首都です。数学の問題を解きます。",
        "Step by step: first add, then subtract, then multiply and divide.",
        "Emoji 🙂 and dashes – and quotes \"like this\" appear in real text.",
    ] * 20
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<step>"]
    )
    tok.train_from_iterator(corpus, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=128)
    path = os.path.join(ROOT, "tests/data/wordpiece-tokenizer.json")
    tok.save(path)
    print(f"wrote tests/data/wordpiece-tokenizer.json ({os.path.getsize(path)} bytes)")


BUILDERS = {
    "reward_small": reward_small,
    "reward_small_external": reward_small_external,
    "reward_transformer": reward_transformer,
    "affine_mean": affine_mean,
    "affine_batch1": lambda: affine_fixed_batch(1),
    "affine_batch3": lambda: affine_fixed_batch(3),
    "affine_f16": lambda: affine_half(TensorProto.FLOAT16, "affine_f16"),
    "affine_bf16": lambda: affine_half(TensorProto.BFLOAT16, "affine_bf16"),
    "affine_mask_f32": lambda: affine_mask(TensorProto.FLOAT, "affine_mask_f32"),
    "affine_mask_f16": lambda: affine_mask(TensorProto.FLOAT16, "affine_mask_f16"),
    "affine_mask_bool": lambda: affine_mask(TensorProto.BOOL, "affine_mask_bool"),
    "mean_no_mask": mean_no_mask,
    "last_nonpad": last_nonpad,
    "affine_two_class": affine_two_class,
    "affine_b11": affine_b11,
    "int_count": int_count,
    "bert_like": bert_like,
    "needs_pixels": needs_pixels,
    "log_shifted": log_shifted,
    "wrong_shape": wrong_shape,
    "prm_causal": lambda: prm("models/prm_causal.onnx"),
    "prm_bidirectional": lambda: prm("tests/data/prm_bidirectional.onnx", causal=False),
    "prm_two_class": lambda: prm("tests/data/prm_two_class.onnx", two_class=True),
    "prefix_checksum": prefix_checksum,
    "wordpiece_tokenizer": wordpiece_tokenizer,
}


if __name__ == "__main__":
    # `python3 models/build_models.py` builds every model; name some to build only those.
    import sys

    for name in sys.argv[1:] or BUILDERS:
        BUILDERS[name]()

