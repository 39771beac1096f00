//! Parquet footers: read without panicking on corrupt input, and what segscore reads from
//! them (declared sort order, float statistics that DataFusion would misread).

use std::fs::File;
use std::path::PathBuf;

use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::prelude::SessionContext;

use super::units::Step;
use crate::error::{Error, Result};

/// Reads a Parquet footer and its embedded Arrow schema. A corrupt footer is an error, never a
/// panic: the Arrow schema decoder panics on some corrupt input (arrow 59: `not implemented:
/// Type <UNKNOWN ..> not supported`), so that panic is caught and reported as the reason.
pub fn read_footer<R>(reader: &R) -> std::result::Result<ArrowReaderMetadata, String>
where
    R: datafusion::parquet::file::reader::ChunkReader,
{
    let read = crate::panics::quietly(|| {
        // The page index too: DataFusion reads it, and a corrupt one should name the file.
        ArrowReaderMetadata::load(
            reader,
            ArrowReaderOptions::new()
                .with_page_index_policy(datafusion::parquet::file::metadata::PageIndexPolicy::Optional),
        )
    });
    match read {
        Ok(Ok(meta)) => check_ranges(meta.metadata(), reader.len()).and_then(|()| int96_as_micros(meta)),
        Ok(Err(e)) => Err(match not_parquet_because(reader) {
            Some(why) => format!("{why} ({e})"),
            None => e.to_string(),
        }),
        Err(what) => Err(format!("corrupt footer or embedded Arrow schema ({what})")),
    }
}

/// The unit INT96 timestamps (Spark's default, Hive's, Impala's) are read in: microseconds,
/// as Spark and DuckDB read them. Arrow reads INT96 as nanoseconds, which cannot hold a date
/// past 2262 or before 1677: Spark's `9999-12-31` (a common "no end" date) came out as
/// 1816-03-29, silently. Sub-microsecond digits (Impala writes some) are dropped, as DuckDB
/// drops them. The scan reads them so too ([`crate::engine::tables`]).
pub const INT96_UNIT: &str = "us";

/// `meta` with its INT96 columns read as [`INT96_UNIT`] (the Arrow schema every reader of the
/// footer, and the key-range reader, take from it).
fn int96_as_micros(meta: ArrowReaderMetadata) -> std::result::Result<ArrowReaderMetadata, String> {
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::datasource::file_format::parquet::Int96Coercer;
    let parquet = meta.metadata().file_metadata().schema_descr();
    let Some(schema) = Int96Coercer::new(parquet, meta.schema(), &TimeUnit::Microsecond).coerce() else {
        return Ok(meta);
    };
    ArrowReaderMetadata::try_new(
        std::sync::Arc::clone(meta.metadata()),
        ArrowReaderOptions::new().with_schema(std::sync::Arc::new(schema)),
    )
    .map_err(|e| format!("its INT96 timestamps as microseconds: {e}"))
}

/// Why a file whose footer cannot be read is not Parquet, from its first and last bytes:
/// Parquet begins and ends with `PAR1`. A file that begins so and ends otherwise was cut short
/// (a copy or a writer that did not finish); one that begins like another format is named.
/// None when both ends are Parquet's (the footer itself is corrupt) or cannot be read.
fn not_parquet_because<R>(reader: &R) -> Option<String>
where
    R: datafusion::parquet::file::reader::ChunkReader,
{
    let len = reader.len();
    if len < 12 {
        return Some(format!(
            "{len} bytes, too few for Parquet (its magic bytes and footer length take 12): cut short?"
        ));
    }
    let head = reader.get_bytes(0, len.min(8) as usize).ok()?;
    let tail = reader
        .get_bytes(len.saturating_sub(4), len.min(4) as usize)
        .ok()?;
    if head.starts_with(b"PAR1") && tail.as_ref() == b"PAR1" {
        return None;
    }
    let like = |what: &str, then: &str| Some(format!("it begins like {what}, not Parquet{then}"));
    let convert = ": write it as Parquet";
    let copy = ": write it as Parquet (`segscore sql \"COPY 'IN' TO 'OUT.parquet'\"` reads Arrow, CSV and JSON files)";
    match head.as_ref() {
        h if h.starts_with(b"PAR1") => Some(format!(
            "it begins as Parquet but does not end with Parquet's `PAR1` ({len} bytes): cut short, by a copy or a writer that did not finish?"
        )),
        h if h.starts_with(b"ARROW1") => like("an Arrow IPC (Feather) file", copy),
        // The stream format's first message: a continuation marker, then its length.
        [0xff, 0xff, 0xff, 0xff, ..] => like(
            "an Arrow IPC stream (Hugging Face `datasets`' `save_to_disk` writes them)",
            copy,
        ),
        h if h.starts_with(b"ORC") => like("an ORC file", convert),
        h if h.starts_with(b"Obj\x01") => like("an Avro file", convert),
        [0x1f, 0x8b, ..] => like("a gzip file", ""),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => like("a zstd file", ""),
        h if h.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) => {
            like("text (CSV or JSON?)", copy)
        }
        _ => Some("it does not begin or end with Parquet's magic bytes `PAR1`".into()),
    }
}

