#!/usr/bin/env python3
"""Builds the small ONNX models segscore ships, with fixed weights (deterministic).

    python3 models/build_models.py        # needs: pip install onnx numpy

models/reward_small.onnx   the demo reward model:
    input_ids, attention_mask (int64 [batch, seq]) -> score (float32 [batch, 1])
    token embedding (vocab 1000, width 8) -> masked mean pool -> tanh MLP (8 -> 16 -> 1).
    Embedding column 0 is the demo data's token value v(t) (see below) plus fixed noise,
    and the MLP reads mostly that column, so the model approximates the demo's scoring
    rule without being exact: residuals are small but real.

tests/data/*.onnx          tiny models the tests use for exact expectations:
    affine_mean.onnx   score = masked_mean(input_ids) * 0.001 - 1.0   ([batch]),
                       token_count = sum(attention_mask)               ([batch])
    bert_like.onnx     as affine_mean's score, plus token_type_ids (added as 0.5 * masked mean)
    needs_pixels.onnx  also asks for a float input `pixel_values` that no column provides

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


def ids_inputs(extra=()):
    dims = ["batch", "seq"]
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


if __name__ == "__main__":
    reward_small()
    affine_mean()
    bert_like()
    needs_pixels()
