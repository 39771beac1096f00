//! What a scan reads of each object, for the read-ahead: the columns it reads (its
//! projection's and its filter's), the row groups its filter may keep (their footer's
//! statistics against the filter, as DataFusion prunes them), and so the byte ranges of those
//! columns' chunks in those row groups, from the object's footer in the metadata cache.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};

/// Where the chunks a scan reads hold this share of an object or more, the object is fetched
/// whole, in one request (the rest is little more to read).
const WHOLE_SHARE: f64 = 0.75;

/// What a scan reads of its files.
pub(super) struct Reads {
    /// The names of the columns it reads; None: all of them.
    columns: Option<HashSet<String>>,
    /// Its filter as row-group statistics can answer it, with the table's schema.
    pruning: Option<(Arc<PruningPredicate>, SchemaRef)>,
}

impl Reads {
    /// What the scan of `config` reads.
    pub(super) fn of(config: &FileScanConfig) -> Self {
        let source = config.file_source();
        let filter = source.filter();
        let columns = source.projection().map(|projection| {
            let mut names: HashSet<String> = projection
                .expr_iter()
                .flat_map(|e| collect_columns(&e))
                .map(|c| c.name().to_string())
                .collect();
            if let Some(f) = &filter {
                names.extend(collect_columns(f).into_iter().map(|c| c.name().to_string()));
            }
            names
        });
        // The filter is over the table's columns (the files' and the partition columns, whose
        // statistics the footers do not hold).
        let schema = Arc::clone(source.table_schema().table_schema());
        let pruning = filter
            .and_then(|f| {
                PruningPredicateBuilder::new()
                    .with_file_schema(Arc::clone(&schema))
                    .build(f)
            })
            .map(|p| (p, schema));
        Reads { columns, pruning }
    }

    /// The byte ranges the scan reads of `pieces`, files that name one object (one piece of it,
    /// or several that a stream opens one after another, fetched once for them all), merged where
    /// they touch: the chunks of its columns in the row groups the pieces read (all, or a part:
    /// [`in_piece`]) that its filter may keep. None to fetch the object whole: every column of
    /// every row group read, no footer cached for this version of the object, or the ranges
    /// [`WHOLE_SHARE`] of it or more.
    pub(super) fn chunks(
        &self,
        cache: &FileMetadataCache,
        pieces: &[PartitionedFile],
    ) -> Option<Vec<Range<u64>>> {
        let file = pieces.first()?;
        let part = |f: &PartitionedFile| f.range.is_some() || f.extensions.contains::<ParquetAccessPlan>();
        if self.columns.is_none() && self.pruning.is_none() && !pieces.iter().any(part) {
            return None;
        }
        let entry = cache.get(&file.object_meta.location)?;
        if !entry.is_valid_for(&file.object_meta) {
            return None;
        }
        let footer = entry
            .file_metadata
            .as_any()
            .downcast_ref::<CachedParquetMetaData>()?
            .parquet_metadata();
        let mut held = vec![false; footer.num_row_groups()];
        for piece in pieces {
            for (h, p) in held.iter_mut().zip(in_piece(footer, piece)) {
                *h |= p;
            }
        }
        let kept = self
            .row_groups(footer)
            .into_iter()
            .zip(held)
            .map(|(passes, held)| passes && held);
        let read = |name: Option<&String>| match (&self.columns, name) {
            (None, _) => true,
            (Some(columns), Some(name)) => columns.contains(name),
            (Some(_), None) => false,
        };
        let mut ranges: Vec<Range<u64>> = footer
            .row_groups()
            .iter()
            .zip(kept)
            .filter(|(_, kept)| *kept)
            .flat_map(|(g, _)| g.columns())
            .filter(|c| read(c.column_descr().path().parts().first()))
            .map(|c| {
                let (start, len) = c.byte_range();
                start..start.saturating_add(len)
            })
            .collect();
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let total: u64 = merged.iter().map(|r| r.end - r.start).sum();
        let size = file.object_meta.size;
        let few = (total as f64) < WHOLE_SHARE * size as f64 && merged.iter().all(|r| r.end <= size);
        few.then_some(merged)
    }

