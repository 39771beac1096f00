//! The unit a time column is read in when files hold it in different units (or as dates beside
//! timestamps): the finest, unless a footer shows a value that unit cannot hold (a 9999-12-31
//! beside nanoseconds, which end in 2262), then the finest unit that holds every file's values.
//! A time inside a column (a struct's field, a list's items) is decided the same way.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

pub use segscore_plan::timestamps::nanos;

/// A time column read in a coarser unit than the finest of its files ([`unit_for`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Coarsened {
    /// The column.
    pub column: String,
    /// The unit it is read in.
    pub unit: TimeUnit,
    /// The finest unit of its files, which could not hold every file's values.
    pub finest: TimeUnit,
    /// The file (its index) whose values `finest` cannot hold, or cannot be shown to.
    pub file: usize,
    /// Whether that file's footer has the column's statistics (false: it has none to show that
    /// its values fit).
    pub known: bool,
}

impl Coarsened {
    /// Logs the change of unit as a warning naming the column and the file, `files` being the
    /// schemas' files in order.
    pub fn log(&self, files: &[PathBuf]) {
        let file = files.get(self.file).cloned().unwrap_or_default();
        let why = if self.known {
            let end = match self.finest {
                TimeUnit::Nanosecond => " (counted in nanoseconds since 1970, time ends in 2262)",
                _ => "",
            };
            format!("holds a value that {:?} cannot hold{end}", self.finest)
        } else {
            format!(
                "has no statistics for the column to show that its values fit in {:?}",
                self.finest
            )
        };
        tracing::warn!(
            column = %self.column,
            file = %file.display(),
            unit = ?self.unit,
            "column `{}` is read in {:?}, not in the finer {:?} of other files: {} {why}; values in {:?} lose their finer digits",
            self.column,
            self.unit,
            self.finest,
            file.display(),
            self.finest,
        );
    }
}

/// The finest unit, `finest` or coarser, that holds the values of every file in `files` (a file's
/// index and its unit, None for a date: whole days), `bounds` giving a file's least and greatest
/// value in nanoseconds ([`crate::engine::footer::time_bounds`]; None where its footer does not
/// say: its values are then not taken to fit a unit finer than its own). A file's values fit
/// any unit as coarse as theirs or coarser (seconds hold every date): the finer files' values
/// are then truncated. With the file that kept `finest` out, and whether its bounds were known.
pub fn unit_for(
    finest: TimeUnit,
    files: &[(usize, Option<TimeUnit>)],
    bounds: impl Fn(usize) -> Option<(i128, i128)>,
) -> (TimeUnit, Option<(usize, bool)>) {
    use TimeUnit::*;
    let coarser = |file: &Option<TimeUnit>, than: &TimeUnit| match file {
        Some(u) => nanos(u) > nanos(than),
        None => true,
    };
    let fits = |b: Option<(i128, i128)>, unit: &TimeUnit| {
        b.is_some_and(|(lo, hi)| {
            let range = i64::MIN as i128..=i64::MAX as i128;
            range.contains(&(lo / nanos(unit))) && range.contains(&(hi / nanos(unit)))
        })
    };
    let mut because = None;
    for unit in [Nanosecond, Microsecond, Millisecond, Second] {
        if nanos(&unit) < nanos(&finest) {
            continue;
        }
        let short = files
            .iter()
            .find(|(i, u)| unit != Second && coarser(u, &unit) && !fits(bounds(*i), &unit));
        match short {
            None => return (unit, because),
            Some((i, _)) => {
                because = because.or(Some((*i, bounds(*i).is_some())));
            }
        }
    }
    (Second, because)
}

/// A step from a column into the values it holds: a struct's field, or a list's (or a map's)
/// items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The field of this name: the column itself, first, then a struct's field.
    Field(String),
    /// A list's items (a map's entries).
    Item,
}

/// A time value in a column of a table: the column itself, or a struct's field or a list's items
/// in it, at any depth.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeLeaf {
    /// The steps to it from the table's columns: the column's name first.
    pub path: Vec<Step>,
    /// Its type: a timestamp, a duration or a date.
    pub data_type: DataType,
}

