//! Where `segscore sql` puts its result: a table printed on stdout, CSV, JSON or Markdown
//! streamed to stdout, or a file (CSV, JSON, Parquet, Markdown) written under a temporary name and renamed when
//! complete; an `s3://` file staged in a local folder of its own before its upload.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use super::sql::Format;
use super::stdout::{print, Stdout};
use crate::error::{Error, Result};
use crate::sink::{writer_properties, AtomicFile, PartWriter};
use crate::source::expand::compressed;

/// Where the result goes: files are written under a temporary name and renamed when done, so
/// a failed query leaves no partial file under the name asked for.
pub(super) enum Sink {
    Table(Box<Shown>),
    Csv(Box<Csv>),
    Json(Box<datafusion::arrow::json::LineDelimitedWriter<Out>>),
    Parquet(Box<PartWriter>),
    Markdown(Box<Out>),
}

/// CSV: arrow writes the header with the first batch; with none, it is written at the end (a
/// result of no rows is its header alone, not an empty file).
pub(super) struct Csv {
    writer: datafusion::arrow::csv::Writer<Out>,
    schema: datafusion::arrow::datatypes::SchemaRef,
    /// Whether a batch (and with it the header) was written.
    written: bool,
}

/// A table for the terminal: the first `limit` rows kept (all without one), every row counted;
/// with no rows, its header. A cell longer than `width` characters (a segment's token list, a
/// long text) is cut to that width, ending in `…`, so a row stays a line of a screen.
pub(super) struct Shown {
    schema: datafusion::arrow::datatypes::SchemaRef,
    kept: Vec<RecordBatch>,
    kept_rows: usize,
    limit: Option<usize>,
    width: Option<usize>,
    rows: u64,
}

impl Shown {
    fn push(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        let room = self.limit.map_or(batch.num_rows(), |l| l - self.kept_rows);
        let take = batch.num_rows().min(room);
        if take > 0 {
            self.kept.push(batch.slice(0, take));
            self.kept_rows += take;
        }
    }

    /// The table, and below it how many rows there were when not all are shown.
    fn text(&self) -> Result<String> {
        let none = [RecordBatch::new_empty(Arc::clone(&self.schema))];
        let shown = if self.kept.is_empty() {
            &none[..]
        } else {
            &self.kept[..]
        };
        let mut cut = false;
        let shown = shown
            .iter()
            .map(|b| {
                let (b, c) = as_text(b, |_| true, self.width)?;
                cut |= c;
                Ok(b)
            })
            .collect::<Result<Vec<_>>>()?;
        let table = datafusion::arrow::util::pretty::pretty_format_batches(&shown)?;
        let mut text = format!("{table}\n");
        if self.rows > self.kept_rows as u64 {
            text += &format!(
                "{} rows, the first {} shown (--max-rows N shows N, 0 all; --format csv or json streams every row)\n",
                self.rows, self.kept_rows
            );
        }
        if let (true, Some(w)) = (cut, self.width) {
            text += &format!(
                "cells longer than {w} characters are cut, ending in … (--max-width N shows N, 0 whole)\n"
            );
        }
        Ok(text)
    }
}

/// How a Parquet result is written where a `COPY`'s options say: DuckDB's `COMPRESSION`,
/// `COMPRESSION_LEVEL` and `ROW_GROUP_SIZE`, or DataFusion's `OPTIONS ('format.compression'
/// 'snappy', 'format.max_row_group_size' '100000')`; segscore's own settings (zstd, 128Ki rows
/// a row group) where they say nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ParquetSettings {
    /// The codec.
    pub compression: Option<datafusion::parquet::basic::Compression>,
    /// Rows per row group.
    pub row_group_rows: Option<usize>,
}

/// The Parquet codecs a COPY may name.
const CODECS: [&str; 7] = [
    "zstd",
    "snappy",
    "gzip",
    "brotli",
    "lz4",
    "lz4_raw",
    "uncompressed",
];

