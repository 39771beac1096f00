//! Property tests through the binary: random generations, in random order, split across a
//! random number of files, some with invalid rows. The targets equal a naive reference, every
//! valid input row comes out exactly once, and every row of a generation with an invalid row
//! goes to `rejected/` exactly once.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::common::*;

#[derive(Debug, Clone, Copy)]
enum Defect {
    NanScore,
    EmptyIds,
    TokenPastVocabulary,
    DuplicateIndex,
}

#[derive(Debug, Clone)]
struct Generation {
    /// (segment index, cumulative score, token ids), in segment order.
    segments: Vec<(i64, f64, Vec<i64>)>,
    defect: Option<(Defect, usize)>,
}

fn generation() -> impl Strategy<Value = Generation> {
    let segment = (0i64..4, -2.0f64..2.0, prop::collection::vec(0i64..1000, 1..6));
    (
        prop::collection::vec(segment, 1..6),
        prop::option::weighted(
            0.25,
            (
                prop_oneof![
                    Just(Defect::NanScore),
                    Just(Defect::EmptyIds),
                    Just(Defect::TokenPastVocabulary),
                    Just(Defect::DuplicateIndex),
                ],
                any::<prop::sample::Index>(),
            ),
        ),
    )
        .prop_map(|(segs, defect)| {
            // Increasing indices with random gaps.
            let mut index = -1;
            let segments: Vec<(i64, f64, Vec<i64>)> = segs
                .into_iter()
                .map(|(gap, cum, ids)| {
                    index += 1 + gap;
                    (index, cum, ids)
                })
                .collect();
            let defect = defect.map(|(d, at)| (d, at.index(segments.len())));
            Generation { segments, defect }
        })
}

fn case() -> impl Strategy<Value = (Vec<Generation>, Vec<usize>, usize)> {
    prop::collection::vec(generation(), 1..8).prop_flat_map(|gens| {
        let rows: usize = gens.iter().map(|g| g.segments.len() + 1).sum();
        (
            Just(gens),
            // A random order of the rows (a permutation by sort keys) and a file count.
            prop::collection::vec(any::<usize>(), rows),
            1usize..4,
        )
    })
}

/// Targets by (generation id, segment index).
type Targets = BTreeMap<(String, i64), f64>;

/// The rows written, and the reference: valid rows' targets by key, invalid generations.
fn build(gens: &[Generation]) -> (Vec<Row>, Targets, BTreeSet<String>) {
    let mut rows = Vec::new();
    let mut targets = BTreeMap::new();
    let mut invalid = BTreeSet::new();
    for (gi, g) in gens.iter().enumerate() {
        let gid = format!("gen-{gi}");
        let mut prev = 0.0;
        for (si, (seg, cum, ids)) in g.segments.iter().enumerate() {
            let mut r = row(&gid, *seg, *cum, ids);
            match g.defect {
                Some((Defect::NanScore, at)) if at == si => r.cum = Some(f64::NAN),
                Some((Defect::EmptyIds, at)) if at == si => r.ids = Some(vec![]),
                Some((Defect::TokenPastVocabulary, at)) if at == si => {
                    r.ids = Some(vec![3, 1000 + at as i64])
                }
                Some((Defect::DuplicateIndex, at)) if at == si => rows.push(r.clone()),
                _ => {}
            }
            rows.push(r);
            // The naive reference: this score minus the previous one (0 before the first).
            targets.insert((gid.clone(), *seg), cum - prev);
            prev = *cum;
        }
        if g.defect.is_some() {
            invalid.insert(gid.clone());
            targets.retain(|(g, _), _| *g != gid);
        }
    }
    (rows, targets, invalid)
}

