//! The unit a time column is read in when files hold it in different units (or as dates beside
//! timestamps): the finest, unless a footer shows a value that unit cannot hold (a 9999-12-31
//! beside nanoseconds, which end in 2262), then the finest unit that holds every file's values.

use std::path::PathBuf;

use datafusion::arrow::datatypes::TimeUnit;

/// Nanoseconds in one of `u`.
pub fn nanos(u: &TimeUnit) -> i128 {
    match u {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use TimeUnit::*;

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