impl ParquetSettings {
    /// A codec by its name as DuckDB and DataFusion give it: `zstd`, `snappy`, `gzip`,
    /// `brotli`, `lz4`, `lz4_raw`, `uncompressed` (or `none`), with a level in parentheses
    /// where the codec takes one (`zstd(9)`); zstd, gzip and brotli without one take their
    /// default level.
    pub(super) fn codec(name: &str) -> std::result::Result<datafusion::parquet::basic::Compression, String> {
        use datafusion::parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "zstd" => Ok(Compression::ZSTD(ZstdLevel::default())),
            "gzip" => Ok(Compression::GZIP(GzipLevel::default())),
            "brotli" => Ok(Compression::BROTLI(BrotliLevel::default())),
            "none" => Ok(Compression::UNCOMPRESSED),
            _ => name.parse::<Compression>().map_err(|e| {
                let codec = name.split('(').next().unwrap_or_default();
                match CODECS.contains(&codec) {
                    // A level out of the codec's range: parquet's message gives the range.
                    true => format!("COMPRESSION {name}: {e}"),
                    false => format!(
                        "COMPRESSION {name}: give {} (with a level: zstd(9))",
                        CODECS.join(", ")
                    ),
                }
            }),
        }
    }

    /// The settings for a result written as `format` to `to` (named in messages as `label`
    /// gives it: `--to`, `COPY ... TO`): a row group size is for Parquet only; a CSV or JSON
    /// file is compressed as its name says (`out.csv.gz`: gzip, `.zst`: zstd, `.bz2`, `.xz`),
    /// and a COPY's `COMPRESSION` must say the same (DuckDB's `COMPRESSION gzip` beside
    /// `out.csv.gz`); a Parquet or Markdown file's name says none (Parquet's codec is inside).
    pub(super) fn for_format(self, format: Format, label: &str, to: &Path) -> Result<Self> {
        use datafusion::parquet::basic::Compression;
        let named = codec_of(to);
        let refused = |what: String| Err(Error::Usage(format!("{label} {}: {what}", to.display())));
        match (format, named, self.compression) {
            (Format::Parquet, Some(c), _) => {
                return refused(format!(
                    "a Parquet file is not {c}-compressed as a whole: its codec is inside it (COPY's COMPRESSION)"
                ))
            }
            (Format::Markdown, Some(c), _) => {
                return refused(format!("a Markdown file is written uncompressed, not {c}"))
            }
            (Format::Parquet, _, _) => return Ok(self),
            (_, None, None | Some(Compression::UNCOMPRESSED))
            | (_, Some(".gz"), None | Some(Compression::GZIP(_)))
            | (_, Some(".zst"), None | Some(Compression::ZSTD(_)))
            | (_, Some(_), None) => {}
            (_, _, Some(c)) => {
                let codec = format!("{c:?}").split('(').next().unwrap_or_default().to_ascii_lowercase();
                return refused(format!(
                    "COMPRESSION {codec}: {} is compressed as the file's name says (.gz gzip, .zst zstd, .bz2, .xz; none: uncompressed)",
                    format.name()
                ));
            }
        }
        match self.row_group_rows {
            Some(_) => refused(format!("ROW_GROUP_SIZE is for Parquet, not {}", format.name())),
            None => Ok(Self::default()),
        }
    }

    /// segscore's writer properties with these settings.
    fn applied(
        self,
        props: datafusion::parquet::file::properties::WriterProperties,
    ) -> datafusion::parquet::file::properties::WriterProperties {
        let mut builder = props.into_builder();
        if let Some(c) = self.compression {
            builder = builder.set_compression(c);
        }
        if let Some(n) = self.row_group_rows {
            builder = builder.set_max_row_group_row_count(Some(n));
        }
        builder.build()
    }
}

/// The compression a file's name says by its ending ([`compressed`]: `.gz`, `.zst`, ...).
fn codec_of(to: &Path) -> Option<&'static str> {
    compressed(to.file_name()?.to_str()?).map(|(_, ending)| ending)
}

/// A file written through a codec: its last block written, then the file, to be committed.
pub(super) trait Encoding: Write + Send {
    fn finish(self: Box<Self>) -> std::io::Result<AtomicFile>;
}

/// The codecs' writers: each hands back its file when its last block is written.
#[cfg(feature = "compression")]
mod codecs {
    use super::{AtomicFile, Encoding};
    macro_rules! encodings {
        ($($writer:ty),*) => {$(
            impl Encoding for $writer {
                fn finish(self: Box<Self>) -> std::io::Result<AtomicFile> {
                    (*self).finish()
                }
            }
        )*};
    }
    encodings!(
        flate2::write::GzEncoder<AtomicFile>,
        zstd::stream::write::Encoder<'static, AtomicFile>,
        bzip2::write::BzEncoder<AtomicFile>,
        liblzma::write::XzEncoder<AtomicFile>
    );
}

/// `file` written through the codec `ending` names (each at its default level).
fn encoding(ending: &str, file: AtomicFile, path: &Path) -> Result<Box<dyn Encoding>> {
    #[cfg(feature = "compression")]
    {
        let encoded: Box<dyn Encoding> = match ending {
            ".gz" => Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            ".zst" => Box::new(zstd::stream::write::Encoder::new(file, 0).map_err(|e| Error::io(path, e))?),
            ".bz2" => Box::new(bzip2::write::BzEncoder::new(file, bzip2::Compression::default())),
            _ => Box::new(liblzma::write::XzEncoder::new(file, 6)),
        };
        Ok(encoded)
    }
    #[cfg(not(feature = "compression"))]
    {
        drop(file);
        Err(Error::Usage(format!(
            "{}: a compressed file ({ending}); this build writes none: a build with the `compression` feature (the default) does",
            path.display()
        )))
    }
}

