//! Parquet part files: the writer settings every file segscore writes shares, one part file
//! written under its temporary name ([`PartWriter`]), and a writer that rolls a stream of
//! batches over part files of bounded size ([`RollingWriter`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::sink::atomic::AtomicFile;

/// Parquet writer settings shared by every file segscore writes: zstd, row groups of 128Ki
/// rows, the run's key-value metadata, and `sorting_columns` when the file is sorted.
/// Float columns are written without dictionary encoding: their values are nearly all
/// distinct, so a dictionary only costs time before the writer falls back.
pub fn writer_properties(
    schema: &datafusion::arrow::datatypes::Schema,
    metadata: &[(String, String)],
    sorting: Option<Vec<SortingColumn>>,
) -> WriterProperties {
    let mut builder = WriterProperties::builder();
    for f in schema.fields() {
        if f.data_type().is_floating() {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
        }
    }
    builder
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_sorting_columns(sorting)
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        ))
        .build()
}

/// Writes `dir/name` as a Parquet file of no rows with `schema`: an output table that keeps
/// its schema for readers when no row reached it.
pub fn write_empty_part(
    dir: &Path,
    name: &str,
    schema: SchemaRef,
    metadata: &[(String, String)],
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let props = writer_properties(&schema, metadata, None);
    PartWriter::create(dir, name, schema, props)?.close()?;
    Ok(())
}

/// One Parquet part file being written under its `.inprogress` name ([`AtomicFile`]); dropped
/// unclosed, it leaves nothing. A `Date64` column is written as `Date32` (its values are whole
/// days): Parquet has no 64-bit date, and arrow-rs would write plain 64-bit integers that only
/// arrow-rs reads back as dates (pyarrow, DuckDB and polars read integers).
pub struct PartWriter {
    writer: ArrowWriter<AtomicFile>,
    rows: u64,
    path: PathBuf,
    /// The schema written, and the `Date64` columns cast to `Date32` in it.
    written: SchemaRef,
    dates: Vec<usize>,
}

/// A writer's error, an I/O one (a full disk) naming the file: the Parquet writer's own says
/// only `External: No space left on device`.
fn write_error(path: &Path, e: datafusion::parquet::errors::ParquetError) -> Error {
    use datafusion::parquet::errors::ParquetError;
    match e {
        ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => Error::io(path, *io),
            Err(inner) => Error::Parquet(ParquetError::External(inner)),
        },
        other => Error::Parquet(other),
    }
}

impl PartWriter {
    /// Creates `dir/name` (written as `dir/.name.inprogress` until [`PartWriter::close`]).
    pub fn create(dir: &Path, name: &str, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let path = dir.join(name);
        let file = AtomicFile::create(&path)?;
        let dates: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| schema.field(i).data_type() == &DataType::Date64)
            .collect();
        let written = if dates.is_empty() {
            schema
        } else {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Date64 => f.as_ref().clone().with_data_type(DataType::Date32),
                    _ => f.as_ref().clone(),
                })
                .collect();
            Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
        };
        let writer = ArrowWriter::try_new(file, Arc::clone(&written), Some(props))
            .map_err(|e| write_error(&path, e))?;
        Ok(PartWriter {
            writer,
            rows: 0,
            path,
            written,
            dates,
        })
    }

    /// Appends a batch (of the schema the writer was created with).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let with_dates;
        let batch = if self.dates.is_empty() {
            batch
        } else {
            let mut columns = batch.columns().to_vec();
            for &i in &self.dates {
                columns[i] = cast(&columns[i], &DataType::Date32)?;
            }
            with_dates = RecordBatch::try_new(Arc::clone(&self.written), columns)?;
            &with_dates
        };
        self.writer.write(batch).map_err(|e| write_error(&self.path, e))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes the file, syncs it and renames it to its final name.
    pub fn close(self) -> Result<PathBuf> {
        let path = self.path;
        self.writer
            .into_inner()
            .map_err(|e| write_error(&path, e))?
            .commit()
    }
}

