//! changeling: account-compromise heuristics over bulk activity logs.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! rules/*.toml --load--> RuleFile --validate--> Rule --compile--> Plan
//! dataset/     --read--> Dataset (columnar, sorted per account)
//! Plan + facts of the run --bind--> BoundPlan (once per run)
//! BoundPlan + partition --> Scorer --(rayon, per-worker Scratch)--> incidents --> alerts.jsonl
//! ```

pub mod alerts;
pub mod bind;
pub mod data;
pub mod eval;
pub mod intern;
pub mod plan;
pub mod rules;
pub mod run;
pub mod score;
pub mod signals;
pub mod spill;
pub mod synth;
pub mod time;
pub mod tune;
