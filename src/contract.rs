//! The data contract every stage agrees on: the input columns' roles and the canonical names
//! the `generations` view gives them, the columns segscore adds to every output row, and the
//! codes of the reasons a row is invalid (the `reason` column of `rejected/`, and the `code:
//! detail` text of `reward_model_input_problem`).
//!
//! It holds names and codes only, no behaviour, so that the model (which finds unusable token
//! lists), the row checks and the writers share one vocabulary without importing each other.

/// Names of the input columns that play a role in the job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnNames {
    /// Which generation a row belongs to (string or integer).
    pub generation_id: String,
    /// Position of the segment in its generation (integer).
    pub segment_index: String,
    /// Score of the text up to and including the segment (float).
    pub cumulative_score: String,
    /// Token ids (list of int32/int64).
    pub input_ids: String,
    /// Per-generation baseline score (float), or None for 0.0.
    pub base_score: Option<String>,
    /// Token type ids (list of integers), or None for zeros when the model asks.
    pub token_type_ids: Option<String>,
    /// The segment's text (string): text input instead of token ids.
    #[serde(default)]
    pub text: Option<String>,
    /// The generation's prompt (string), read from its first segment's row.
    #[serde(default)]
    pub prompt: Option<String>,
}

impl ColumnNames {
    /// The name the `generations` view gives an input column: a role column's canonical name,
    /// or the column's own.
    pub fn canonical(&self, name: &str) -> String {
        self.role_names()
            .into_iter()
            .find(|r| r.0 == name)
            .map_or_else(|| name.to_string(), |r| r.1.to_string())
    }

    /// Each role column given: (its name in the files, its canonical name).
    pub fn role_names(&self) -> Vec<(&str, &'static str)> {
        let mut v = vec![
            (self.generation_id.as_str(), "generation_id"),
            (self.segment_index.as_str(), "segment_index"),
            (self.cumulative_score.as_str(), "cumulative_score"),
        ];
        match &self.text {
            Some(t) => v.push((t.as_str(), "text")),
            None => v.push((self.input_ids.as_str(), "input_ids")),
        }
        if let Some(p) = &self.prompt {
            v.push((p.as_str(), "prompt"));
        }
        if let Some(b) = &self.base_score {
            v.push((b.as_str(), "base_score"));
        }
        if let Some(t) = &self.token_type_ids {
            v.push((t.as_str(), "token_type_ids"));
        }
        v
    }
}

impl Default for ColumnNames {
    fn default() -> Self {
        ColumnNames {
            generation_id: "generation_id".into(),
            segment_index: "segment_index".into(),
            cumulative_score: "cumulative_score".into(),
            input_ids: "input_ids".into(),
            base_score: None,
            token_type_ids: None,
            text: None,
            prompt: None,
        }
    }
}

/// The canonical names the `generations` view gives the role columns.
pub const CANONICAL: [&str; 8] = [
    "generation_id",
    "segment_index",
    "cumulative_score",
    "input_ids",
    "base_score",
    "token_type_ids",
    "text",
    "prompt",
];

/// On a cluster, the column (and SQL function, `segscore_executor()`) naming the executor
/// that read and scored each row: counted for `summary.json`, never written.
pub const EXECUTOR_COLUMN: &str = "segscore_executor";

/// The columns segscore adds to every output row, in order.
pub const OUTPUT_COLUMNS: [&str; 7] = [
    "target_score",
    "predicted_score",
    "residual",
    "squared_error",
    "abs_error",
    "loss",
    "loss_grad",
];

macro_rules! reasons {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// Why a row is invalid. `code()` is the `reason` column of `rejected/`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Reason {
            $(#[doc = $doc] $variant,)*
        }
        impl Reason {
            /// Every reason, in the order checks run.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];
            /// The reason's code.
            pub fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code,)* }
            }
            /// What the check finds.
            pub fn describe(self) -> &'static str {
                match self { $(Reason::$variant => $doc,)* }
            }
            /// The reason with this code.
            pub fn from_code(code: &str) -> Option<Reason> {
                match code { $($code => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    NullGenerationId => "null_generation_id", "the generation id is null";
    NullSegmentIndex => "null_segment_index", "the segment index is null";
    NullCumulativeScore => "null_cumulative_score", "the cumulative score is null";
    NonFiniteCumulativeScore => "non_finite_cumulative_score", "the cumulative score is NaN or infinite";
    NullBaseScore => "null_base_score", "the base score (--base-score-col) is null";
    NonFiniteBaseScore => "non_finite_base_score", "the base score (--base-score-col) is NaN or infinite";
    DuplicateSegment => "duplicate_segment", "another row has the same (generation id, segment index)";
    NullInputIds => "null_input_ids", "the token list is null";
    EmptyInputIds => "empty_input_ids", "the token list is empty";
    NullTokenId => "null_token_id", "a token id is null";
    TokenIdOutOfRange => "token_id_out_of_range", "a token id is negative, or not below the vocabulary size of the model's embedding";
    TokenTypeIdsLengthMismatch => "token_type_ids_length_mismatch", "the token type ids are not as many as the token ids";
    TooLong => "too_long", "the model input is longer than the model's maximum length (--max-length)";
    NullText => "null_text", "the segment's text (--text-col) is null";
    EmptyText => "empty_text", "the segment's text (--text-col) is empty, or gives no tokens";
    NullPrompt => "null_prompt", "the generation's prompt (--prompt-col, read from its first segment) is null";
    UnscorableInput => "unscorable_input", "the model gave no score (a replacement query without reward_model_input_problem)";
    NonFinitePrediction => "non_finite_prediction", "the model's score is NaN or infinite";
    NonFiniteTarget => "non_finite_target", "the target is null, NaN or infinite (from the previous segment's score)";
    InvalidSegmentInGeneration => "invalid_segment_in_generation", "the row is valid, but another segment of its generation is not";
}

impl Reason {
    /// A reason that follows from another row's (a target made from the previous segment's
    /// bad score): the generation is filed under the other row's reason.
    pub fn derived(self) -> bool {
        matches!(self, Reason::NonFiniteTarget | Reason::InvalidSegmentInGeneration)
    }
}

/// The text `reward_model_input_problem` gives for a row: `code: detail`.
pub fn problem_text(reason: Reason, detail: impl std::fmt::Display) -> String {
    format!("{}: {detail}", reason.code())
}

/// A [`problem_text`] split into its reason (None for a text with no known code) and its
/// detail (the whole text when there is no `: `).
pub fn parse_problem(text: &str) -> (Option<Reason>, &str) {
    let reason = text.split(':').next().and_then(Reason::from_code);
    (reason, text.split_once(": ").map_or(text, |(_, detail)| detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_texts_parse_back() {
        for &r in Reason::ALL {
            let text = problem_text(r, "at position 3: odd");
            assert_eq!(text, format!("{}: at position 3: odd", r.code()));
            assert_eq!(parse_problem(&text), (Some(r), "at position 3: odd"));
        }
        assert_eq!(parse_problem("no code here"), (None, "no code here"));
        assert_eq!(parse_problem("unknown_code: x"), (None, "x"));
    }
}
