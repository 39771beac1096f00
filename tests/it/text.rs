//! Text input (issue 10): token sequences against the Python `tokenizers` library, one pass
//! against per-prefix calls, per-token outputs, `--prediction cumulative`, `too_long`, threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::common::*;

fn gpt2() -> PathBuf {
    repo().join("models/gpt2-tokenizer.json")
}

fn wordpiece() -> PathBuf {
    repo().join("tests/data/wordpiece-tokenizer.json")
}

fn causal() -> PathBuf {
    repo().join("models/prm_causal.onnx")
}

/// One generation: id, prompt, segment texts (None: a null text), cumulative scores.
struct Gen {
    id: String,
    prompt: String,
    segments: Vec<Option<String>>,
}

fn gen(id: &str, prompt: &str, segments: &[&str]) -> Gen {
    Gen {
        id: id.into(),
        prompt: prompt.into(),
        segments: segments.iter().map(|s| Some(s.to_string())).collect(),
    }
}

/// Writes generations as rows: generation_id, segment_index, cumulative_score (0.1 k), base
/// (0.05), prompt, text.
fn write_text(path: &Path, gens: &[Gen]) {
    let mut rows: Vec<(String, i64, f64, String, Option<String>)> = Vec::new();
    for g in gens {
        for (k, s) in g.segments.iter().enumerate() {
            rows.push((
                g.id.clone(),
                k as i64,
                0.1 * (k as f64 + 1.0),
                g.prompt.clone(),
                s.clone(),
            ));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("generation_id", DataType::Utf8, false),
        Field::new("segment_index", DataType::Int64, false),
        Field::new("cumulative_score", DataType::Float64, false),
        Field::new("base", DataType::Float64, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.clone()))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|_| 0.05))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3.clone()))),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.4.clone()).collect::<Vec<_>>(),
        )),
    ];
    write_batch(path, &RecordBatch::try_new(schema, cols).unwrap());
}

/// Runs `segscore run` on text input with these flags (provider cpu, quiet).
fn run_text(
    input: &Path,
    model: &Path,
    tokenizer: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "--provider",
        "cpu",
        "-q",
        "--overwrite",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--text-col",
        "text",
    ];
    args.extend_from_slice(extra);
    run(&[input], model, out, &args)
}