/// Called with each part file's final path as it is closed (an `s3://` output starts its
/// upload).
pub type PartClosed = Arc<dyn Fn(&Path) + Send + Sync>;

/// Writes one stream of batches as part files of at most `max_rows` rows each, named
/// `part-NNNNN.parquet` from a counter shared by all writers of a run. Files claim the
/// `sorting` order until [`RollingWriter::mark_unsorted`] is called; the file open then is
/// closed, and later files make no claim.
pub struct RollingWriter {
    dir: PathBuf,
    schema: SchemaRef,
    metadata: Arc<Vec<(String, String)>>,
    sorting: Option<Vec<SortingColumn>>,
    max_rows: u64,
    counter: Arc<AtomicUsize>,
    prefix: String,
    current: Option<PartWriter>,
    closed: Vec<PathBuf>,
    on_close: Option<PartClosed>,
    /// Files this run reads back and deletes: written without compression.
    scratch: bool,
}

impl RollingWriter {
    /// A writer into `dir`; nothing is created before the first row.
    pub fn new(
        dir: PathBuf,
        schema: SchemaRef,
        metadata: Arc<Vec<(String, String)>>,
        sorting: Option<Vec<SortingColumn>>,
        max_rows: u64,
        counter: Arc<AtomicUsize>,
    ) -> Self {
        RollingWriter {
            dir,
            schema,
            metadata,
            sorting,
            max_rows: max_rows.max(1),
            counter,
            prefix: "part-".into(),
            current: None,
            closed: Vec::new(),
            on_close: None,
            scratch: false,
        }
    }

    /// Names files `<prefix>NNNNN.parquet` instead of `part-NNNNN.parquet`.
    pub fn with_prefix(mut self, prefix: String) -> Self {
        self.prefix = prefix;
        self
    }

    /// Writes files that the run reads back and deletes (the overall metrics' sample)
    /// uncompressed: zstd would cost the pass more CPU than it saves disk, and the read at
    /// the end waits for the decompression.
    pub fn scratch(mut self) -> Self {
        self.scratch = true;
        self
    }

    /// Calls `f` with each file as it is closed.
    pub fn on_close(mut self, f: Option<PartClosed>) -> Self {
        self.on_close = f;
        self
    }

    /// Appends a batch, starting new files as files fill up.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.current.as_ref().is_some_and(|w| w.rows() >= self.max_rows) {
                self.close_current()?;
            }
            let w = match &mut self.current {
                Some(w) => w,
                None => {
                    let n = self.counter.fetch_add(1, Ordering::Relaxed);
                    let mut props = writer_properties(&self.schema, &self.metadata, self.sorting.clone());
                    if self.scratch {
                        props = props
                            .into_builder()
                            .set_compression(Compression::UNCOMPRESSED)
                            .build();
                    }
                    self.current.insert(PartWriter::create(
                        &self.dir,
                        &format!("{}{n:05}.parquet", self.prefix),
                        Arc::clone(&self.schema),
                        props,
                    )?)
                }
            };
            let room = (self.max_rows - w.rows()) as usize;
            let take = room.min(batch.num_rows() - offset);
            w.write(&batch.slice(offset, take))?;
            offset += take;
        }
        Ok(())
    }

    /// The rows from now on may be out of order: close the current (sorted) file, and let
    /// later files make no sort-order claim.
    pub fn mark_unsorted(&mut self) -> Result<()> {
        if self.sorting.take().is_some() {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            let path = w.close()?;
            if let Some(f) = &self.on_close {
                f(&path);
            }
            self.closed.push(path);
            crate::faults::point("part-closed");
        }
        Ok(())
    }

    /// Closes the last file; returns every file written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.close_current()?;
        Ok(std::mem::take(&mut self.closed))
    }
}
