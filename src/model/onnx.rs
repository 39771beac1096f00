//! Reads what ONNX Runtime does not tell: the vocabulary size of a model's token embedding.
//!
//! Only the few fields of `onnx.proto` needed are declared; prost skips the rest (weights
//! included) while decoding. The embedding is found by following the graph input `input_ids`
//! through value-preserving nodes (Cast, Identity, Reshape, Squeeze, Unsqueeze, Flatten) to a
//! `Gather` on axis 0 whose data is a rank-2 initializer `[vocab, width]`: a token id outside
//! `[0, vocab)` would make ONNX Runtime fail (or, negative, index from the end).

use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, tag = "3")]
    i: i64,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(string, tag = "8")]
    name: String,
}

/// A token embedding found in a model: the initializer's name and its first dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedding {
    /// The embedding initializer's name.
    pub name: String,
    /// Its rows: valid token ids are `0..vocab`.
    pub vocab: u64,
}

const VALUE_PRESERVING: [&str; 6] = ["Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten"];

/// The smallest embedding the graph input `input` indexes, if the model shows one. Bytes
/// that are not an ONNX model, or a graph without such an embedding, give `None`.
pub fn embedding_for_input(model: &[u8], input: &str) -> Option<Embedding> {
    let graph = ModelProto::decode(model).ok()?.graph?;
    // Names carrying the input's values unchanged.
    let mut carriers = vec![input.to_string()];
    let mut i = 0;
    while i < carriers.len() {
        let name = carriers[i].clone();
        for n in &graph.node {
            if VALUE_PRESERVING.contains(&n.op_type.as_str()) && n.input.first() == Some(&name) {
                for o in &n.output {
                    if !carriers.contains(o) {
                        carriers.push(o.clone());
                    }
                }
            }
        }
        i += 1;
    }
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Gather" && n.input.len() == 2 && carriers.contains(&n.input[1]))
        .filter(|n| n.attribute.iter().all(|a| a.name != "axis" || a.i == 0))
        .filter_map(|n| {
            let data = graph.initializer.iter().find(|t| t.name == n.input[0])?;
            (data.dims.len() == 2 && data.dims[0] > 0).then(|| Embedding {
                name: data.name.clone(),
                vocab: data.dims[0] as u64,
            })
        })
        .min_by_key(|e| e.vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_demo_models_embedding() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/reward_small.onnx")).unwrap();
        assert_eq!(
            embedding_for_input(&bytes, "input_ids"),
            Some(Embedding {
                name: "embedding".into(),
                vocab: 1000
            })
        );
        assert_eq!(embedding_for_input(&bytes, "attention_mask"), None);
    }

    #[test]
    fn no_embedding_or_not_a_model() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/affine_mean.onnx"
        ))
        .unwrap();
        assert_eq!(embedding_for_input(&bytes, "input_ids"), None);
        assert_eq!(embedding_for_input(b"\xff\xff not onnx", "input_ids"), None);
        assert_eq!(embedding_for_input(b"", "input_ids"), None);
    }

    #[test]
    fn follows_casts() {
        let graph = GraphProto {
            node: vec![
                NodeProto {
                    input: vec!["input_ids".into()],
                    output: vec!["ids64".into()],
                    op_type: "Cast".into(),
                    attribute: vec![],
                },
                NodeProto {
                    input: vec!["emb".into(), "ids64".into()],
                    output: vec!["x".into()],
                    op_type: "Gather".into(),
                    attribute: vec![],
                },
            ],
            initializer: vec![TensorProto {
                dims: vec![32, 4],
                name: "emb".into(),
            }],
        };
        let bytes = ModelProto { graph: Some(graph) }.encode_to_vec();
        assert_eq!(
            embedding_for_input(&bytes, "input_ids").map(|e| e.vocab),
            Some(32)
        );
    }
}
