//! The read-ahead's bookkeeping ([`Ahead`]): a partition's files (or the queue a scan's streams
//! share) in the order the scan opens them, the fetches started ahead within the limits, and
//! the fetch each file opened takes.

use std::collections::VecDeque;

use object_store::path::Path;

use super::{Fetch, PieceId, Wanted, AHEAD_BYTES, AHEAD_MAX_OBJECT, AHEAD_OBJECTS};

/// The read-ahead of one partition, or of the queue all of a scan's streams take files from:
/// its files in the order the scan opens them, and the fetches started and not yet taken.
pub(super) struct Ahead {
    /// Each file (a piece of an object, as the scan names it), in order, and what a fetch of it
    /// takes (the object whole, or the chunks the scan reads of this piece).
    files: Vec<(PieceId, Wanted)>,
    /// Which files the scan has opened.
    opened: Vec<bool>,
    /// Every file before this one is opened.
    lowest: usize,
    /// Files before this one have had their fetch started, or were opened, or are too large.
    considered: usize,
    /// Fetches started ahead, by file, in order, each with the bytes it holds: 0 for a piece
    /// that shares the fetch of the piece before it (those bytes are counted once).
    started: VecDeque<(usize, Fetch, u64)>,
    /// The last fetches taken, one for each stream and one more, for a file opened again.
    recent: VecDeque<(usize, Fetch)>,
    streams: usize,
    /// The most files ahead, and bytes held ahead: [`AHEAD_OBJECTS`] and [`AHEAD_BYTES`] for
    /// each stream that opens these files.
    objects: usize,
    bytes: u64,
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead")
            .field("files", &self.files.len())
            .field("lowest", &self.lowest)
            .field("started", &self.started.len())
            .finish()
    }
}

impl Ahead {
    /// The read-ahead of `files`, opened by `streams` streams.
    pub(super) fn new(files: Vec<(PieceId, Wanted)>, streams: usize) -> Self {
        let streams = streams.max(1);
        Ahead {
            opened: vec![false; files.len()],
            files,
            lowest: 0,
            considered: 0,
            started: VecDeque::new(),
            recent: VecDeque::new(),
            streams,
            objects: AHEAD_OBJECTS * streams,
            bytes: AHEAD_BYTES * streams as u64,
        }
    }

    /// The scan opens the file `piece`: what it reads of it, fetched ahead or fetched now (None
    /// where that is more than [`AHEAD_MAX_OBJECT`], or for a file not in the list), and the
    /// fetches of the files after it started, within the limits. A file opened again soon after
    /// (DataFusion opens a second reader of a file to decode it once it has read its bloom
    /// filters with the first) gets the fetch it took. `start` starts a fetch (of an object).
    pub(super) fn take(
        &mut self,
        piece: &PieceId,
        start: &mut dyn FnMut(&Path, &Wanted) -> Fetch,
    ) -> Option<Fetch> {
        let unopened =
            (self.lowest..self.files.len()).find(|&i| !self.opened[i] && self.files[i].0 == *piece);
        let Some(at) = unopened else {
            let files = &self.files;
            let again = self.recent.iter().rev().find(|(i, _)| files[*i].0 == *piece);
            return again.map(|(_, f)| f.clone());
        };
        self.opened[at] = true;
        while self.opened.get(self.lowest) == Some(&true) {
            self.lowest += 1;
        }
        let taken = match self.started.iter().position(|(i, ..)| *i == at) {
            Some(p) => self.started.remove(p).map(|(_, f, _)| f),
            None if self.files[at].1.bytes() <= AHEAD_MAX_OBJECT => {
                Some(start(&self.files[at].0.path, &self.files[at].1))
            }
            None => None,
        };
        if let Some(f) = &taken {
            self.recent.push_back((at, f.clone()));
            if self.recent.len() > self.streams + 1 {
                self.recent.pop_front();
            }
        }
        let mut held: u64 = self.started.iter().map(|(.., bytes)| bytes).sum();
        while self.considered < self.files.len() && self.considered <= at + self.objects {
            let j = self.considered;
            let (piece, wanted) = &self.files[j];
            let size = wanted.bytes();
            if !self.opened[j] && size <= AHEAD_MAX_OBJECT {
                // Pieces of one object in a row share its fetch (what they read together),
                // whose bytes the limit counts once.
                let shares =
                    j > 0 && self.files[j - 1].0.path == piece.path && self.files[j - 1].1 == *wanted;
                let same = match self.started.back() {
                    _ if !shares => None,
                    Some((i, f, _)) if *i == j - 1 => Some(f.clone()),
                    _ if at == j - 1 => taken.clone(),
                    _ => None,
                };
                let entry = match same {
                    Some(f) => (j, f, 0),
                    None if held + size > self.bytes => break,
                    None => {
                        held += size;
                        (j, start(&piece.path, wanted), size)
                    }
                };
                self.started.push_back(entry);
            }
            self.considered += 1;
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::super::Pieces;
    use super::*;
    use bytes::Bytes;
    use futures::FutureExt;
    use std::sync::Arc;

    /// The object at `path`, all of it.
    fn whole(path: &str) -> PieceId {
        PieceId {
            path: Path::from(path),
            range: None,
            row_groups: None,
        }
    }

    /// A partition's files, `n` of `size` bytes each (`f0`, `f1`, ...), fetched whole.
    fn files(sizes: &[u64]) -> Vec<(PieceId, Wanted)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (whole(&format!("f{i}")), Wanted::Whole(*s)))
            .collect()
    }