    /// Whether the scan may read each row group of `footer`: all of them without a filter, or
    /// where its statistics cannot answer it.
    fn row_groups(&self, footer: &ParquetMetaData) -> Vec<bool> {
        let n = footer.num_row_groups();
        let Some((predicate, schema)) = &self.pruning else {
            return vec![true; n];
        };
        let stats = RowGroupStats { footer, schema };
        match predicate.prune(&stats) {
            Ok(kept) if kept.len() == n => kept,
            _ => vec![true; n],
        }
    }
}

/// Which row groups of `footer` the piece `file` reads, as DataFusion's scan picks them: those
/// its access plan scans (if it has one), and whose first page starts in its byte range (if it
/// has one: a row group belongs to the piece where it starts).
fn in_piece(footer: &ParquetMetaData, file: &PartitionedFile) -> Vec<bool> {
    let plan = file
        .extensions
        .get::<ParquetAccessPlan>()
        .filter(|a| a.len() == footer.num_row_groups());
    footer
        .row_groups()
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let planned = plan.is_none_or(|a| a.should_scan(i));
            let starts =
                |c: &ColumnChunkMetaData| c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset());
            let in_range = match (&file.range, g.columns().first()) {
                (Some(r), Some(c)) => r.contains(starts(c)),
                _ => true,
            };
            planned && in_range
        })
        .collect()
}

/// The row groups' statistics of one footer, for [`PruningPredicate::prune`]: a column's
/// minimums, maximums and null counts where the footer holds them as the table's type, else
/// unknown (no row group pruned on it).
struct RowGroupStats<'a> {
    footer: &'a ParquetMetaData,
    schema: &'a Schema,
}

impl RowGroupStats<'_> {
    fn converter(&self, column: &Column) -> Option<StatisticsConverter<'_>> {
        StatisticsConverter::try_new(
            &column.name,
            self.schema,
            self.footer.file_metadata().schema_descr(),
        )
        .ok()
    }
}

