//! Validation: which rows a run cannot score and why, and the quarantine of whole generations.
//!
//! Every row that reaches the sink is checked ([`RowChecks::reasons`], in [`checks`]). With
//! `--on-invalid fail` the first invalid row stops the job with an error naming its column,
//! value and key. With `--on-invalid quarantine` the rows arrive grouped by generation
//! ([`Grouper`]); a generation with any invalid row goes whole to `rejected/` (its targets
//! would be wrong), each row with its own reason or `invalid_segment_in_generation`
//! ([`split`]), and the counts by reason go to `summary.json` ([`Rejections`]); all of that is
//! in [`quarantine`]. The reasons themselves are [`crate::contract::Reason`].

use serde::{Deserialize, Serialize};

pub mod checks;
pub mod quarantine;

pub use checks::RowChecks;
pub use quarantine::{split, too_many, Grouper, Rejected, RejectedLayout, Rejections};

/// What a run does with invalid rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Stop at the first invalid row, naming it; nothing is committed.
    #[default]
    Fail,
    /// Write invalid generations to `rejected/` and score the rest.
    Quarantine,
}

impl std::str::FromStr for OnInvalid {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fail" => Ok(OnInvalid::Fail),
            "quarantine" => Ok(OnInvalid::Quarantine),
            other => Err(format!("unknown --on-invalid `{other}`: use fail or quarantine")),
        }
    }
}

impl OnInvalid {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            OnInvalid::Fail => "fail",
            OnInvalid::Quarantine => "quarantine",
        }
    }
}
