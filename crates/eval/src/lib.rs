//! # quarry-eval: question suites with known answers
//!
//! Owns what `quarry eval` measures and how: the [`case`]s of a suite (the
//! public DABench dev set as its files define it, or Quarry's own YAML/JSON
//! suite format), the [`score`] of an answer as the suite defines it, and the
//! [`summary`] of a run (ABQ, PSAQ, UASQ overall, by level and by concept,
//! from per-question [`summary::Record`]s kept as JSON lines so a run
//! resumes where it stopped).
//!
//! Running the questions is not here: the `quarry` binary asks the analyst
//! and hands each [`quarry_types::Answer`] to [`score::score`]. This crate
//! depends on `quarry-types` only.

pub mod case;
pub mod score;
pub mod summary;

pub use case::{Case, Expected, Suite};
pub use score::{score, Score};
pub use summary::{Record, Summary};