impl PruningStatistics for RowGroupStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_mins(self.footer.row_groups())
            .ok()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_maxes(self.footer.row_groups())
            .ok()
    }

    fn num_containers(&self) -> usize {
        self.footer.num_row_groups()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let counts = self
            .converter(column)?
            .row_group_null_counts(self.footer.row_groups())
            .ok()?;
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let rows: UInt64Array = self
            .footer
            .row_groups()
            .iter()
            .map(|g| Some(g.num_rows().max(0) as u64))
            .collect();
        Some(Arc::new(rows))
    }

    #[allow(clippy::mutable_key_type)] // the trait's signature
    fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::logical_expr::Operator;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    #[test]
    fn a_scan_fetches_the_chunks_of_its_columns_in_the_row_groups_its_filter_keeps() {
        // Two row groups (0..500, 500..1000) of a small column and a large one.
        let small: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
        let big: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..1000).map(|i| format!("{i:0200}")),
        ));
        let batch = RecordBatch::try_from_iter([("small", small), ("big", big)]).unwrap();
        let schema = batch.schema();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(500))
            .build();
        let mut bytes = Vec::new();
        let mut w = ArrowWriter::try_new(&mut bytes, Arc::clone(&schema), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let bytes = Bytes::from(bytes);
        let footer = ParquetMetaDataReader::new().parse_and_finish(&bytes).unwrap();
        assert_eq!(footer.num_row_groups(), 2);
        let chunk = |g: usize, c: usize| {
            let (start, len) = footer.row_group(g).column(c).byte_range();
            start..start + len
        };
        let file = PartitionedFile::new("bucket/f.parquet", bytes.len() as u64);
        let cache = RuntimeEnvBuilder::new()
            .build()
            .unwrap()
            .cache_manager
            .get_file_metadata_cache();
        let reads = |columns: Option<&[&str]>, filter: Option<i64>| Reads {
            columns: columns.map(|n| n.iter().map(|s| s.to_string()).collect()),
            pruning: filter.map(|at_least| {
                let e = binary(
                    col("small", &schema).unwrap(),
                    Operator::GtEq,
                    lit(at_least),
                    &schema,
                )
                .unwrap();
                let p = PruningPredicateBuilder::new().with_file_schema(Arc::clone(&schema));
                (p.build(e).unwrap(), Arc::clone(&schema))
            }),
        };
        // No footer cached: the whole object.
        assert_eq!(
            reads(Some(&["small"]), None).chunks(cache.as_ref(), std::slice::from_ref(&file)),
            None
        );
        let entry = CachedFileMetadataEntry::new(
            file.object_meta.clone(),
            Arc::new(CachedParquetMetaData::new(Arc::new(footer.clone()))),
        );
        cache.put(&file.object_meta.location, entry);
        // The small column: its chunk in each row group.
        assert_eq!(
            reads(Some(&["small", "elsewhere"]), None).chunks(cache.as_ref(), std::slice::from_ref(&file)),
            Some(vec![chunk(0, 0), chunk(1, 0)])
        );
        // The large one, or every column (or no projection): the whole object.
        for columns in [Some(&["big"][..]), Some(&["small", "big"][..]), None] {
            assert_eq!(
                reads(columns, None).chunks(cache.as_ref(), std::slice::from_ref(&file)),
                None
            );
        }
        // A filter that only the second row group can pass: its chunks alone, of every column
        // without a projection; none where no row group can pass.
        assert_eq!(
            reads(Some(&["small"]), Some(600)).chunks(cache.as_ref(), std::slice::from_ref(&file)),
            Some(vec![chunk(1, 0)])
        );
        let both = chunk(1, 0).start..chunk(1, 1).end;
        assert_eq!(
            reads(None, Some(600)).chunks(cache.as_ref(), std::slice::from_ref(&file)),
            Some(vec![both.clone()])
        );
        assert_eq!(
            reads(None, Some(5000)).chunks(cache.as_ref(), std::slice::from_ref(&file)),
            Some(vec![])
        );
        // One every row group may pass: all of them.
        assert_eq!(
            reads(None, Some(0)).chunks(cache.as_ref(), std::slice::from_ref(&file)),
            None
        );
        // Another version of the object (another size): its footer is not this one.
        let other = PartitionedFile::new("bucket/f.parquet", bytes.len() as u64 + 1);
        assert_eq!(
            reads(Some(&["small"]), None).chunks(cache.as_ref(), &[other]),
            None
        );
        // A piece of the object (one partition's part of it) reads only its row groups, every
        // column without a projection: those its access plan scans...
        let first = chunk(0, 0).start..chunk(0, 1).end;
        let mut plan = ParquetAccessPlan::new_none(2);
        plan.scan(1);
        let mut second_group = file.clone();
        second_group.extensions.insert(plan);
        assert_eq!(
            reads(None, None).chunks(cache.as_ref(), std::slice::from_ref(&second_group)),
            Some(vec![both.clone()])
        );
        // ...and, of a byte range, those whose first page starts in it (DataFusion's rule),
        // the filter's pruning too.
        let starts = |g: usize| chunk(g, 0).start as i64;
        let ranged = |r: Range<i64>| file.clone().with_range(r.start, r.end);
        assert_eq!(
            reads(None, None).chunks(cache.as_ref(), &[ranged(0..starts(1))]),
            Some(vec![first.clone()])
        );
        assert_eq!(
            reads(None, None).chunks(cache.as_ref(), &[ranged(starts(1)..bytes.len() as i64)]),
            Some(vec![both])
        );
        assert_eq!(
            reads(None, Some(600)).chunks(cache.as_ref(), &[ranged(0..starts(1))]),
            Some(vec![])
        );
        // A piece that holds every row group: the whole object.
        assert_eq!(
            reads(None, None).chunks(cache.as_ref(), &[ranged(0..bytes.len() as i64)]),
            None
        );
        // Pieces a stream opens one after another: what they read together, fetched once.
        assert_eq!(
            reads(Some(&["small"]), None)
                .chunks(cache.as_ref(), &[ranged(0..starts(1)), second_group.clone()]),
            Some(vec![chunk(0, 0), chunk(1, 0)])
        );
        assert_eq!(
            reads(None, None).chunks(cache.as_ref(), &[ranged(0..starts(1)), second_group]),
            None
        );
    }
}