    /// Opens the objects at `locations` whole in turn; each open's fetched file (if any) and the
    /// fetches started.
    fn opens(ahead: &mut Ahead, locations: &[&str]) -> Vec<(Option<String>, Vec<String>)> {
        let pieces: Vec<PieceId> = locations.iter().map(|l| whole(l)).collect();
        opens_pieces(ahead, &pieces)
    }

    /// Opens `pieces` in turn; each open's fetched file (if any: its object's path, and `@`
    /// and the first range's start where it was fetched by range) and the fetches started.
    fn opens_pieces(ahead: &mut Ahead, pieces: &[PieceId]) -> Vec<(Option<String>, Vec<String>)> {
        pieces
            .iter()
            .map(|piece| {
                let mut started = Vec::new();
                let mut start = |p: &Path, w: &Wanted| {
                    let name = match w {
                        Wanted::Whole(_) => p.to_string(),
                        Wanted::Ranges(r) => format!("{p}@{}", r[0].start),
                    };
                    started.push(name.clone());
                    futures::future::ready(Some(Pieces::from(vec![(0, Bytes::from(name))])))
                        .boxed()
                        .shared()
                };
                let taken = ahead.take(piece, &mut start);
                let name = taken.map(|f| {
                    let pieces = f.now_or_never().flatten().unwrap();
                    String::from_utf8(pieces[0].1.to_vec()).unwrap()
                });
                (name, started)
            })
            .collect()
    }

    #[test]
    fn fetches_run_ahead_within_the_object_and_byte_limits() {
        let mb = 1 << 20;
        // Ten objects of 3 MiB: five fit in 16 MiB ahead; each open tops the queue up.
        let mut ahead = Ahead::new(files(&[3 * mb; 10]), 1);
        let got = opens(&mut ahead, &["f0", "f1", "f2"]);
        let names = |r: std::ops::Range<usize>| r.map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(got[0], (Some("f0".into()), names(0..6)));
        assert_eq!(got[1], (Some("f1".into()), names(6..7)));
        assert_eq!(got[2], (Some("f2".into()), names(7..8)));
        // Small objects: at most AHEAD_OBJECTS ahead.
        let mut ahead = Ahead::new(files(&[100; 20]), 1);
        let got = opens(&mut ahead, &["f0", "f1"]);
        assert_eq!(got[0], (Some("f0".into()), names(0..AHEAD_OBJECTS + 1)));
        assert_eq!(
            got[1],
            (Some("f1".into()), names(AHEAD_OBJECTS + 1..AHEAD_OBJECTS + 2))
        );
    }

    #[test]
    fn large_objects_are_read_by_range_and_files_opened_out_of_order_found() {
        let mb = 1 << 20;
        let mut ahead = Ahead::new(files(&[100, 9 * mb, 100, 100, 100]), 1);
        // f1 is too large to fetch whole; f3 opened before f2 (another stream of a shared
        // queue took f2) takes its fetch, and f2 still finds its own.
        let got = opens(&mut ahead, &["f0", "f1", "f3", "f2"]);
        assert_eq!(
            got[0],
            (
                Some("f0".into()),
                vec!["f0".into(), "f2".into(), "f3".into(), "f4".into()]
            )
        );
        assert_eq!(got[1], (None, vec![]));
        assert_eq!(got[2], (Some("f3".into()), vec![]));
        assert_eq!(got[3], (Some("f2".into()), vec![]));
        // A file opened again soon after gets the same fetch; one opened long before, or not
        // in the list, is read by range; nothing is started.
        assert_eq!(
            opens(&mut ahead, &["f2", "f0", "elsewhere"]),
            vec![(Some("f2".into()), vec![]), (None, vec![]), (None, vec![])]
        );
        // A file opened before its turn is fetched then, and not again when the others pass it.
        let mut ahead = Ahead::new(files(&[100; 12]), 1);
        let got = opens(&mut ahead, &["f10", "f0"]);
        let names = |r: std::ops::Range<usize>| r.map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(
            got[0],
            (
                Some("f10".into()),
                [vec!["f10".to_string()], names(0..10), names(11..12)].concat()
            )
        );
        assert_eq!(got[1], (Some("f0".into()), vec![]));
    }

