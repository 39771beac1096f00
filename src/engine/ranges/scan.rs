//! The scan of sorted files cut into key ranges ([`super::KeyRanges`]): the table that regroups
//! the listing table's files into the ranges, the plan node that declares them, and the check
//! each partition makes of its range.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Constraints, DataFusionError, ScalarValue, SplitPoint, Statistics};
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr, RangePartitioning};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};

use super::check::{KeyCheck, KeyRange};
use super::{KeyRanges, Piece};
use crate::engine::footer::KeyBound;
use crate::engine::keys::ASCENDING;

/// Which rows of its file `p` reads (None: all); `rows` are the file's row groups' rows.
fn access_plan(p: &Piece, rows: &[u64]) -> Option<ParquetAccessPlan> {
    use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
    if p.row_groups == (0..rows.len()) && p.skip == 0 && p.take.is_none() {
        return None;
    }
    let mut access = ParquetAccessPlan::new_none(rows.len());
    for rg in p.row_groups.clone() {
        let n = rows[rg] as usize;
        let from = if rg == p.row_groups.start {
            p.skip as usize
        } else {
            0
        };
        let to = match p.take {
            Some(t) if rg + 1 == p.row_groups.end => t as usize,
            _ => n,
        };
        if (from, to) == (0, n) {
            access.scan(rg);
        } else {
            let selectors = [
                RowSelector::skip(from),
                RowSelector::select(to - from),
                RowSelector::skip(n - to),
            ];
            let selectors: Vec<RowSelector> = selectors.into_iter().filter(|s| s.row_count > 0).collect();
            access.set(rg, RowGroupAccess::Selection(RowSelection::from(selectors)));
        }
    }
    Some(access)
}

/// A bound as a value of the key column's type (None for types other than integers and
/// strings).
fn bound_value(b: &KeyBound, t: &DataType) -> Option<ScalarValue> {
    let v = match b {
        KeyBound::Int(i) => ScalarValue::Int64(Some(*i)),
        KeyBound::Bytes(bytes) => ScalarValue::Utf8(Some(String::from_utf8(bytes.clone()).ok()?)),
    };
    let integer_or_string =
        t.is_integer() || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    integer_or_string.then(|| v.cast_to(t).ok()).flatten()
}

/// A table over sorted files whose scan is cut into key ranges ([`KeyRanges`]): the listing
/// table's scan, its files regrouped into the ranges, declared range-partitioned on the first
/// key column and sorted by all the keys within each range ([`KeyRangeExec`]).
#[derive(Debug)]
pub struct KeyRangeTable {
    inner: Arc<dyn TableProvider>,
    ranges: KeyRanges,
    /// Each file of the ranges' pieces: as the listing table's scan names it, and its row
    /// groups' rows.
    files: Vec<(String, Vec<u64>)>,
    /// The key columns' names in the files: the ranges are of the first, and the rows of each
    /// range are in the order of all.
    keys: Vec<String>,
    /// Whether a scan that cannot be cut is an error rather than the inner table's (whose
    /// declared order nothing after it may check).
    strict: bool,
}

impl KeyRangeTable {
    /// Wraps `inner`, a listing table over `files` (their object-store paths and their row
    /// groups' rows, in the order [`super::plan_ranges`] was given them), whose key columns are `keys`.
    pub fn new(
        inner: Arc<dyn TableProvider>,
        ranges: KeyRanges,
        files: Vec<(String, Vec<u64>)>,
        keys: Vec<String>,
    ) -> Self {
        KeyRangeTable {
            inner,
            ranges,
            files,
            keys,
            strict: false,
        }
    }

    /// A scan that cannot be cut into the ranges fails, rather than read the files with their
    /// declared order unchecked: for queries that check nothing after the scan.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// The listing table's scan regrouped into the ranges; None (the scan stays as it is) when
    /// it is not a Parquet file scan over these files with the key columns as they are.
    fn regroup(&self, plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        let exec = plan.downcast_ref::<DataSourceExec>()?;
        let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
        let schema = plan.schema();
        let key_type = schema.field_with_name(&self.keys[0]).ok()?.data_type().clone();
        let splits = self
            .ranges
            .splits
            .iter()
            .map(|b| bound_value(b, &key_type).map(|v| SplitPoint::new(vec![v])))
            .collect::<Option<Vec<_>>>()?;
        let mut files: std::collections::HashMap<&str, &datafusion::datasource::listing::PartitionedFile> =
            std::collections::HashMap::new();
        for f in config.file_groups.iter().flat_map(|g| g.iter()) {
            if f.range.is_some() || files.insert(f.object_meta.location.as_ref(), f).is_some() {
                return None;
            }
        }
        if files.keys().any(|l| !self.files.iter().any(|(m, _)| m == l)) {
            return None;
        }
        let groups: Vec<FileGroup> = self
            .ranges
            .groups
            .iter()
            .map(|pieces| {
                // A file the scan left out (its filters prune it) stays out.
                let parts = pieces.iter().filter_map(|p| {
                    let (location, rows) = &self.files[p.file];
                    let mut f = (*files.get(location.as_str())?).clone();
                    if let Some(access) = access_plan(p, rows) {
                        // The file's statistics are not this piece's.
                        f.statistics = None;
                        f.extensions.insert(access);
                    }
                    Some(f)
                });
                FileGroup::new(parts.collect())
            })
            .collect();
        let regrouped = FileScanConfigBuilder::from(config.clone())
            .with_file_groups(groups)
            .build();
        // (It checks that the scan has one partition per range.)
        Some(Arc::new(KeyRangeExec::try_new(
            DataSourceExec::from_data_source(regrouped),
            self.keys.clone(),
            splits,
        )?))
    }
}