/// A time value's path as messages name it: `extra`, `meta.ts`, `events[].at`.
pub fn path_name(path: &[Step]) -> String {
    let mut name = String::new();
    for step in path {
        match step {
            Step::Field(f) if name.is_empty() => name.push_str(f),
            Step::Field(f) => {
                name.push('.');
                name.push_str(f);
            }
            Step::Item => name.push_str("[]"),
        }
    }
    name
}

/// Every timestamp, duration and date in a column `name` of type `t`, the column itself included.
pub fn time_leaves(name: &str, t: &DataType) -> Vec<TimeLeaf> {
    fn walk(path: &mut Vec<Step>, t: &DataType, out: &mut Vec<TimeLeaf>) {
        use DataType::*;
        match t {
            Timestamp(..) | Duration(_) | Date32 | Date64 => out.push(TimeLeaf {
                path: path.clone(),
                data_type: t.clone(),
            }),
            Struct(fields) => {
                for f in fields {
                    path.push(Step::Field(f.name().clone()));
                    walk(path, f.data_type(), out);
                    path.pop();
                }
            }
            List(f) | LargeList(f) | FixedSizeList(f, _) | ListView(f) | LargeListView(f) | Map(f, _) => {
                path.push(Step::Item);
                walk(path, f.data_type(), out);
                path.pop();
            }
            Dictionary(_, v) => walk(path, v, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&mut vec![Step::Field(name.to_string())], t, &mut out);
    out
}

/// `t` with the timestamp or duration at `path` (the steps below the column) in `unit`.
fn retime(t: &DataType, path: &[Step], unit: TimeUnit) -> DataType {
    use DataType::*;
    let item = |f: &Arc<Field>, rest: &[Step]| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(retime(f.data_type(), rest, unit)),
        )
    };
    match (path, t) {
        ([], Timestamp(_, tz)) => Timestamp(unit, tz.clone()),
        ([], Duration(_)) => Duration(unit),
        ([Step::Field(name), rest @ ..], Struct(fields)) => Struct(
            fields
                .iter()
                .map(|f| {
                    if f.name() == name {
                        item(f, rest)
                    } else {
                        Arc::clone(f)
                    }
                })
                .collect(),
        ),
        ([Step::Item, rest @ ..], List(f)) => List(item(f, rest)),
        ([Step::Item, rest @ ..], LargeList(f)) => LargeList(item(f, rest)),
        ([Step::Item, rest @ ..], FixedSizeList(f, n)) => FixedSizeList(item(f, rest), *n),
        ([Step::Item, rest @ ..], ListView(f)) => ListView(item(f, rest)),
        ([Step::Item, rest @ ..], LargeListView(f)) => LargeListView(item(f, rest)),
        ([Step::Item, rest @ ..], Map(f, sorted)) => Map(item(f, rest), *sorted),
        (_, Dictionary(k, v)) => Dictionary(k.clone(), Box::new(retime(v, path, unit))),
        _ => t.clone(),
    }
}

/// Time values' least and greatest values in nanoseconds (None where unknown), by path.
pub type TimeBounds = Vec<(Vec<Step>, Option<(i128, i128)>)>;

/// A time value's files and their units ([`unit_for`]'s `files`), by its path.
pub type FileUnits = Vec<(Vec<Step>, Vec<(usize, Option<TimeUnit>)>)>;

/// Adds the time values in a file's column `name` of type `t` (file `file`) to `units`.
pub fn note_units(units: &mut FileUnits, file: usize, name: &str, t: &DataType) {
    for leaf in time_leaves(name, t) {
        let unit = match leaf.data_type {
            DataType::Timestamp(u, _) | DataType::Duration(u) => Some(u),
            _ => None,
        };
        match units.iter_mut().find(|(p, _)| *p == leaf.path) {
            Some((_, files)) => files.push((file, unit)),
            None => units.push((leaf.path, vec![(file, unit)])),
        }
    }
}

