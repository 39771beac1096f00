//! Reads what ONNX Runtime does not tell: the vocabulary size of a model's token embedding,
//! whether it compares the token ids with a constant (a pad id), and the external data files
//! holding its weights.
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
    #[prost(message, repeated, tag = "25")]
    functions: Vec<FunctionProto>,
}

#[derive(Clone, PartialEq, Message)]
struct FunctionProto {
    #[prost(message, repeated, tag = "7")]
    node: Vec<NodeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "15")]
    sparse_initializer: Vec<SparseTensorProto>,
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
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(message, optional, boxed, tag = "6")]
    g: Option<Box<GraphProto>>,
    #[prost(message, repeated, tag = "10")]
    tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    graphs: Vec<GraphProto>,
    #[prost(message, optional, tag = "22")]
    sparse_tensor: Option<SparseTensorProto>,
    #[prost(message, repeated, tag = "23")]
    sparse_tensors: Vec<SparseTensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
    /// 1: the values are in an external file (`external_data`'s `location`).
    #[prost(int32, tag = "14")]
    data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    values: Option<TensorProto>,
    #[prost(message, optional, tag = "2")]
    indices: Option<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
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

/// A model file's graph as far as segscore reads it, decoded once from the file's bytes.
/// Bytes that are not an ONNX model give an empty graph, with no embedding, comparison or
/// external file: ONNX Runtime then says what is wrong with them.
#[derive(Debug, Clone, Default)]
pub struct ModelGraph {
    model: ModelProto,
}

impl ModelGraph {
    /// Decodes a model file's bytes.
    pub fn decode(bytes: &[u8]) -> Self {
        ModelGraph {
            model: ModelProto::decode(bytes).unwrap_or_default(),
        }
    }

    /// The smallest embedding the graph input `input` indexes, if the model shows one.
    pub fn embedding_for_input(&self, input: &str) -> Option<Embedding> {
        let graph = self.model.graph.as_ref()?;
        let carriers = carriers(graph, input);
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

    /// Whether the graph compares input `input`'s values themselves (an `Equal` node on them),
    /// as `transformers`' sequence classifiers for decoder models compare `input_ids` with the
    /// pad token id to find each row's last token: such a model reads padding by its id, not
    /// by the attention mask.
    pub fn compares_input(&self, input: &str) -> bool {
        let Some(graph) = &self.model.graph else {
            return false;
        };
        let carriers = carriers(graph, input);
        graph
            .node
            .iter()
            .any(|n| n.op_type == "Equal" && n.input.iter().any(|i| carriers.contains(i)))
    }

    /// The external data files the model's tensors name (`location`, relative to the model's
    /// folder), each once, in the order the model first names them; empty for a model that
    /// holds its weights. A tensor stored externally without a location is an error.
    pub fn external_data_files(&self) -> Result<Vec<String>, String> {
        let mut tensors = Vec::new();
        if let Some(g) = &self.model.graph {
            graph_tensors(g, &mut tensors);
        }
        for f in &self.model.functions {
            f.node.iter().for_each(|n| node_tensors(n, &mut tensors));
        }
        let mut files: Vec<String> = Vec::new();
        for t in tensors {
            let location = t.external_data.iter().find(|e| e.key == "location");
            match location {
                Some(l) if !files.contains(&l.value) => files.push(l.value.clone()),
                Some(_) => {}
                None if t.data_location == 1 => {
                    return Err(format!(
                        "tensor `{}` is stored in an external file that the model does not name",
                        t.name
                    ))
                }
                None => {}
            }
        }
        Ok(files)
    }
}

/// The names carrying graph input `input`'s values unchanged: it, and the outputs of
/// value-preserving nodes fed by one of them.
fn carriers(graph: &GraphProto, input: &str) -> Vec<String> {
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
    carriers
}

/// Every tensor of a graph: initializers, sparse ones, and those of its nodes' attributes.
fn graph_tensors<'a>(g: &'a GraphProto, out: &mut Vec<&'a TensorProto>) {
    out.extend(&g.initializer);
    g.sparse_initializer.iter().for_each(|s| sparse_tensors(s, out));
    g.node.iter().for_each(|n| node_tensors(n, out));
}