/// stdout, or a file under a temporary name ([`AtomicFile`]) that [`Out::commit`] renames,
/// written through a codec where its name says one; dropped before that (a failed query), the
/// file leaves nothing.
pub(super) enum Out {
    Stdout(Stdout),
    File(AtomicFile),
    Compressed(Box<dyn Encoding>),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Stdout(s) => s.write(buf),
            Out::File(f) => f.write(buf),
            Out::Compressed(c) => c.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Stdout(s) => s.flush(),
            Out::File(f) => f.flush(),
            Out::Compressed(c) => c.flush(),
        }
    }
}

impl Out {
    fn open(to: Option<&Path>) -> Result<Out> {
        Ok(match to {
            None => Out::Stdout(Stdout::new()),
            Some(path) => {
                let file = AtomicFile::create(path)?;
                match codec_of(path) {
                    Some(ending) => Out::Compressed(encoding(ending, file, path)?),
                    None => Out::File(file),
                }
            }
        })
    }

    fn commit(self) -> Result<()> {
        match self {
            Out::Stdout(mut s) => s.flush().map_err(|e| Error::io("<stdout>", e)),
            Out::File(f) => f.commit().map(drop),
            Out::Compressed(c) => c
                .finish()
                .map_err(|e| Error::io("the result", e))?
                .commit()
                .map(drop),
        }
    }
}

impl Sink {
    pub(super) fn open(
        format: Format,
        to: Option<&Path>,
        schema: &datafusion::arrow::datatypes::SchemaRef,
        max_rows: Option<usize>,
        max_width: Option<usize>,
        parquet: ParquetSettings,
    ) -> Result<Sink> {
        Ok(match format {
            Format::Table => Sink::Table(Box::new(Shown {
                schema: Arc::clone(schema),
                kept: Vec::new(),
                kept_rows: 0,
                limit: max_rows,
                width: max_width,
                rows: 0,
            })),
            Format::Csv => Sink::Csv(Box::new(Csv {
                writer: datafusion::arrow::csv::Writer::new(Out::open(to)?),
                schema: Arc::clone(schema),
                written: false,
            })),
            // Every column in every object, a null as `null` (arrow leaves such keys out: a
            // reader inferring columns from the first lines would miss a column null there).
            Format::Json => Sink::Json(Box::new(
                datafusion::arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(Out::open(to)?),
            )),
            Format::Markdown => {
                let mut out = Out::open(to)?;
                let names: Vec<String> = schema.fields().iter().map(|f| markdown_cell(f.name())).collect();
                let rule = vec!["---"; names.len()];
                let header = format!("| {} |\n| {} |\n", names.join(" | "), rule.join(" | "));
                out.write_all(header.as_bytes())
                    .map_err(|e| Error::io("the result", e))?;
                Sink::Markdown(Box::new(out))
            }
            Format::Parquet => {
                let path = to.ok_or_else(|| Error::Usage("--format parquet needs --to FILE".into()))?;
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let name = path
                    .file_name()
                    .ok_or_else(|| Error::Usage(format!("--to {}: not a file name", path.display())))?;
                Sink::Parquet(Box::new(PartWriter::create(
                    dir,
                    &name.to_string_lossy(),
                    Arc::clone(schema),
                    parquet.applied(writer_properties(schema, &[], None)),
                )?))
            }
        })
    }

    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Sink::Table(t) => t.push(batch),
            Sink::Csv(c) => {
                c.writer.write(&flat_for_csv(batch)?)?;
                c.written = true;
            }
            Sink::Json(w) => w.write(&map_keys_as_text(batch)?)?,
            Sink::Parquet(w) => w.write(batch)?,
            Sink::Markdown(out) => {
                use datafusion::arrow::array::Array;
                let (text, _) = as_text(batch, |_| true, None)?;
                let columns: Vec<&datafusion::arrow::array::StringArray> = text
                    .columns()
                    .iter()
                    .filter_map(|c| c.as_any().downcast_ref())
                    .collect();
                let mut lines = String::new();
                for row in 0..text.num_rows() {
                    let cells: Vec<String> = columns
                        .iter()
                        .map(|c| {
                            if c.is_null(row) {
                                String::new()
                            } else {
                                markdown_cell(c.value(row))
                            }
                        })
                        .collect();
                    lines += &format!("| {} |\n", cells.join(" | "));
                }
                out.write_all(lines.as_bytes())
                    .map_err(|e| Error::io("the result", e))?;
            }
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<()> {
        match self {
            Sink::Table(t) => print(&t.text()?),
            Sink::Csv(mut c) => {
                if !c.written {
                    let empty = RecordBatch::new_empty(c.schema);
                    c.writer.write(&flat_for_csv(&empty)?)?;
                }
                c.writer.into_inner().commit()
            }
            Sink::Json(mut w) => {
                w.finish()?;
                w.into_inner().commit()
            }
            Sink::Parquet(w) => w.close().map(|_| ()),
            Sink::Markdown(out) => out.commit(),
        }
    }
}