/// `field`, a column's type over the files, with each timestamp and duration in it (the column,
/// a struct's field, a list's items) in the unit [`unit_for`] gives over the files' `units` and
/// `bounds` (a file's least and greatest value at a path); a coarser unit than the finest is
/// added to `coarsened`.
pub fn choose(
    field: Field,
    units: &FileUnits,
    bounds: impl Fn(usize, &[Step]) -> Option<(i128, i128)>,
    coarsened: &mut Vec<Coarsened>,
) -> Field {
    let mut t = field.data_type().clone();
    for leaf in time_leaves(field.name(), field.data_type()) {
        let finest = match leaf.data_type {
            DataType::Timestamp(u, _) | DataType::Duration(u) => u,
            _ => continue,
        };
        let Some((_, files)) = units.iter().find(|(p, _)| *p == leaf.path) else {
            continue;
        };
        if files.iter().all(|(_, u)| *u == Some(finest)) {
            continue;
        }
        let (unit, because) = unit_for(finest, files, |i| bounds(i, &leaf.path));
        let Some((file, known)) = because else {
            continue;
        };
        coarsened.push(Coarsened {
            column: path_name(&leaf.path),
            unit,
            finest,
            file,
            known,
        });
        t = retime(&t, &leaf.path[1..], unit);
    }
    field.with_data_type(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TimeUnit::*;

    #[test]
    fn time_values_inside_a_column_are_found_and_retimed_by_path() {
        use DataType::*;
        let ts = |u| Timestamp(u, Some("UTC".into()));
        let inner = Struct(
            vec![
                Field::new("at", ts(Nanosecond), true),
                Field::new("n", Int64, true),
            ]
            .into(),
        );
        let t = List(Arc::new(Field::new("item", inner, true)));
        let t = Struct(vec![Field::new("events", t, true), Field::new("day", Date32, true)].into());
        let leaves = time_leaves("meta", &t);
        let names: Vec<String> = leaves.iter().map(|l| path_name(&l.path)).collect();
        assert_eq!(names, ["meta.events[].at", "meta.day"]);
        let retimed = retime(&t, &leaves[0].path[1..], Microsecond);
        assert_eq!(time_leaves("meta", &retimed)[0].data_type, ts(Microsecond));
        assert_eq!(time_leaves("meta", &retimed)[1..], leaves[1..]);
        // A dictionary's values, a map's entries.
        let map = Map(
            Arc::new(Field::new(
                "entries",
                Struct(
                    vec![
                        Field::new("key", Utf8, false),
                        Field::new("value", Duration(Millisecond), true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        assert_eq!(path_name(&time_leaves("m", &map)[0].path), "m[].value");
        let dict = Dictionary(Box::new(Int32), Box::new(ts(Second)));
        assert_eq!(
            retime(&dict, &[], Millisecond),
            Dictionary(Box::new(Int32), Box::new(ts(Millisecond)))
        );
    }

    const DAY: i128 = 86_400_000_000_000;

    #[test]
    fn the_finest_unit_unless_a_value_does_not_fit() {
        // 2024 and 9999-12-31 as nanoseconds since the epoch.
        let (y2024, y9999) = (19_723 * DAY, 2_932_896 * DAY);
        let files = [(0, Some(Nanosecond)), (1, Some(Microsecond))];
        let within = |_: usize| Some((0, y2024));
        assert_eq!(unit_for(Nanosecond, &files, within), (Nanosecond, None));
        // File 1 holds 9999-12-31: microseconds, which hold it.
        let far = |i: usize| Some(if i == 1 { (0, y9999) } else { (0, y2024) });
        assert_eq!(unit_for(Nanosecond, &files, far), (Microsecond, Some((1, true))));
        // A date beside nanoseconds, or one before 1677 (the year 1422).
        let dates = [(0, Some(Nanosecond)), (2, None)];
        assert_eq!(unit_for(Nanosecond, &dates, far), (Nanosecond, None));
        let old = |_: usize| Some((-200_000 * DAY, 0));
        assert_eq!(unit_for(Nanosecond, &dates, old), (Microsecond, Some((2, true))));
        // No statistics: the file's own unit, which holds its values.
        let unknown = |i: usize| (i == 0).then_some((0, y2024));
        assert_eq!(
            unit_for(Nanosecond, &files, unknown),
            (Microsecond, Some((1, false)))
        );
        assert_eq!(unit_for(Nanosecond, &dates, unknown), (Second, Some((2, false))));
        // Millisecond files beside second ones: the finest already coarse.
        let coarse = [(0, Some(Millisecond)), (1, Some(Second))];
        assert_eq!(unit_for(Millisecond, &coarse, far), (Millisecond, None));
    }
}