fn node_tensors<'a>(n: &'a NodeProto, out: &mut Vec<&'a TensorProto>) {
    for a in &n.attribute {
        out.extend(a.t.iter().chain(&a.tensors));
        a.sparse_tensor
            .iter()
            .chain(&a.sparse_tensors)
            .for_each(|s| sparse_tensors(s, out));
        a.g.iter()
            .map(|g| &**g)
            .chain(&a.graphs)
            .for_each(|g| graph_tensors(g, out));
    }
}

fn sparse_tensors<'a>(s: &'a SparseTensorProto, out: &mut Vec<&'a TensorProto>) {
    out.extend(s.values.iter().chain(&s.indices));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_demo_models_embedding() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/reward_small.onnx")).unwrap();
        assert_eq!(
            ModelGraph::decode(&bytes).embedding_for_input("input_ids"),
            Some(Embedding {
                name: "embedding".into(),
                vocab: 1000
            })
        );
        assert_eq!(
            ModelGraph::decode(&bytes).embedding_for_input("attention_mask"),
            None
        );
    }

    #[test]
    fn no_embedding_or_not_a_model() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/affine_mean.onnx"
        ))
        .unwrap();
        assert_eq!(ModelGraph::decode(&bytes).embedding_for_input("input_ids"), None);
        assert_eq!(
            ModelGraph::decode(b"\xff\xff not onnx").embedding_for_input("input_ids"),
            None
        );
        assert_eq!(ModelGraph::decode(b"").embedding_for_input("input_ids"), None);
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
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = ModelProto {
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(
            ModelGraph::decode(&bytes)
                .embedding_for_input("input_ids")
                .map(|e| e.vocab),
            Some(32)
        );
    }

    #[test]
    fn a_comparison_of_the_token_ids_is_found() {
        let read = |path: &str| std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let last_nonpad = ModelGraph::decode(&read("tests/data/last_nonpad.onnx"));
        assert!(last_nonpad.compares_input("input_ids"));
        assert!(!last_nonpad.compares_input("attention_mask"));
        assert!(!ModelGraph::decode(&read("models/reward_small.onnx")).compares_input("input_ids"));
        assert!(!ModelGraph::decode(b"\xff\xff not onnx").compares_input("input_ids"));
    }

    fn external(name: &str, location: Option<&str>) -> TensorProto {
        let entry = |key: &str, value: &str| StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        };
        TensorProto {
            name: name.into(),
            external_data: location
                .map(|l| vec![entry("location", l), entry("offset", "0"), entry("length", "64")])
                .unwrap_or_default(),
            data_location: 1,
            ..Default::default()
        }
    }

    #[test]
    fn external_data_files_are_found_in_initializers_subgraphs_and_functions() {
        let inline = TensorProto {
            name: "bias".into(),
            ..Default::default()
        };
        // An `If` node whose branch holds a tensor of a second file; a sparse initializer's
        // values in the first file again; a function's Constant in a third.
        let branch = GraphProto {
            initializer: vec![external("w_branch", Some("branch.bin"))],
            ..Default::default()
        };
        let node = |attribute: AttributeProto| NodeProto {
            attribute: vec![attribute],
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![node(AttributeProto {
                name: "then_branch".into(),
                g: Some(Box::new(branch)),
                ..Default::default()
            })],
            initializer: vec![inline.clone(), external("w1", Some("model.onnx.data"))],
            sparse_initializer: vec![SparseTensorProto {
                values: Some(external("sparse", Some("model.onnx.data"))),
                indices: Some(inline),
            }],
        };
        let function = FunctionProto {
            node: vec![node(AttributeProto {
                name: "value".into(),
                t: Some(external("c", Some("weights/constants.bin"))),
                ..Default::default()
            })],
        };
        let model = ModelProto {
            graph: Some(graph),
            functions: vec![function],
        };
        assert_eq!(
            ModelGraph::decode(&model.encode_to_vec())
                .external_data_files()
                .unwrap(),
            ["model.onnx.data", "branch.bin", "weights/constants.bin"]
        );
        let unnamed = ModelProto {
            graph: Some(GraphProto {
                initializer: vec![external("lost", None)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = ModelGraph::decode(&unnamed.encode_to_vec())
            .external_data_files()
            .unwrap_err();
        assert!(e.contains("`lost`"), "{e}");
        // A model holding its weights, or bytes that are no model: none.
        let demo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/reward_small.onnx")).unwrap();
        assert_eq!(
            ModelGraph::decode(&demo).external_data_files().unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            ModelGraph::decode(b"\xff\xff not onnx")
                .external_data_files()
                .unwrap(),
            Vec::<String>::new()
        );
    }
}
