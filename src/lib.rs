//! changeling: account-compromise heuristics over bulk activity logs.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! rules/*.toml --load--> RuleFile --validate--> Rule --compile--> Plan
//! dataset/     --read--> Dataset (columnar, sorted per account)
//! events       --fold--> facts across accounts (population aggregates, item indexes)
//! Plan + facts of the run (or of a partition) --bind--> BoundPlan
//! BoundPlan + partition --> Scorer --(rayon, per-worker Scratch)--> incidents --> alerts (JSONL, CSV, Parquet)
//! ```
//!
//! [`run`] drives a whole run, in memory or partitioned through [`spill`]
//! files; [`facts`] is the first phase (across accounts, by item), the
//! scorer the second (per account).
//!
//! Around the pipeline, for analysts and researchers: [`explain`] (one
//! account's timeline with every decision), [`ruletest`] (test cases that
//! live beside the rules), [`eval`] (against ground truth), [`diff`] (two
//! alert sets or rule sets compared), [`report`] (one HTML page).

pub mod alerts;
pub mod bind;
pub mod campaigns;
pub mod data;
pub mod diff;
pub mod eval;
pub mod exceptions;
pub mod explain;
pub mod facts;
pub mod fit;
pub mod intern;
pub mod output;
pub mod plan;
pub mod report;
pub mod rules;
pub mod ruletest;
pub mod run;
pub mod score;
pub mod signals;
pub mod spill;
pub mod state;
pub mod stream;
pub mod synth;
pub mod terminal;
pub mod time;
pub mod tune;