/// The Python `tokenizers` reference (tests/tokenize_reference.py).
fn reference(tokenizer: &Path, separator: Option<&str>, gens: &[Gen], pieces: &[&str]) -> serde_json::Value {
    let job = serde_json::json!({
        "tokenizer": tokenizer,
        "separator": separator,
        "generations": gens.iter().map(|g| serde_json::json!({
            "prompt": g.prompt,
            "segments": g.segments.iter().map(|s| s.clone().unwrap_or_default()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pieces": pieces,
    });
    let mut child = Command::new("python3")
        .arg(repo().join("tests/tokenize_reference.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-python-deps.sh installs the reference packages)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), job.to_string().as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "reference: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Real text: Unicode (accents, CJK, emoji), a long segment, punctuation.
fn real_text() -> Vec<Gen> {
    let long = "Step by step, we add the numbers; then we subtract three and multiply by two. ".repeat(25);
    vec![
        gen(
            "a",
            "What is 2+3? Explain.",
            &["First, add 2 and 3.", "That gives 5 🙂.", "So the answer is 5."],
        ),
        gen(
            "b",
            "Zürich, café, naïve — résumé?",
            &["東京は日本の首都です。", "Über alles: 数学!", &long],
        ),
        gen(
            "c",
            "",
            &["A prompt-less generation.", "  leading spaces and\ttabs  "],
        ),
    ]
}

fn predictions(out: &Path) -> BTreeMap<(String, i64), f64> {
    by_key(&read_segments(out), "predicted_score")
}

/// One pass's predictions (in `one`) against per-prefix calls' (in `per`): `n` segments, each
/// within 1e-5.
fn assert_passes_agree(one: &Path, per: &Path, n: usize) {
    let (a, b) = (predictions(one), predictions(per));
    assert_eq!(a.len(), n);
    for (k, v) in &a {
        assert!(
            (v - b[k]).abs() <= 1e-5,
            "{k:?}: one pass {v}, per prefix {}",
            b[k]
        );
    }
}

#[test]
fn token_sequences_equal_the_python_tokenizers_library() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text.parquet");
    let gens = real_text();
    write_text(&input, &gens);
    let checksum = repo().join("tests/data/prefix_checksum.onnx");
    // Separators: none, a newline, a special token of each tokenizer.
    for (tokenizer, separator) in [
        (gpt2(), None),
        (gpt2(), Some("\n")),
        (gpt2(), Some("<|endoftext|>")),
        (wordpiece(), Some("<step>")),
        (wordpiece(), Some(" ; ")),
    ] {
        let want = reference(&tokenizer, separator, &gens, &[]);
        for pass in ["generation", "segment"] {
            let out = tmp.path().join("out");
            let mut extra = vec!["--prompt-col", "prompt", "--pass", pass];
            if let Some(s) = separator {
                extra.extend(["--segment-separator", s]);
            }
            let o = run_text(&input, &checksum, &tokenizer, &out, &extra);
            assert!(o.status.success(), "{separator:?} {pass}: {}", stderr(&o));
            let got = predictions(&out);
            for (g, sums) in gens.iter().zip(want["checksums"].as_array().unwrap()) {
                for (k, sum) in sums.as_array().unwrap().iter().enumerate() {
                    assert_eq!(
                        got[&(g.id.clone(), k as i64)],
                        sum.as_f64().unwrap(),
                        "{} separator {separator:?} pass {pass}: generation {} segment {k}",
                        tokenizer.display(),
                        g.id
                    );
                }
            }
            // The tokenizer's sha256 and the separator are recorded.
            let s = summary(&out);
            assert_eq!(s["text"]["segment_separator"], separator.unwrap_or(""));
            assert_eq!(s["text"]["tokenizer_sha256"].as_str().unwrap().len(), 64);
            let meta = parquet_metadata(&parts(&out.join("segments"))[0]);
            assert_eq!(meta["segscore.segment_separator"], separator.unwrap_or(""));
            assert_eq!(
                meta["segscore.tokenizer_sha256"],
                s["text"]["tokenizer_sha256"].as_str().unwrap()
            );
        }
    }
    // tokenize() in SQL gives each text's ids, as the library does.
    let pieces: Vec<String> = gens
        .iter()
        .flat_map(|g| g.segments.iter().flatten().cloned())
        .collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    for tokenizer in [gpt2(), wordpiece()] {
        let want = reference(&tokenizer, None, &[], &refs);
        let o = segscore(&[
            "sql", "--tokenizer", tokenizer.to_str().unwrap(), "--table", &format!("t={}", input.display()),
            "SELECT text, tokenize(text) AS ids, tokenize(prompt, true) AS p FROM t ORDER BY generation_id, segment_index",
            "--format", "json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for (row, ids) in rows.iter().zip(want["pieces"].as_array().unwrap()) {
            assert_eq!(&row["ids"], ids, "{}: {}", tokenizer.display(), row["text"]);
        }
        // The prompt keeps the tokenizer's special tokens: [CLS] ... [SEP] for WordPiece.
        let with_special = reference(&tokenizer, None, &gens, &[]);
        assert_eq!(&rows[0]["p"], &with_special["prompts"][0]);
    }
    // A NULL flag is no flag (it was a planning error); without --tokenizer or --model, the
    // error says which flag the function needs.
    let ids = |q: &str| {
        let o = segscore(&[
            "sql",
            "--tokenizer",
            wordpiece().to_str().unwrap(),
            "--format",
            "csv",
            q,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let plain = ids("SELECT tokenize('the cat', false) AS ids");
    assert_eq!(ids("SELECT tokenize('the cat', NULL) AS ids"), plain);
    // CSV shows a list as text (it failed: "Nested type List(Int32) is not supported in CSV").
    let want: Vec<String> = reference(&wordpiece(), None, &[], &["the cat"])["pieces"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(plain, format!("ids\n\"[{}]\"\n", want.join(", ")));
    let o = segscore(&["sql", "SELECT tokenize('the cat')"]);
    assert_fails(&o, 2, "(tokenize needs --tokenizer FILE)");
    let o = segscore(&["sql", "SELECT reward_model([1, 2])"]);
    assert_fails(&o, 2, "(reward_model needs --model FILE)");
}

/// `segscore run` on the text demo's data, with these flags.
fn run_demo_text(input: &Path, model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let tokenizer = gpt2();
    let mut args = vec![
        "--provider",
        "cpu",
        "-q",
        "--overwrite",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
    ];
    args.extend_from_slice(&DEMO_TEXT);
    args.extend_from_slice(extra);
    run(&[input], model, out, &args)
}

/// `reward_model_text` in `segscore sql` (with `--model` and `--tokenizer`) over each
/// generation's lists gives the reads a run predicts, one per segment in the lists' order; lists
/// of different lengths and a list of numbers for the texts are refused, saying so.
#[test]
fn reward_model_text_in_sql_reads_as_a_run_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    demo_text(&input, 300, 1);
    let out = tmp.path().join("out");
    let o = run_demo_text(&input, &causal(), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (model, tokenizer) = (causal(), gpt2());
    let sql = |q: &str| {
        let args = ["sql", "-q", "--format", "csv", "-m", model.to_str().unwrap()];
        let args = [&args[..], &["--tokenizer", tokenizer.to_str().unwrap(), q]].concat();
        segscore(&args)
    };
    let q = format!(
        "SELECT generation_id, unnest(i) AS segment_index, unnest(r)['read'] AS v FROM (\
         SELECT generation_id, list(segment_index ORDER BY segment_index) AS i, \
         reward_model_text(list(segment_index ORDER BY segment_index), list(step ORDER BY segment_index), \
         first(prompt ORDER BY segment_index), chr(10), 'generation') AS r \
         FROM '{}' GROUP BY generation_id)",
        input.join("*.parquet").display()
    );
    let o = sql(&q);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = predictions(&out);
    let got: BTreeMap<(String, i64), f64> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[0].to_string(), f[1].parse().unwrap()), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), 300);
    for (k, v) in &want {
        assert_eq!(got[k], *v, "{k:?}");
    }
    let o = sql("SELECT reward_model_text([1, 2], ['a'], 'p', '', 'generation')");
    assert_fails(&o, 2, "row 0 of its input has 2 segment indexes and 1 texts");
    let o = sql("SELECT reward_model_text([1], [1], 'p', '', 'generation')");
    assert_fails(&o, 2, "the texts must be a list of texts, got List(Int64)");
    let o = segscore(&[
        "sql",
        "-q",
        "-m",
        model.to_str().unwrap(),
        "SELECT reward_model_text([1], ['a'], '', '', 'segment')",
    ]);
    assert_fails(
        &o,
        2,
        "(reward_model_text needs --model FILE and --tokenizer FILE)",
    );
}

#[test]
fn one_pass_equals_per_prefix_calls_on_the_causal_model() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    demo_text(&input, 600, 2);
    let (one, per) = (tmp.path().join("one"), tmp.path().join("per"));
    let o = run_demo_text(&input, &causal(), &one, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_demo_text(&input, &causal(), &per, &["--pass", "segment"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_passes_agree(&one, &per, 600);
    let s = summary(&one);
    assert_eq!(s["text"]["pass"], "generation");
    assert_eq!(s["score_output"], "per token");
    // The bundled model's default limit is its position embedding: 1024 tokens.
    assert_eq!(s["max_length"], 1024);
    let check = &s["text"]["one_pass_check"];
    assert!(check["generations"].as_u64().unwrap() >= 2, "{check}");
    assert!(check["max_abs_difference"].as_f64().unwrap() <= 1e-5, "{check}");
    assert!(summary(&per)["text"]["one_pass_check"].is_null());
}

/// A per-token model called on one-token sequences gives `[batch, 1]`, which also reads as one
/// score per sequence: such a call stopped the run ("per sequence where the model declares per
/// token"). One-token generations and segments now score, in both passes and with token ids.
#[test]
fn one_token_sequences_score_with_a_per_token_model() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text.parquet");
    // "short" and "\n" are one GPT-2 token each; no prompt.
    write_text(
        &input,
        &[
            gen("a", "", &["short"]),
            gen("b", "", &["short", "\n"]),
            gen("c", "", &["\n"]),
        ],
    );
    let (one, per) = (tmp.path().join("one"), tmp.path().join("per"));
    for (out, extra) in [
        (&one, &["--batch-size", "1"][..]),
        (&per, &["--pass", "segment"][..]),
    ] {
        let o = run_text(&input, &causal(), &gpt2(), out, extra);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_passes_agree(&one, &per, 4);
    // Token ids, one call per row: the checksum model's score at a one-token row is its id.
    let ids = tmp.path().join("ids.parquet");
    write_rows(
        &ids,
        &[
            row("a", 0, 0.1, &[5]),
            row("a", 1, 0.2, &[7]),
            row("b", 0, 0.3, &[2, 3]),
        ],
    );
    let out = tmp.path().join("ids");
    let checksum = repo().join("tests/data/prefix_checksum.onnx");
    run_ok(
        &[&ids],
        &checksum,
        &out,
        &["--provider", "cpu", "--batch-size", "1"],
    );
    let got = by_key(&read_segments(&out), "predicted_score");
    let want: BTreeMap<(String, i64), f64> = [(("a", 0), 5.0), (("a", 1), 7.0), (("b", 0), 2.0 + 3.0 * 2.0)]
        .into_iter()
        .map(|((g, k), v)| ((g.to_string(), k), v))
        .collect();
    assert_eq!(got, want);
}

/// `--segment-separator "\n"` as the help writes it, typed in a shell, is a backslash and an
/// `n`: it was appended as those two characters. The escapes `\n`, `\t`, `\r` and `\\` are
/// read as the characters they name; the run equals one given a real newline.
#[test]
fn segment_separator_escapes_are_the_characters_they_name() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text.parquet");
    write_text(
        &input,
        &[
            gen("a", "Q", &["one", "two", "three"]),
            gen("b", "Q", &["four", "five"]),
        ],
    );
    let sep = |out: &str, separator: &str| {
        let out = tmp.path().join(out);
        let o = run_text(
            &input,
            &causal(),
            &gpt2(),
            &out,
            &["--segment-separator", separator],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let s = summary(&out);
        (
            predictions(&out),
            s["text"]["segment_separator"].as_str().unwrap().to_string(),
        )
    };
    let (real, real_sep) = sep("real", "\n");
    let (typed, typed_sep) = sep("typed", "\\n");
    assert_eq!(real_sep, "\n");
    assert_eq!(typed_sep, "\n");
    assert_eq!(typed, real);
    let (_, mixed) = sep("mixed", "\\t<step>\\\\n\\q");
    assert_eq!(mixed, "\t<step>\\n\\q");
}

#[test]
fn a_non_causal_model_is_refused_in_one_pass_and_accepted_per_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    demo_text(&input, 200, 1);
    let out = tmp.path().join("out");
    let bidirectional = repo().join("tests/data/prm_bidirectional.onnx");
    let o = run_demo_text(&input, &bidirectional, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not causal") && stderr(&o).contains("--pass segment"),
        "{}",
        stderr(&o)
    );
    assert_no_output(&out);
    let o = run_demo_text(&input, &bidirectional, &out, &["--pass", "segment"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["n_segments"], 200);
    // A per-sequence model cannot be read at segment ends.
    let o = run_demo_text(&input, &demo_model(), &out, &["--pass", "generation"]);
    assert_fails(&o, 2, "--pass segment");
}

#[test]
fn score_label_is_the_softmax_of_the_class_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    demo_text(&input, 150, 1);
    let two_class = repo().join("tests/data/prm_two_class.onnx");
    let out = tmp.path().join("out");
    let o = run_demo_text(&input, &two_class, &out, &[]);
    assert_fails(&o, 1, "--score-label");
    let o = run_demo_text(&input, &two_class, &out, &["--score-label", "2"]);
    assert!(
        stderr(&o).contains("--score-label 2") && stderr(&o).contains("2 classes"),
        "{}",
        stderr(&o)
    );
    let o = run_demo_text(&input, &two_class, &out, &["--score-label", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let values = tmp.path().join("values");
    let o = run_demo_text(&input, &causal(), &values, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The two-class head's logits are (0, 4 v) for the causal model's value v: by hand,
    // softmax gives class 1 the probability 1 / (1 + exp(-4 v)).
    let (p, v) = (predictions(&out), predictions(&values));
    for (k, x) in &p {
        let by_hand = 1.0 / (1.0 + (-4.0 * v[k]).exp());
        assert!((x - by_hand).abs() < 1e-6, "{k:?}: {x} vs {by_hand}");
    }
    assert_eq!(
        summary(&out)["score_output"],
        "per token, softmax of 2 classes, class 1"
    );
}

#[test]
fn prediction_cumulative_is_the_change_from_the_base_score() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text.parquet");
    let gens = real_text();
    write_text(&input, &gens);
    let (seg, cum) = (tmp.path().join("seg"), tmp.path().join("cum"));
    let flags = ["--prompt-col", "prompt", "--base-score-col", "base"];
    let o = run_text(&input, &causal(), &gpt2(), &seg, &flags);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut with = flags.to_vec();
    with.extend(["--prediction", "cumulative"]);
    let o = run_text(&input, &causal(), &gpt2(), &cum, &with);
    assert!(o.status.success(), "{}", stderr(&o));
    let (v, p) = (predictions(&seg), predictions(&cum));
    for g in &gens {
        let mut previous = 0.05; // the base score
        for k in 0..g.segments.len() as i64 {
            let key = (g.id.clone(), k);
            assert_eq!(p[&key], v[&key] - previous, "{key:?}");
            previous = v[&key];
        }
    }
    assert_eq!(summary(&cum)["prediction"], "cumulative");
    // Token-id input too: the per-row scores become changes within each generation.
    let ids = tmp.path().join("ids.parquet");
    write_rows(
        &ids,
        &[
            row("g", 0, 0.1, &[100]),
            row("g", 1, 0.3, &[300]),
            row("h", 0, 0.2, &[200]),
        ],
    );
    let affine = test_model("affine_mean.onnx");
    let out = tmp.path().join("ids_out");
    run_ok(
        &[&ids],
        &affine,
        &out,
        &["--provider", "cpu", "--prediction", "cumulative"],
    );
    let p = predictions(&out);
    // affine_mean scores mean(ids) * 0.001 - 1: -0.9, -0.7, -0.8; base 0.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(
        close(p[&("g".into(), 0)], -0.9)
            && close(p[&("g".into(), 1)], 0.2)
            && close(p[&("h".into(), 0)], -0.8),
        "{p:?}"
    );
}

#[test]
fn too_long_and_empty_text_are_invalid_in_both_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text.parquet");
    let mut gens = real_text();
    gens.push(Gen {
        id: "d".into(),
        prompt: "q".into(),
        segments: vec![Some("fine".into()), None],
    });
    gens.push(gen("e", "q", &["fine", ""]));
    write_text(&input, &gens);
    // Generation b's long segment passes 300 tokens.
    let out = tmp.path().join("out");
    let o = run_text(&input, &causal(), &gpt2(), &out, &["--max-length", "300"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("column `text`")
            && stderr(&o).contains("maximum length 300")
            && stderr(&o).contains("generation_id=b"),
        "{}",
        stderr(&o)
    );
    assert_no_output(&out);
    let o = run_text(
        &input,
        &causal(),
        &gpt2(),
        &out,
        &["--max-length", "300", "--on-invalid", "quarantine"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["rejected"]["generations_by_reason"]["too_long"], 1, "{s}");
    assert_eq!(s["rejected"]["generations_by_reason"]["null_text"], 1, "{s}");
    assert_eq!(s["rejected"]["generations_by_reason"]["empty_text"], 1, "{s}");
    assert_eq!(s["n_generations"], 2);
    let rejected = read_parts(&out.join("rejected"));
    let reasons: Vec<(String, String)> = str_col(&rejected, "generation_id")
        .into_iter()
        .zip(str_col(&rejected, "reason"))
        .collect();
    assert!(reasons.contains(&("b".into(), "too_long".into())), "{reasons:?}");
    assert!(reasons.contains(&("d".into(), "null_text".into())), "{reasons:?}");
    assert!(
        reasons.contains(&("e".into(), "empty_text".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("b".into(), "invalid_segment_in_generation".into())),
        "{reasons:?}"
    );
    assert_eq!(s["max_length"], 300);
    // Token ids: a row longer than --max-length is too_long as well.
    let ids = tmp.path().join("ids.parquet");
    write_rows(&ids, &[row("g", 0, 0.1, &[1, 2, 3, 4]), row("h", 0, 0.2, &[5])]);
    let o = run(
        &[&ids],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--overwrite", "--max-length", "3"],
    );
    assert_fails(&o, 1, "4 tokens, more than the model's maximum length 3");
    // Past the model's position embedding, ONNX Runtime failed mid-run ("indices element out
    // of data bounds"): refused before the run.
    let o = run_text(&input, &causal(), &gpt2(), &out, &["--max-length", "1025"]);
    assert_fails(&o, 2, "--max-length 1025: model ");
    assert!(
        stderr(&o).contains("has 1024 positions (its position embedding `pos_emb`)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn text_output_is_bit_identical_across_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    demo_text(&input, 900, 3);
    let mut outputs = Vec::new();
    for threads in ["1", "2", "3"] {
        let out = tmp.path().join(format!("t{threads}"));
        let o = run_demo_text(
            &input,
            &causal(),
            &out,
            &["--threads", threads, "--batch-size", "7"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        outputs.push(rows_by_key(&read_segments(&out)));
    }
    assert_same_rows(&outputs[0], &outputs[1], "threads 1 vs 2");
    assert_same_rows(&outputs[0], &outputs[2], "threads 1 vs 3");
}

/// The text column is written as `text`: `--drop` and `--keep` take it by that name or by
/// its name in the files (`--drop step` said "no such column").
#[test]
fn drop_and_keep_take_a_role_column_by_its_name_in_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    demo_text(&input, 100, 1);
    let out = tmp.path().join("out");
    let columns = |out: &Path| -> Vec<String> {
        read_segments(out)
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    let o = run_demo_text(&input, &causal(), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(columns(&out).contains(&"text".to_string()), "{:?}", columns(&out));
    for name in ["step", "text"] {
        let o = run_demo_text(&input, &causal(), &out, &["--drop", name]);
        assert!(o.status.success(), "--drop {name}: {}", stderr(&o));
        let got = columns(&out);
        assert!(
            !got.contains(&"text".to_string()) && !got.contains(&"step".to_string()),
            "{got:?}"
        );
        assert_eq!(read_segments(&out).num_rows(), 100);
    }
    let o = run_demo_text(&input, &causal(), &out, &["--keep", "step"]);
    assert_fails(&o, 2, "--keep step: only the model-input columns");
    let o = run_demo_text(&input, &causal(), &out, &["--keep", "prompt", "--drop", "prompt"]);
    assert_fails(
        &o,
        2,
        "--keep prompt and --drop prompt: a column is kept or dropped",
    );
}

#[test]
fn bad_tokenizer_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text.parquet");
    write_text(&input, &real_text());
    let not_json = tmp.path().join("not.json");
    std::fs::write(&not_json, "this is not JSON").unwrap();
    let not_tokenizer = tmp.path().join("other.json");
    std::fs::write(&not_tokenizer, "{\"hello\": [1, 2, 3]}").unwrap();
    let out = tmp.path().join("out");
    // An export folder: tokenizer.json beside tokenizer_config.json. The folder, or the
    // config, given as the tokenizer names the tokenizer file.
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::copy(gpt2(), export.join("tokenizer.json")).unwrap();
    std::fs::write(
        export.join("tokenizer_config.json"),
        "{\"model_max_length\": 1024}",
    )
    .unwrap();
    // A template that names a special token the file does not define: the `tokenizers`
    // library reads the file, then panics on every text ("no entry found for key"); the job
    // stopped with "internal error: the generation stage failed". Refused at load now.
    let mut template: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wordpiece()).unwrap()).unwrap();
    template["post_processor"]["special_tokens"]
        .as_object_mut()
        .unwrap()
        .remove("[SEP]");
    let broken_template = tmp.path().join("broken-template.json");
    std::fs::write(&broken_template, template.to_string()).unwrap();
    let the_file = format!("the tokenizer is {}", export.join("tokenizer.json").display());
    let in_folder = format!(
        "is a folder; give the tokenizer file in it: {}",
        export.join("tokenizer.json").display()
    );
    for (file, says) in [
        (tmp.path().join("missing.json"), "cannot read"),
        (not_json, "not a JSON file"),
        (not_tokenizer, "not a Hugging Face tokenizer.json"),
        (export.join("tokenizer_config.json"), the_file.as_str()),
        (export.clone(), in_folder.as_str()),
        (
            broken_template.clone(),
            "the tokenizers library panicked encoding a text with special tokens (no entry found for key): is the file complete?",
        ),
    ] {
        let o = run_text(&input, &causal(), &file, &out, &[]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("tokenizer {}", file.display())) && err.contains(says),
            "{err}"
        );
        assert!(!err.contains("thread '"), "{err}");
    }
    let o = segscore(&[
        "sql",
        "--tokenizer",
        broken_template.to_str().unwrap(),
        "SELECT tokenize('hello') AS ids",
    ]);
    assert_fails(&o, 1, "the tokenizers library panicked encoding a text");
    // Text flags without text input, and text input without a tokenizer, are usage errors.
    let o = run(
        &[&input],
        &causal(),
        &out,
        &["--provider", "cpu", "--text-col", "text"],
    );
    assert_fails(&o, 2, "--tokenizer");
}

#[test]
fn the_text_demo_runs_one_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = segscore(&[
        "demo",
        "--text",
        "--provider",
        "cpu",
        "-o",
        dir.to_str().unwrap(),
        "--generations",
        "40",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("segscore demo:") && stdout.contains("pearson"),
        "{stdout}"
    );
    let s = summary(&dir.join("output"));
    assert_eq!(s["text"]["pass"], "generation");
    assert_eq!(s["prediction"], "cumulative");
    // The bundled model approximates the demo's scores: a real, not a perfect, fit.
    let r2 = s["r2"].as_f64().unwrap();
    assert!(r2 > 0.5 && r2 < 1.0, "r2 {r2}");
}

/// Text flags that do not go together are usage errors before any input is read: a
/// `--prompt-col` on token-id input was reported as a column missing from the files.
#[test]
fn text_flags_that_do_not_go_together_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 100, 1, false);
    let out = tmp.path().join("out");
    let tokenizer = gpt2();
    let tokenizer = tokenizer.to_str().unwrap();
    for (flags, want) in [
        (vec!["--prompt-col", "prompt"], "--prompt-col is for text input"),
        (
            vec!["--segment-separator", "\n"],
            "--segment-separator is for text input",
        ),
        (
            vec!["--pass", "generation"],
            "--pass generation is for text input",
        ),
        (vec!["--text-col", "step"], "--text-col needs --tokenizer FILE"),
        (vec!["--tokenizer", tokenizer], "--tokenizer is for text input"),
    ] {
        let o = run(&[&input], &demo_model(), &out, &flags);
        assert_fails(&o, 2, want);
        assert!(
            !stderr(&o).contains("missing column"),
            "{flags:?}: {}",
            stderr(&o)
        );
        assert!(!out.exists(), "{flags:?}");
    }
    // A file of texts run without the text flags: the missing token ids say which they are.
    let texts = tmp.path().join("texts.parquet");
    write_text(&texts, &[gen("a", "Q", &["one"])]);
    let o = run(&[&texts], &causal(), &out, &["--provider", "cpu"]);
    assert_fails(
        &o,
        1,
        "missing column `input_ids` (the token ids column, or with --text-col and --tokenizer the text column; found: generation_id",
    );
}