/// A cell of a Markdown table: `|` escaped, a line break as `<br>`.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// `batch` with each nested column (lists, structs, maps: CSV has no such cells) as text, the
/// way arrow displays it (`[1, 2, 3]`, `{a: 1}`); null stays null.
fn flat_for_csv(batch: &RecordBatch) -> Result<RecordBatch> {
    as_text(batch, |t| t.is_nested(), None).map(|(b, _)| b)
}

/// `batch` with every map's keys as text, at any depth (a JSON object's keys are text, and
/// arrow's writer refused a map of other keys, such as `histogram(n)` of integers gives):
/// `{"1": 2}`, as DuckDB writes such a map.
fn map_keys_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    /// `t` with each map's key type text.
    fn text_keys(t: &DataType) -> DataType {
        let within = |f: &Arc<Field>| Arc::new(f.as_ref().clone().with_data_type(text_keys(f.data_type())));
        match t {
            DataType::Map(entries, sorted) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return t.clone();
                };
                let fields: Vec<Arc<Field>> = kv
                    .iter()
                    .enumerate()
                    .map(|(i, f)| match f.data_type() {
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if i == 0 => Arc::clone(f),
                        _ if i == 0 => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8)),
                        _ => within(f),
                    })
                    .collect();
                let entries = entries
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Struct(fields.into()));
                DataType::Map(Arc::new(entries), *sorted)
            }
            DataType::List(f) => DataType::List(within(f)),
            DataType::LargeList(f) => DataType::LargeList(within(f)),
            DataType::FixedSizeList(f, n) => DataType::FixedSizeList(within(f), *n),
            DataType::Struct(fs) => DataType::Struct(fs.iter().map(within).collect()),
            t => t.clone(),
        }
    }
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| text_keys(f.data_type()) != *f.data_type())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let to = text_keys(f.data_type());
        columns.push(datafusion::arrow::compute::cast(c, &to)?);
        fields.push(f.as_ref().clone().with_data_type(to));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// `batch` with the columns whose type `pick` takes as text, each cell as arrow displays it
/// (`[1, 2, 3]`, `{a: 1}`, `0.5`), a null still null; with `width`, a cell longer than that
/// many characters is cut to them, its last one `…`. Also whether any cell was cut.
fn as_text(
    batch: &RecordBatch,
    pick: impl Fn(&datafusion::arrow::datatypes::DataType) -> bool,
    width: Option<usize>,
) -> Result<(RecordBatch, bool)> {
    use datafusion::arrow::array::{Array, ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    if !batch.schema().fields().iter().any(|f| pick(f.data_type())) {
        return Ok((batch.clone(), false));
    }
    let mut cut = false;
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if !pick(f.data_type()) {
            fields.push(f.as_ref().clone());
            columns.push(Arc::clone(c));
            continue;
        }
        let shown = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default())?;
        let text: StringArray = (0..c.len())
            .map(|i| {
                c.is_valid(i).then(|| {
                    let cell = shown.value(i).to_string();
                    match width {
                        Some(w) if cell.chars().nth(w).is_some() => {
                            cut = true;
                            let mut short: String = cell.chars().take(w.saturating_sub(1)).collect();
                            short.push('…');
                            short
                        }
                        _ => cell,
                    }
                })
            })
            .collect();
        fields.push(Field::new(f.name(), DataType::Utf8, true));
        columns.push(Arc::new(text));
    }
    Ok((RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_codecs_by_duckdbs_and_datafusions_names() {
        use datafusion::parquet::basic::{Compression, GzipLevel, ZstdLevel};
        let codec = |n: &str| ParquetSettings::codec(n);
        assert_eq!(codec("ZSTD"), Ok(Compression::ZSTD(ZstdLevel::default())));
        assert_eq!(
            codec("zstd(9)"),
            Ok(Compression::ZSTD(ZstdLevel::try_new(9).unwrap()))
        );
        assert_eq!(codec("gzip"), Ok(Compression::GZIP(GzipLevel::default())));
        assert_eq!(codec("none"), Ok(Compression::UNCOMPRESSED));
        assert_eq!(codec("lz4_raw"), Ok(Compression::LZ4_RAW));
        assert!(codec("zstd(99)")
            .unwrap_err()
            .starts_with("COMPRESSION zstd(99): "));
        assert_eq!(
            codec("zip").unwrap_err(),
            "COMPRESSION zip: give zstd, snappy, gzip, brotli, lz4, lz4_raw, uncompressed (with a level: zstd(9))"
        );
    }
}