/// One case: the files written from `gens` in the row order `order`, split into `files`
/// files under `dir`, run in quarantine mode and checked against the reference.
fn check_case(
    dir: &std::path::Path,
    gens: &[Generation],
    order: Vec<usize>,
    files: usize,
) -> Result<(), TestCaseError> {
    let (mut rows, targets, invalid) = build(gens);
    let mut keyed: Vec<(usize, Row)> = order.into_iter().zip(rows.drain(..)).collect();
    keyed.sort_by_key(|(k, _)| *k);
    let shuffled: Vec<Row> = keyed.into_iter().map(|(_, r)| r).collect();
    let per_file = shuffled.len().div_ceil(files);
    let mut inputs = Vec::new();
    for (i, chunk) in shuffled.chunks(per_file).enumerate() {
        let p = dir.join(format!("in/part{i}.parquet"));
        write_rows(&p, chunk);
        inputs.push(p);
    }
    let refs: Vec<&std::path::Path> = inputs.iter().map(|p| p.as_path()).collect();
    let out = dir.join("out");
    let o = run(
        &refs,
        &demo_model(),
        &out,
        &["--provider", "cpu", "--on-invalid", "quarantine"],
    );
    prop_assert!(o.status.success(), "{}", stderr(&o));
    // Every valid row once, with the reference's target to the bit.
    let got: BTreeMap<(String, i64), f64> = if targets.is_empty() {
        BTreeMap::new()
    } else {
        let seg = read_segments(&out);
        let got = by_key(&seg, "target_score");
        prop_assert_eq!(got.len(), seg.num_rows(), "a row came out twice");
        got
    };
    prop_assert_eq!(got.len(), targets.len());
    for (k, want) in &targets {
        prop_assert_eq!(
            got.get(k).map(|v| v.to_bits()),
            Some(want.to_bits()),
            "target of {:?}",
            k
        );
    }
    // Every row of an invalid generation, once, in rejected/.
    let want_rejected: usize = shuffled.iter().filter(|r| invalid.contains(&r.gid)).count();
    let rejected_rows = if invalid.is_empty() {
        0
    } else {
        let rej = read_parts(&out.join("rejected"));
        let gids: BTreeSet<String> = str_col(&rej, "generation_id").into_iter().collect();
        prop_assert_eq!(&gids, &invalid);
        rej.num_rows()
    };
    prop_assert_eq!(rejected_rows, want_rejected);
    let s = summary(&out);
    prop_assert_eq!(s["rejected"]["rows"].as_u64(), Some(want_rejected as u64));
    prop_assert_eq!(s["rejected"]["generations"].as_u64(), Some(invalid.len() as u64));
    prop_assert_eq!(
        s["n_generations"].as_u64(),
        Some((gens.len() - invalid.len()) as u64)
    );
    Ok(())
}

#[test]
fn targets_match_a_naive_reference_and_every_row_lands_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&case(), |(gens, order, files)| {
            let case = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            check_case(&tmp.path().join(format!("case{case}")), &gens, order, files)
        })
        .unwrap();
}

/// A case the property test found (2026-11-28): rows of three generations spread over three
/// files, one generation with a duplicate index.
#[test]
fn a_found_case_of_three_files_and_a_duplicate_index() {
    let tmp = tempfile::tempdir().unwrap();
    let g = |segments: Vec<(i64, f64, Vec<i64>)>, defect| Generation { segments, defect };
    let gens = vec![
        g(
            vec![
                (0, 1.053663173409585, vec![954, 524]),
                (1, -1.6600008752916102, vec![193, 258, 946]),
                (3, -0.9788768573328819, vec![46]),
            ],
            Some((Defect::DuplicateIndex, 1)),
        ),
        g(vec![(2, -1.269075032798063, vec![340, 374])], None),
        g(
            vec![
                (3, -1.7825501369704553, vec![648, 778, 646, 564, 405]),
                (6, -0.6642688471922281, vec![580, 828, 37, 656, 947]),
                (7, 0.7412940186931506, vec![650]),
            ],
            None,
        ),
    ];
    let order = vec![
        11795473329560774386,
        11795473329560774386,
        11795473329560774386,
        13553154946817216346,
        5203709537717884076,
        17643611384047288699,
        11795473329560774385,
        10410381623131880458,
        15457613435420082562,
        14573971096326847591,
    ];
    check_case(tmp.path(), &gens, order, 3).unwrap();
}