#[async_trait]
impl TableProvider for KeyRangeTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        match self.regroup(&plan) {
            Some(ranged) => Ok(ranged),
            None if self.strict => datafusion::common::plan_err!(
                "the scan of {} cannot be cut into the key ranges that check its order",
                self.keys.join(", ")
            ),
            None => Ok(plan),
        }
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}

/// A file scan regrouped into key ranges, declaring them: range partitioning on the first key
/// column and the keys' order (ascending, nulls last) within each partition. DataFusion takes
/// both on trust; this node checks them as rows pass: a row before the one ahead of it, or
/// outside its partition's range, ends the stream with [`crate::error::Error::NotSorted`] or
/// [`crate::error::Error::OutsideKeyRange`].
#[derive(Debug)]
pub struct KeyRangeExec {
    input: Arc<dyn ExecutionPlan>,
    /// The key columns' names.
    keys: Vec<String>,
    /// Where each range after the first starts.
    splits: Vec<SplitPoint>,
    properties: Arc<PlanProperties>,
}

impl KeyRangeExec {
    /// Declares `input`'s partitions the ranges that `splits` divide (None when `input` lacks
    /// a key column, has another number of partitions, or the splits are not in order).
    fn try_new(input: Arc<dyn ExecutionPlan>, keys: Vec<String>, splits: Vec<SplitPoint>) -> Option<Self> {
        let schema = input.schema();
        let cols: Vec<Arc<dyn PhysicalExpr>> = keys
            .iter()
            .map(|name| {
                Some(Arc::new(Column::new(name, schema.index_of(name).ok()?)) as Arc<dyn PhysicalExpr>)
            })
            .collect::<Option<_>>()?;
        if cols.is_empty() || input.properties().partitioning.partition_count() != splits.len() + 1 {
            return None;
        }
        let sorted = |c: &Arc<dyn PhysicalExpr>| PhysicalSortExpr::new(Arc::clone(c), ASCENDING);
        let range = RangePartitioning::try_new(LexOrdering::new([sorted(&cols[0])])?, splits.clone()).ok()?;
        let mut eq = input.properties().eq_properties.clone();
        eq.add_ordering(cols.iter().map(sorted));
        let properties = input
            .properties()
            .as_ref()
            .clone()
            .with_eq_properties(eq)
            .with_partitioning(Partitioning::Range(range));
        Some(KeyRangeExec {
            input,
            keys,
            splits,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for KeyRangeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KeyRangeExec: {}", self.properties.partitioning)
    }
}

impl ExecutionPlan for KeyRangeExec {
    fn name(&self) -> &str {
        "KeyRangeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        // The order is this node's own declaration (the regrouped scan cannot prove it from
        // statistics), so no requirement is pushed through it to the scan.
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let input = match children.len() {
            1 => children.remove(0),
            n => return datafusion::common::internal_err!("KeyRangeExec takes one input, not {n}"),
        };
        match KeyRangeExec::try_new(input, self.keys.clone(), self.splits.clone()) {
            Some(exec) => Ok(Arc::new(exec)),
            None => datafusion::common::internal_err!(
                "KeyRangeExec's new input no longer has the key columns or the ranges' partitions"
            ),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        use futures::StreamExt;
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let columns: Vec<usize> = self
            .keys
            .iter()
            .map(|k| schema.index_of(k))
            .collect::<Result<_, _>>()?;
        let value = |i: usize| self.splits.get(i).and_then(|s| s.values().first().cloned());
        let range = KeyRange {
            lower: partition.checked_sub(1).and_then(value),
            upper: value(partition),
        };
        let mut check =
            KeyCheck::new(&schema, columns, range).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let checked = stream.map(move |batch| {
            let batch = batch?;
            check
                .check(&batch)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, checked)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_reads_its_rows_of_its_first_and_last_row_groups() {
        use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
        let piece = |row_groups, skip, take| Piece {
            file: 0,
            row_groups,
            skip,
            take,
        };
        let rows = [100, 100];
        let selection = |s: Vec<RowSelector>| RowGroupAccess::Selection(RowSelection::from(s));
        let first = access_plan(&piece(0..2, 0, Some(30)), &rows).unwrap();
        assert_eq!(
            first.inner(),
            &[
                RowGroupAccess::Scan,
                selection(vec![RowSelector::select(30), RowSelector::skip(70)])
            ]
        );
        let second = access_plan(&piece(1..2, 30, None), &rows).unwrap();
        assert_eq!(
            second.inner(),
            &[
                RowGroupAccess::Skip,
                selection(vec![RowSelector::skip(30), RowSelector::select(70)])
            ]
        );
        let middle = access_plan(&piece(0..1, 10, Some(20)), &rows).unwrap();
        assert_eq!(
            middle.inner(),
            &[
                selection(vec![
                    RowSelector::skip(10),
                    RowSelector::select(10),
                    RowSelector::skip(80)
                ]),
                RowGroupAccess::Skip
            ]
        );
        assert!(
            access_plan(&piece(0..2, 0, None), &rows).is_none(),
            "a whole file needs no plan"
        );
    }
}