/// Checks the column chunks' byte ranges (inside the file) and the page index's page
/// locations against them: each page inside its chunk, in order, and each page's first row
/// in its row group, the first at 0. The Parquet reader trusts both: parquet 59 asserts a
/// chunk's offsets are not negative (a panic), and subtracts a page's offset from its chunk's
/// start (a panic, or "Integer overflow", when the page lies before it).
fn check_ranges(meta: &ParquetMetaData, file_len: u64) -> std::result::Result<(), String> {
    let index = meta.offset_index();
    for (r, rg) in meta.row_groups().iter().enumerate() {
        for (c, chunk) in rg.columns().iter().enumerate() {
            let column = || format!("row group {r}, column {c} (`{}`)", chunk.column_path().string());
            let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
            let range = u64::try_from(start)
                .ok()
                .zip(u64::try_from(chunk.compressed_size()).ok())
                .and_then(|(s, l)| Some((s, s.checked_add(l)?)))
                .filter(|&(_, end)| end <= file_len);
            let Some((start, end)) = range else {
                return Err(format!(
                    "corrupt column chunk: {}: starts at byte {start} and takes {} bytes, outside the file's {file_len}",
                    column(),
                    chunk.compressed_size()
                ));
            };
            let Some(pages) = index.and_then(|i| i.get(r)).and_then(|cols| cols.get(c)) else {
                continue;
            };
            let (mut next_byte, mut next_row) = (start, 0i64);
            for (p, page) in pages.page_locations().iter().enumerate() {
                let (offset, size, first_row) =
                    (page.offset, page.compressed_page_size, page.first_row_index);
                let bytes = u64::try_from(offset)
                    .ok()
                    .zip(u64::try_from(size).ok())
                    .and_then(|(o, s)| Some((o, o.checked_add(s)?)));
                let rows_ok = match p {
                    0 => first_row == 0,
                    _ => first_row >= next_row && first_row < rg.num_rows(),
                };
                match bytes {
                    Some((o, page_end)) if o >= next_byte && page_end <= end && rows_ok => {
                        (next_byte, next_row) = (page_end, first_row);
                    }
                    _ => {
                        return Err(format!(
                            "corrupt page index: {}, page {p}: offset {offset}, {size} bytes, first row {first_row}, outside its column chunk (bytes {start} to {end}, {} rows) or out of order",
                            column(),
                            rg.num_rows()
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether some top-level float column (other than the `trusted` ones, known to hold no NaN;
/// `"*"` trusts all) of a file of two rows or more has statistics saying it holds one value
/// (min == max over the file). Parquet's min/max leave NaN out, and DataFusion 55 replaces a
/// column whose file statistics have min == max with that value, so a NaN among equal values
/// would be read as that value. Scans of such files run without statistics.
pub fn float_stats_constant(pq: &ParquetMetaData, trusted: &[&str]) -> bool {
    if pq.file_metadata().num_rows() < 2 || trusted.contains(&"*") {
        return false;
    }
    use datafusion::parquet::basic::Type as Physical;
    use datafusion::parquet::file::statistics::Statistics as S;
    let leaves = pq.file_metadata().schema_descr().columns();
    leaves.iter().enumerate().any(|(i, leaf)| {
        if leaf.path().parts().len() != 1
            || !matches!(leaf.physical_type(), Physical::FLOAT | Physical::DOUBLE)
            || trusted.contains(&leaf.path().parts()[0].as_str())
        {
            return false;
        }
        let mut range: Option<(f64, f64)> = None;
        for rg in pq.row_groups() {
            let (lo, hi) = match rg.column(i).statistics() {
                Some(S::Float(v)) => match (v.min_opt(), v.max_opt()) {
                    (Some(a), Some(b)) => (*a as f64, *b as f64),
                    _ => return false,
                },
                Some(S::Double(v)) => match (v.min_opt(), v.max_opt()) {
                    (Some(a), Some(b)) => (*a, *b),
                    _ => return false,
                },
                _ => return false,
            };
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        range.is_some_and(|(a, b)| a == b)
    })
}

/// Stops the context's scans from using file statistics (DataFusion 55 reads these per
/// session, not per table): see [`float_stats_constant`].
pub fn distrust_statistics(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    if state.config().collect_statistics() {
        tracing::debug!("a float column's statistics look constant: scans do not use file statistics");
        state.config_mut().options_mut().execution.collect_statistics = false;
    }
}

/// Reads every file's footer ([`read_footer`]: an unreadable one is an error naming the
/// file, the first in `paths`' order); objects' side by side ([`crate::store::side_by_side`]).
pub fn read_footers(paths: &[PathBuf]) -> Result<Vec<ArrowReaderMetadata>> {
    Ok(read_stamped_footers(paths)?
        .into_iter()
        .map(|(meta, _)| meta)
        .collect())
}

/// A file's footer with its size and last-modified time as it was read ([`file_stamp`]; an
/// object's from its HEAD).
pub type Stamped = (ArrowReaderMetadata, (u64, u128));

/// [`read_footers`], each with the file's size and last-modified time as they were read: what
/// [`crate::engine::tables::seed_metadata_cache`] takes.
pub fn read_stamped_footers(paths: &[PathBuf]) -> Result<Vec<Stamped>> {
    let remote = paths.iter().any(|p| crate::store::remote(p).is_some());
    crate::store::side_by_side(paths, remote, |p| {
        let not_parquet = |reason| Error::NotParquet {
            path: p.clone(),
            reason,
        };
        match crate::store::remote(p) {
            Some(url) => {
                let file = crate::store::RemoteFile::open(url)?;
                Ok((read_footer(&file).map_err(not_parquet)?, file.stamp()))
            }
            None => {
                let f = File::open(p).map_err(|e| Error::io(p, e))?;
                let stamp = file_stamp(&f.metadata().map_err(|e| Error::io(p, e))?);
                Ok((read_footer(&f).map_err(not_parquet)?, stamp))
            }
        }
    })
    .into_iter()
    .collect()
}

/// A local file's size and last-modified time in nanoseconds since the epoch (0 where the
/// system gives none): the stamp `--resume` compares and DataFusion's metadata cache checks.
pub fn file_stamp(meta: &std::fs::Metadata) -> (u64, u128) {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    (meta.len(), modified)
}
/// The leaf column index of top-level column `name`, if the file has one.
pub(crate) fn top_level_leaf(pq: &ParquetMetaData, name: &str) -> Option<usize> {
    pq.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts().len() == 1 && c.path().parts()[0] == name)
}

/// A bound of a key column's values from a row group's statistics: integers compare as
/// numbers, strings (byte arrays) as bytes, as the key order check compares them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyBound {
    /// An integer column's bound.
    Int(i64),
    /// A string column's bound, as its bytes.
    Bytes(Vec<u8>),
}

/// One row group's exact (min, max) of a key column and its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroupKeys {
    /// The smallest value.
    pub min: KeyBound,
    /// The largest value.
    pub max: KeyBound,
    /// The row group's rows.
    pub rows: u64,
}

/// Each row group's exact key range of top-level column `key`, from the footer's statistics:
/// `None` for a row group without exact integer or string statistics, and for every row group
/// of an unsigned integer column (its statistics do not compare as signed) or of a file
/// without the column.
pub fn row_group_keys(pq: &ParquetMetaData, key: &str) -> Vec<Option<RowGroupKeys>> {
    use datafusion::parquet::basic::{ConvertedType, LogicalType};
    use datafusion::parquet::file::statistics::Statistics as S;
    let none = || vec![None; pq.num_row_groups()];
    let Some(i) = top_level_leaf(pq, key) else {
        return none();
    };
    let leaves = pq.file_metadata().schema_descr().columns();
    let unsigned = matches!(leaves[i].logical_type_ref(), Some(LogicalType::Integer(t)) if !t.is_signed)
        || matches!(
            leaves[i].converted_type(),
            ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 | ConvertedType::UINT_64
        );
    if unsigned {
        return none();
    }
    let range = |rg: &datafusion::parquet::file::metadata::RowGroupMetaData| -> Option<RowGroupKeys> {
        let stats = rg.column(i).statistics()?;
        if !(stats.min_is_exact() && stats.max_is_exact()) {
            return None;
        }
        let (min, max) = match stats {
            S::Int32(v) => (
                KeyBound::Int((*v.min_opt()?).into()),
                KeyBound::Int((*v.max_opt()?).into()),
            ),
            S::Int64(v) => (KeyBound::Int(*v.min_opt()?), KeyBound::Int(*v.max_opt()?)),
            S::ByteArray(v) => (
                KeyBound::Bytes(v.min_opt()?.data().to_vec()),
                KeyBound::Bytes(v.max_opt()?.data().to_vec()),
            ),
            _ => return None,
        };
        Some(RowGroupKeys {
            min,
            max,
            rows: u64::try_from(rg.num_rows()).ok()?,
        })
    };
    pq.row_groups().iter().map(range).collect()
}

/// Whether row groups' key ranges ([`row_group_keys`]) prove them not in key order: some row
/// group's exact minimum below the exact maximum of the row group before it (a row group
/// without exact statistics proves nothing).
pub fn keys_out_of_order(keys: &[Option<RowGroupKeys>]) -> bool {
    keys.windows(2).any(|w| match (&w[0], &w[1]) {
        (Some(a), Some(b)) => b.min < a.max,
        _ => false,
    })
}

/// Whether every row group's `sorting_columns` start with `keys`, all ascending.
pub fn metadata_declares_order(pq: &ParquetMetaData, keys: &[&str]) -> bool {
    let Some(idx) = keys
        .iter()
        .map(|k| top_level_leaf(pq, k))
        .collect::<Option<Vec<usize>>>()
    else {
        return false;
    };
    !pq.row_groups().is_empty()
        && pq.row_groups().iter().all(|rg| match rg.sorting_columns() {
            Some(sc) if sc.len() >= idx.len() => idx
                .iter()
                .zip(sc)
                .all(|(&i, c)| c.column_idx as usize == i && !c.descending),
            _ => false,
        })
}

/// The leaf column that holds the values at `path` (a column, a struct's field, a list's or a
/// map's items: [`Step`]), if the file has one: the Parquet schema's groups followed by name,
/// a list's (or map's) repeated group and, in the three-level form, its one field stepped over.
fn leaf_at(pq: &ParquetMetaData, path: &[Step]) -> Option<usize> {
    use datafusion::parquet::basic::{ConvertedType, LogicalType, Repetition};
    use datafusion::parquet::schema::types::Type;
    fn leaves(t: &Type) -> usize {
        match t {
            Type::PrimitiveType { .. } => 1,
            Type::GroupType { fields, .. } => fields.iter().map(|f| leaves(f)).sum(),
        }
    }
    let root = pq.file_metadata().schema_descr().root_schema();
    let (mut t, mut index) = (root, 0);
    for step in path {
        let Type::GroupType { fields, basic_info } = t else {
            return None;
        };
        t = match step {
            Step::Field(name) => {
                let at = fields.iter().position(|f| f.name() == name)?;
                index += fields[..at].iter().map(|f| leaves(f)).sum::<usize>();
                fields[at].as_ref()
            }
            Step::Item => {
                let list = matches!(
                    basic_info.logical_type_ref(),
                    Some(LogicalType::List | LogicalType::Map)
                ) || matches!(
                    basic_info.converted_type(),
                    ConvertedType::LIST | ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE
                );
                let [repeated] = fields.as_slice() else {
                    return None;
                };
                if !list || repeated.get_basic_info().repetition() != Repetition::REPEATED {
                    return None;
                }
                match repeated.as_ref() {
                    // The three-level form (`list.element`): the repeated group's one field,
                    // unless the group is the item itself (the legacy names of a struct item).
                    Type::GroupType { fields: inner, .. }
                        if inner.len() == 1
                            && repeated.name() != "array"
                            && !repeated.name().ends_with("_tuple")
                            && basic_info.logical_type_ref() != Some(&LogicalType::Map) =>
                    {
                        inner[0].as_ref()
                    }
                    r => r,
                }
            }
        };
    }
    matches!(t, Type::PrimitiveType { .. }).then_some(index)
}

/// The least and the greatest value at `path` (a column, or a time inside one: [`Step`]), read
/// as `read_as` (a date, a timestamp or a duration), over the file's row groups, from the
/// footer's statistics, in nanoseconds since the epoch (a date as its midnight): what deciding
/// the unit of a time that files hold in different units needs
/// ([`crate::engine::types::widened_schema`]). None where a row group with values has no
/// statistics for it, or the values are of another type (INT96 among them).
pub fn time_bounds(
    pq: &ParquetMetaData,
    path: &[Step],
    read_as: &datafusion::arrow::datatypes::DataType,
) -> Option<(i128, i128)> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::parquet::basic::{ConvertedType, LogicalType, TimeUnit as PqUnit};
    use datafusion::parquet::file::statistics::Statistics as S;
    const DAY: i128 = 86_400_000_000_000;
    let i = leaf_at(pq, path)?;
    let leaf = &pq.file_metadata().schema_descr().columns()[i];
    // Nanoseconds in one of the stored values: the Parquet type's unit, which an embedded Arrow
    // schema may read coarser (pyarrow stores `timestamp[s]` as milliseconds).
    let per_value: i128 = match (leaf.logical_type_ref(), leaf.converted_type(), read_as) {
        (Some(LogicalType::Timestamp(t)), _, _) => match t.unit {
            PqUnit::MILLIS => 1_000_000,
            PqUnit::MICROS => 1_000,
            PqUnit::NANOS => 1,
        },
        (None, ConvertedType::TIMESTAMP_MILLIS, _) => 1_000_000,
        (None, ConvertedType::TIMESTAMP_MICROS, _) => 1_000,
        (Some(LogicalType::Date), _, _) | (None, ConvertedType::DATE, _) => DAY,
        // Stored as Arrow has them (arrow-rs writes a date64 and a duration as plain int64).
        (None, ConvertedType::NONE, DataType::Date64) => 1_000_000,
        (None, ConvertedType::NONE, DataType::Duration(u)) => super::units::nanos(u),
        _ => return None,
    };
    let mut bounds: Option<(i128, i128)> = None;
    for rg in pq.row_groups().iter().filter(|rg| rg.num_rows() > 0) {
        let chunk = rg.column(i);
        let stats = chunk.statistics();
        let values = chunk.num_values() - stats.and_then(|s| s.null_count_opt()).unwrap_or(0) as i64;
        if values <= 0 && stats.is_some() {
            // Nulls alone: nothing to hold.
            continue;
        }
        let (min, max): (i128, i128) = match stats? {
            S::Int64(v) => ((*v.min_opt()?).into(), (*v.max_opt()?).into()),
            S::Int32(v) => ((*v.min_opt()?).into(), (*v.max_opt()?).into()),
            _ => return None,
        };
        let (min, max) = (min * per_value, max * per_value);
        bounds = Some(match bounds {
            Some((lo, hi)) => (lo.min(min), hi.max(max)),
            None => (min, max),
        });
    }
    // A file with no values in the column holds nothing the unit must: an empty range.
    Some(bounds.unwrap_or((0, 0)))
}