    #[test]
    fn a_shared_queue_reads_ahead_for_each_stream() {
        let mut ahead = Ahead::new(files(&[100; 40]), 2);
        let got = opens(&mut ahead, &["f0", "f1"]);
        let names = |r: std::ops::Range<usize>| r.map(|i| format!("f{i}")).collect::<Vec<_>>();
        assert_eq!(got[0], (Some("f0".into()), names(0..2 * AHEAD_OBJECTS + 1)));
        assert_eq!(
            got[1],
            (
                Some("f1".into()),
                names(2 * AHEAD_OBJECTS + 1..2 * AHEAD_OBJECTS + 2)
            )
        );
    }

    #[test]
    fn pieces_of_one_object_in_a_row_share_its_fetch() {
        let mut ahead = Ahead::new(
            ["a", "a", "b", "b"]
                .iter()
                .map(|p| (whole(p), Wanted::Whole(100)))
                .collect(),
            1,
        );
        let got = opens(&mut ahead, &["a", "a", "b", "b"]);
        assert_eq!(got[0], (Some("a".into()), vec!["a".into(), "b".into()]));
        for (i, name) in [(1, "a"), (2, "b"), (3, "b")] {
            assert_eq!(got[i], (Some(name.into()), vec![]));
        }
        // The same where the object's first piece opens out of order (another stream's file
        // before it fetched ahead then): its second piece shares the first's fetch.
        let mut ahead = Ahead::new(
            ["x", "a", "a"]
                .iter()
                .map(|p| (whole(p), Wanted::Whole(100)))
                .collect(),
            1,
        );
        let got = opens(&mut ahead, &["a", "x", "a"]);
        assert_eq!(got[0], (Some("a".into()), vec!["a".into(), "x".into()]));
        assert_eq!(got[1], (Some("x".into()), vec![]));
        assert_eq!(got[2], (Some("a".into()), vec![]));
    }

    #[test]
    fn a_fetch_pieces_share_counts_its_bytes_once() {
        // Object `a` in four pieces sharing one fetch of 6 MiB, then `b` and `c` of 6 MiB: 18
        // MiB of fetches, 12 MiB of them ahead, within 16 MiB (counted per piece, `a`'s fetch
        // made 24 MiB and neither `b` nor `c` was fetched ahead).
        let mb = 1 << 20;
        let piece = |g: usize| PieceId {
            row_groups: Some(vec![g]),
            ..whole("a")
        };
        let mut files: Vec<(PieceId, Wanted)> = (0..4).map(|g| (piece(g), Wanted::Whole(6 * mb))).collect();
        files.extend(["b", "c"].iter().map(|p| (whole(p), Wanted::Whole(6 * mb))));
        let mut ahead = Ahead::new(files, 1);
        let got = opens_pieces(&mut ahead, &[piece(0), piece(1)]);
        assert_eq!(
            got[0],
            (Some("a".into()), vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(got[1], (Some("a".into()), vec![]));
    }

    #[test]
    fn pieces_of_one_object_in_a_row_share_the_fetch_of_their_chunks() {
        // Object `a` cut into pieces (row groups 0-1 and 1-2 of access plans), fetching the
        // chunks they read together once; then `b` whole, then another piece of `a` (row
        // group 3) with its own chunks.
        let piece = |groups: Vec<usize>| PieceId {
            row_groups: Some(groups),
            ..whole("a")
        };
        let (first, second, last) = (piece(vec![0, 1]), piece(vec![1, 2]), piece(vec![3]));
        let ranges = |r: std::ops::Range<u64>| Wanted::Ranges(Arc::from(vec![r]));
        let mut ahead = Ahead::new(
            vec![
                (first.clone(), ranges(0..60)),
                (second.clone(), ranges(0..60)),
                (whole("b"), Wanted::Whole(100)),
                (last.clone(), ranges(60..80)),
            ],
            1,
        );
        let got = opens_pieces(&mut ahead, &[first, second, whole("b"), last]);
        assert_eq!(
            got[0],
            (Some("a@0".into()), vec!["a@0".into(), "b".into(), "a@60".into()])
        );
        assert_eq!(got[1], (Some("a@0".into()), vec![]));
        assert_eq!(got[2], (Some("b".into()), vec![]));
        assert_eq!(got[3], (Some("a@60".into()), vec![]));
        // A piece the list does not name (another part of `a`) is read by range.
        assert_eq!(opens_pieces(&mut ahead, &[piece(vec![4])]), vec![(None, vec![])]);
    }
}
