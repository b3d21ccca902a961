//! changeling: account-compromise heuristics over bulk activity logs.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! rules/*.toml --load--> RuleFile --validate--> Rule --compile--> Plan
//! dataset/     --read--> Dataset (columnar, sorted per account)
//! Plan + facts of the run --bind--> BoundPlan (once per run)
//! BoundPlan + partition --> Scorer --(rayon, per-worker Scratch)--> incidents --> alerts (JSONL, CSV, Parquet)
//! ```
//!
//! Around the pipeline, for analysts and researchers: [`explain`] (one
//! account's timeline with every decision), [`ruletest`] (test cases that
//! live beside the rules), [`eval`] (against ground truth), [`diff`] (two
//! alert sets or rule sets compared), [`report`] (one HTML page).

pub mod alerts;
pub mod bind;
pub mod data;
pub mod diff;
pub mod eval;
pub mod explain;
pub mod intern;
pub mod plan;
pub mod report;
pub mod rules;
pub mod ruletest;
pub mod run;
pub mod score;
pub mod signals;
pub mod spill;
pub mod stream;
pub mod synth;
pub mod time;
pub mod tune;
