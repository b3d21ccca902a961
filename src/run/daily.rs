//! A daily run: one batch of new events, scored against the state the
//! previous run left ([`crate::state`]), which it updates.
//!
//! 1. **Read the batch.** Its tables as a dataset directory: the events are
//!    the new events; events at or before the state's watermark are late,
//!    counted and left out (a batch holds what came after the last one).
//!    Side tables may be full snapshots or only what is new: the items an
//!    event targets that the batch does not list, the metadata of the
//!    accounts it involves and each acting account's impressions within
//!    the impression window come from the state.
//! 2. **Facts.** The population facts fold the batch and merge the state's
//!    partials; the item indexes hold the state's entries within reach and
//!    the batch's; the data's end is the new watermark.
//! 3. **Accounts.** Every account with events in the batch, every account
//!    with something due by the new watermark (a verdict waiting for later
//!    data, an incident turning final) and every follower of the batch's
//!    follows table new to the state resumes from its state, walks its new
//!    events and concludes (see [`crate::score::Scorer::resume_account`]).
//! 4. **Changes.** Each account's incidents are compared with the last
//!    version it reported of each: new and changed ones are written with
//!    status `new`, `updated` or `final`, and those no longer there as
//!    `withdrawn`; or, with [`Emit::Open`], every incident not yet final.
//! 5. **The next state**: every account resumed, the facts' partials and the
//!    indexes' entries still within reach, the side rows seen within the
//!    plan's reach, the new watermark.
//!
//! Folding the changes of consecutive runs (the last version of each `id`,
//! withdrawn ones dropped) gives what one run over all the data gives,
//! apart from `status`: tests/daily.rs checks it at random cuts.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::{Incidents, RunError, RunProgress};
use crate::bind::BoundPlan;
use crate::data::schema::{TableKind, ev, it};
use crate::data::table::{Table, TableBuilder};
use crate::data::{self, AccountSpan, DataError, Dataset, Events, ReadOptions, ReadReport, Side, TableReport};
use crate::facts::Aggregates;
use crate::facts::item_index::ItemRow;
use crate::intern::{Interner, LocalStrings, Sym};
use crate::plan::Plan;
use crate::score::{AccountIncidents, Hit, Incident, Scorer, Status};
use crate::state::codec::{CodecError, Dec, Enc, read_strings, unpack_body};
use crate::state::store::StoreError;
use crate::state::{self, Account, Kept, Mismatch, Source, Update};
use crate::time::{Millis, format_rfc3339};

/// What a daily run writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Emit {
    /// The incidents this batch made new or changed (withdrawn ones
    /// included).
    #[default]
    Changes,
    /// Every incident not yet final.
    Open,
}

/// What a daily run produced.
#[derive(Debug)]
pub struct DailyOutput {
    /// The incidents to write, by account, each with its status.
    pub incidents: Incidents,
    /// Every string, for writing them.
    pub strings: Arc<Interner>,
    /// What reading found (late records are counted as skipped).
    pub report: ReadReport,
    /// Events of the batch scored.
    pub events: u64,
    /// Events at or before the state's watermark, left out.
    pub late_events: u64,
    /// Impressions at or before the watermark, left out.
    pub late_impressions: u64,
    /// Accounts with events in the batch.
    pub accounts_seen: u64,
    /// Accounts resumed (with events, or with something due).
    pub accounts_resumed: u64,
    /// The watermark before and after.
    pub watermark: (Option<Millis>, Option<Millis>),
    /// Whether the run started from an empty state.
    pub fresh: bool,
    /// Seconds reading the batch and the state's rows.
    pub read_secs: f64,
    /// Seconds computing the facts and resuming the accounts.
    pub score_secs: f64,
    /// Seconds of the above spent reading the state's rows.
    pub state_read_secs: f64,
    /// Notes to show once.
    pub notes: Vec<String>,
}

/// An error of a daily run.
#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    /// Reading the batch failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The state was written for other rules.
    #[error("the state was written for other rules: {0}; rebuild it from history with `changeling state rebuild`")]
    Mismatch(#[from] Mismatch),
    /// The state directory could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An account's state is corrupt.
    #[error("the state of account {account:?}: {error}")]
    Corrupt {
        /// The account.
        account: String,
        /// What is wrong.
        error: CodecError,
    },
}

impl From<DataError> for DailyError {
    fn from(e: DataError) -> DailyError {
        DailyError::Run(RunError::Data(e))
    }
}

/// The last version of an incident an account reported.
#[derive(Clone, Debug, PartialEq)]
struct Reported {
    id: String,
    status: Status,
    fingerprint: u64,
    start: Millis,
    end: Millis,
    score: f64,
    tier: String,
    final_after: Millis,
}

/// Scores the batch in `dir` with `plan`, resuming from the state
/// `source` holds; returns what to write and what changes of the state.
pub fn run(
    dir: &Path,
    plan: &Plan,
    source: &dyn Source,
    opts: &ReadOptions,
    emit: Emit,
    progress: &RunProgress,
) -> Result<(DailyOutput, Update), DailyError> {
    let t0 = std::time::Instant::now();
    let head = source.head();
    let fresh = head.watermark.is_none() && head.keys == state::Keys::default();
    if !fresh {
        head.check(plan)?;
    }
    let before = head.watermark;

    // 1. The batch, late records left out, with the state's side rows.
    let mut strings = Interner::new();
    let mut report = ReadReport::default();
    let mut tables: BTreeMap<TableKind, Table> = BTreeMap::new();
    for kind in [TableKind::Items, TableKind::Follows, TableKind::Accounts, TableKind::Impressions] {
        if let Some(files) = data::source::locate(dir, kind)? {
            let (table, r) = data::read::read_table(kind, &files, &mut strings, opts, &progress.read)?;
            report.tables.push((kind, r));
            tables.insert(kind, table);
        }
    }
    let files = data::events_files(dir)?;
    let (mut events, r) = data::read::read_table(TableKind::Events, &files, &mut strings, opts, &progress.read)?;
    report.tables.push((TableKind::Events, r));
    let late_events = drop_late(&mut events, ev::TS, before);
    let late_impressions = match tables.get_mut(&TableKind::Impressions) {
        Some(t) => drop_late(t, 2, before),
        None => 0,
    };
    note_late(&mut report, TableKind::Events, late_events);
    note_late(&mut report, TableKind::Impressions, late_impressions);
    if late_events > 0 && opts.strict {
        return Err(DataError::BadFile {
            path: dir.to_path_buf(),
            message: format!(
                "{late_events} events at or before the state's watermark {} (late; stopped because of --strict)",
                before.map(format_rfc3339).unwrap_or_default()
            ),
        }
        .into());
    }
    let t_side = std::time::Instant::now();
    add_state_rows(plan, source, &mut tables, &events, &mut strings, opts)?;
    let side_secs = t_side.elapsed().as_secs_f64();
    let mut side = Side::from_tables(tables, &strings, &mut report);
    // Tables an earlier batch had stay known: the graph lives on in the
    // accounts' states, impressions in the state's rows.
    if head.tables.contains(&TableKind::Follows) && side.follows.is_none() {
        side.follows = Some(Arc::new(data::Follows::default()));
    }
    if head.tables.contains(&TableKind::Impressions) && side.impressions.is_none() {
        side.impressions = Some(Arc::new(data::Impressions::default()));
    }
    let (events, dups) = Events::from_table(events, &strings);
    data::note_duplicates(&mut report, dups);

    // The accounts to resume: those with events, those with something due
    // by the new watermark, new followers.
    let last = events.all_ts().iter().copied().max();
    let watermark = before.max(last);
    let mut resume: BTreeSet<String> = events.accounts.iter().map(|a| strings.resolve(a.actor).to_string()).collect();
    for (id, due, open) in source.timers() {
        if due.is_some_and(|d| watermark.is_some_and(|w| d <= w)) || (emit == Emit::Open && open) {
            resume.insert(id);
        }
    }
    let followers: BTreeSet<String> =
        side.follows.iter().flat_map(|f| f.followers()).map(|who| strings.resolve(who).to_string()).collect();
    let mut ask = resume.clone();
    ask.extend(followers.iter().cloned());
    let t_state = std::time::Instant::now();
    let known = source.accounts(&ask)?;
    let state_read_secs = t_state.elapsed().as_secs_f64() + side_secs;
    // Followers new to the state start with the batch's graph.
    resume.extend(followers.into_iter().filter(|f| !known.contains_key(f)));
    // Their states' strings, and the facts' and indexes' kept rows, into
    // the run's strings.
    let t_intern = std::time::Instant::now();
    for id in &resume {
        strings.intern(id);
    }
    let resume: Vec<String> = resume.into_iter().collect();
    let tables = payload_strings(&resume, &known, &mut strings)?;
    let mut agg = Aggregates::for_plan(plan);
    let mut kept_facts = Vec::new();
    for (key, rows) in agg.fact_keys().into_iter().zip(&head.facts) {
        let mut p = key.empty();
        for r in rows {
            p.read_row(r.as_ref(), &mut strings).map_err(|e| corrupt_state("population facts", e))?;
        }
        kept_facts.push(p);
    }
    let kept_entries: Vec<Vec<ItemRow>> = head
        .indexes
        .iter()
        .map(|rows| rows.iter().map(|(item, ts, who)| (strings.intern(item), *ts, strings.intern(who))).collect())
        .collect();
    let strings = Arc::new(strings);
    let state_read_secs = state_read_secs + t_intern.elapsed().as_secs_f64();

    // 2. Facts.
    let read_secs = t0.elapsed().as_secs_f64();
    let acted = |a: Sym| known.get(strings.resolve(a)).is_some_and(|x| x.acted);
    agg.add_all_seen(&events, &strings, &side.items, &acted);
    for (slot, p) in kept_facts.into_iter().enumerate() {
        agg.merge_fact(slot, p);
    }
    for (slot, rows) in kept_entries.into_iter().enumerate() {
        agg.add_index_rows(slot, rows);
    }
    agg.see_time(before);
    let w = agg.last().unwrap_or(Millis::MIN);
    let next_facts = agg.kept_facts(&strings, w);
    let keep = state::index_keep(plan);
    let next_entries = agg.kept_entries(|actions| {
        let k = keep.iter().find(|(a, _)| a.as_slice() == actions).map_or(0, |(_, k)| *k);
        w.saturating_sub(k)
    });
    let facts = agg.finish(&strings).map_err(|e| RunError::Spill { dir: dir.to_path_buf(), error: e })?;

    // 3. The accounts, resumed.
    let data = Dataset::from_parts(dir.to_path_buf(), strings.clone(), events, &side, report);
    let bound = BoundPlan::with_facts(plan, &data, &facts).shared();
    let scorer = Scorer::bound(bound, &data);
    let spans: BTreeMap<&str, &AccountSpan> =
        data.events.accounts.iter().map(|a| (strings.resolve(a.actor), a)).collect();
    let empty = scorer.fresh_payload(w);
    progress.scoring.store(true, Ordering::Relaxed);
    progress.accounts_total.store(resume.len() as u64, Ordering::Relaxed);
    // Each account's stored entry is moved to the thread that resumes it
    // and freed there once read, so that the new entries reuse its memory
    // (every page a run touches for the first time costs the kernel a
    // zeroing: the state read whole, then written whole, doubled the peak).
    let mut known = known;
    let stored: Vec<Option<(Account, Vec<Sym>)>> =
        resume.iter().zip(tables).map(|(id, syms)| known.remove(id).zip(syms)).collect();
    drop(known);
    let had: Vec<bool> = stored.iter().map(Option::is_some).collect();
    let results: Vec<Result<(Account, Vec<Incident>), DailyError>> = resume
        .par_iter()
        .zip(stored.into_par_iter())
        .map_init(
            || Resuming { scratch: scorer.scratch(), enc: Enc::new(&strings), body: Vec::new() },
            |buffers, (id, before)| {
                progress.accounts_done.fetch_add(1, Ordering::Relaxed);
                let actor = strings.get(id).expect("interned above");
                let span = spans.get(id.as_str()).copied();
                resume_one(&scorer, actor, span, before, buffers, emit)
                    .map_err(|error| DailyError::Corrupt { account: id.clone(), error })
            },
        )
        .collect();
    // 4. What to write, by account in id order; and each account's next
    // entry (`None`: nothing to keep), with whether the state had it.
    let accounts_resumed = results.len() as u64;
    let mut out: Vec<AccountIncidents> = Vec::new();
    let mut changed: Vec<(String, Option<Account>, bool)> = Vec::with_capacity(results.len());
    for ((id, r), had) in resume.into_iter().zip(results).zip(had) {
        let (account, incidents) = r?;
        if !incidents.is_empty() {
            out.push(AccountIncidents { actor: strings.get(&id).expect("interned above"), incidents });
        }
        let gone = account.payload == empty && !account.open;
        changed.push((id, (!gone).then_some(account), had));
    }

    // 5. What changes of the state.
    let mut update = Update {
        watermark,
        tables: head.tables.clone(),
        facts: next_facts,
        indexes: next_entries
            .into_iter()
            .map(|rows| {
                rows.into_iter()
                    .map(|(item, ts, who)| (strings.resolve(item).to_string(), ts, strings.resolve(who).to_string()))
                    .collect()
            })
            .collect(),
        impressions: head.impressions.clone(),
        since: w.saturating_sub(state::reach(plan)),
        ..Update::default()
    };
    update.accounts_added = changed.iter().map(|(_, a, had)| i64::from(a.is_some()) - i64::from(*had)).sum();
    // In key order already: built in bulk.
    update.accounts = changed.into_iter().map(|(id, a, _)| (id, a)).collect();
    keep_side_rows(plan, &mut update, &data, w);
    if data.follows.is_some() {
        update.tables.insert(TableKind::Follows);
    }
    if data.impressions.is_some() {
        update.tables.insert(TableKind::Impressions);
    }

    let output = DailyOutput {
        incidents: Incidents::in_memory(out, strings.clone()),
        strings: strings.clone(),
        report: data.report.clone(),
        events: data.events.len() as u64,
        late_events,
        late_impressions,
        accounts_seen: data.events.accounts.len() as u64,
        accounts_resumed,
        watermark: (before, watermark),
        fresh,
        read_secs,
        score_secs: t0.elapsed().as_secs_f64() - read_secs,
        state_read_secs,
        notes: scorer.notes().to_vec(),
    };
    Ok((output, update))
}

/// Accounts whose payloads' strings are read on one thread at a time.
const STRINGS_CHUNK: usize = 4096;

/// The tables of strings of the payloads of the accounts in `resume` the
/// state has, read in parallel and merged into `strings`: per account (in
/// `resume`'s order), its strings' symbols.
#[allow(clippy::type_complexity)]
fn payload_strings(
    resume: &[String],
    known: &BTreeMap<String, Account>,
    strings: &mut Interner,
) -> Result<Vec<Option<Vec<Sym>>>, DailyError> {
    let read: Vec<Result<(LocalStrings, Vec<Option<Vec<Sym>>>), DailyError>> = resume
        .par_chunks(STRINGS_CHUNK)
        .map(|chunk| {
            let mut local = LocalStrings::new();
            let mut scratch = Vec::new();
            let mut tables = Vec::with_capacity(chunk.len());
            for id in chunk {
                tables.push(match known.get(id) {
                    Some(a) => {
                        let corrupt = |error| DailyError::Corrupt { account: id.clone(), error };
                        Some(read_strings(&a.payload, &mut local, &mut scratch).map_err(corrupt)?)
                    }
                    None => None,
                });
            }
            Ok((local, tables))
        })
        .collect();
    let mut out = Vec::with_capacity(resume.len());
    for r in read {
        let (local, tables) = r?;
        let map = strings.absorb(&local);
        out.extend(tables.into_iter().map(|t| t.map(|syms| syms.iter().map(|s| map[s.index()]).collect())));
    }
    Ok(out)
}

/// What one thread keeps from one account it resumes to the next.
struct Resuming<'s> {
    scratch: crate::score::Scratch,
    enc: Enc<'s>,
    /// The payload's body, uncompressed.
    body: Vec<u8>,
}

/// Resumes one account: its incidents to write (by `emit`) and its next
/// entry.
fn resume_one(
    scorer: &Scorer<'_>,
    actor: Sym,
    span: Option<&AccountSpan>,
    before: Option<(Account, Vec<Sym>)>,
    buffers: &mut Resuming<'_>,
    emit: Emit,
) -> Result<(Account, Vec<Incident>), CodecError> {
    let strings = &scorer.data().strings;
    let now = scorer.data_end().unwrap_or(Millis::MIN);
    let Resuming { scratch, enc: w, body } = buffers;
    w.clear();
    let acted = before.as_ref().is_some_and(|(a, _)| a.acted);
    let mut r = match before {
        Some((a, syms)) => {
            unpack_body(&a.payload, body)?;
            drop(a);
            Some(Dec::with_syms(body, syms))
        }
        None => None,
    };
    let mut resumed = scorer.resume_account(actor, r.as_mut(), span, scratch, w)?;
    let reported = match &mut r {
        Some(r) => {
            let reported = read_reported(r)?;
            if !r.done() {
                return Err(CodecError("bytes after the account's state".into()));
            }
            reported
        }
        None => Vec::new(),
    };
    let plan = scorer.plan();
    let tier_name = |t: usize| plan.config.tiers[t].name.clone();
    let mut out = Vec::new();
    let mut next = Vec::new();
    for mut inc in std::mem::take(&mut resumed.incidents) {
        let fingerprint =
            fingerprint(&inc, plan, strings, &mut |hit, eat| scorer.feed_words(&resumed, scratch, hit, eat));
        let last = reported.iter().find(|p| p.id == inc.id);
        let final_now = inc.final_after <= now;
        inc.status = match (last, final_now) {
            (None, true) => Status::Final,
            (None, false) => Status::New,
            (Some(_), true) => Status::Final,
            (Some(p), false) if p.fingerprint != fingerprint => Status::Updated,
            (Some(p), false) => p.status,
        };
        let changed = last.is_none_or(|p| p.fingerprint != fingerprint || final_now);
        if !final_now {
            next.push(Reported {
                id: inc.id.clone(),
                status: inc.status,
                fingerprint,
                start: inc.start,
                end: inc.end,
                score: inc.score,
                tier: tier_name(inc.tier),
                final_after: inc.final_after,
            });
        }
        let write = match emit {
            Emit::Changes => changed,
            Emit::Open => !final_now,
        };
        if write {
            scorer.write_words(&resumed, scratch, &mut inc);
            out.push(inc);
        }
    }
    if emit == Emit::Changes {
        for p in reported.iter().filter(|p| !next.iter().any(|n| n.id == p.id)) {
            if out.iter().any(|i| i.id == p.id) {
                continue;
            }
            // Gone: no longer an incident after this batch.
            let tier = plan.config.tiers.iter().position(|t| t.name == p.tier).unwrap_or(plan.config.tiers.len() - 1);
            out.push(Incident {
                id: p.id.clone(),
                start: p.start,
                end: p.end,
                score: p.score,
                tier,
                families: Vec::new(),
                hits: Vec::new(),
                final_after: p.final_after,
                status: Status::Withdrawn,
            });
        }
        out.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    }
    write_reported(w, &next);
    let due = next.iter().map(|p| p.final_after).chain(resumed.due).min();
    let account = Account { due, acted: acted || span.is_some(), open: !next.is_empty(), payload: w.finish() };
    Ok((account, out))
}

/// Ends a fresh account's payload: no incidents reported.
pub(crate) fn finish_fresh(w: &mut Enc<'_>) {
    write_reported(w, &[]);
}

/// The version of the reported incidents' section.
const REPORTED_VERSION: u8 = 1;

fn write_reported(w: &mut Enc<'_>, reported: &[Reported]) {
    w.u8(REPORTED_VERSION);
    w.count(reported.len());
    for p in reported {
        w.text(&p.id);
        w.u8(p.status as u8);
        w.u64(p.fingerprint);
        w.time(p.start);
        w.time(p.end);
        w.f64(p.score);
        w.text(&p.tier);
        w.time(p.final_after);
    }
}

fn read_reported(r: &mut Dec<'_>) -> Result<Vec<Reported>, CodecError> {
    let version = r.u8()?;
    if version != REPORTED_VERSION {
        return Err(CodecError(format!("reported incidents of version {version}")));
    }
    (0..r.count()?)
        .map(|_| {
            let id = r.text()?.to_string();
            let status = match r.u8()? {
                0 => Status::New,
                1 => Status::Updated,
                2 => Status::Final,
                3 => Status::Withdrawn,
                k => return Err(CodecError(format!("a status of {k}"))),
            };
            Ok(Reported {
                id,
                status,
                fingerprint: r.u64()?,
                start: r.time()?,
                end: r.time()?,
                score: r.f64()?,
                tier: r.text()?.to_string(),
                final_after: r.time()?,
            })
        })
        .collect()
}

/// What takes the bytes a fingerprint is made of.
type Eat<'a> = dyn FnMut(&[u8]) + 'a;

/// A hash of everything an alert says of an incident but its status: two
/// versions with equal fingerprints write equal alerts. `words` feeds what
/// a hit's words say (made only for the incidents written).
fn fingerprint(inc: &Incident, plan: &Plan, strings: &Interner, words: &mut dyn FnMut(&Hit, &mut Eat<'_>)) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    eat(&inc.start.to_le_bytes());
    eat(&inc.end.to_le_bytes());
    eat(&inc.score.to_bits().to_le_bytes());
    eat(plan.config.tiers[inc.tier].name.as_bytes());
    eat(&inc.final_after.to_le_bytes());
    for f in &inc.families {
        eat(plan.config.score.families[f.family].as_bytes());
        eat(&f.evidence.to_bits().to_le_bytes());
    }
    for hit in &inc.hits {
        eat(plan.rules[hit.rule as usize].id.as_bytes());
        eat(&hit.ts.to_le_bytes());
        eat(strings.resolve(hit.action).as_bytes());
        eat(hit.target.map_or("", |t| strings.resolve(t)).as_bytes());
        eat(&hit.strength.to_bits().to_le_bytes());
        eat(hit.effect.name().as_bytes());
        words(hit, &mut eat);
        for s in &hit.signals {
            eat(s.as_bytes());
        }
    }
    h
}

/// Drops the rows of `table` whose time column `col` is at or before
/// `watermark`; returns how many.
fn drop_late(table: &mut Table, col: usize, watermark: Option<Millis>) -> u64 {
    let Some(w) = watermark else { return 0 };
    let keep: Vec<u32> =
        (0..table.rows as u32).filter(|&r| table.columns[col].time(r as usize).is_none_or(|t| t > w)).collect();
    let late = (table.rows - keep.len()) as u64;
    if late > 0 {
        table.gather(&keep);
    }
    late
}

/// Counts late records in the report.
fn note_late(report: &mut ReadReport, kind: TableKind, late: u64) {
    if let Some((_, r)) = report.tables.iter_mut().find(|(k, _)| *k == kind) {
        r.records = r.records.saturating_sub(late);
        r.late += late;
    }
}

fn corrupt_state(what: &str, e: String) -> DailyError {
    DailyError::Corrupt { account: format!("<{what}>"), error: CodecError(e) }
}

/// Adds to the batch's side tables what the state keeps of the items its
/// events target, of the accounts they involve, and of the impressions of
/// its acting accounts.
fn add_state_rows(
    plan: &Plan,
    source: &dyn Source,
    tables: &mut BTreeMap<TableKind, Table>,
    events: &Table,
    strings: &mut Interner,
    opts: &ReadOptions,
) -> Result<(), DailyError> {
    let col = |name: &str| events.column_index(name);
    let syms = |c: Option<usize>| -> Vec<Sym> {
        c.map_or_else(Vec::new, |c| (0..events.rows).filter_map(|r| events.columns[c].sym(r)).collect())
    };
    let listed = |t: Option<&Table>, id: usize| -> HashSet<Sym> {
        t.map_or_else(HashSet::new, |t| (0..t.rows).filter_map(|r| t.columns[id].sym(r)).collect())
    };
    // Rows not seen within the rules' reach of the state's watermark are
    // gone, as the previous run's merge drops them from the partitions it
    // merges: what a batch finds does not depend on which partitions were
    // merged when (a state in memory drops them at once).
    let since = source.head().watermark.map_or(Millis::MIN, |w| w.saturating_sub(state::reach(plan)));
    let kept = |profiles: bool, ids: &BTreeSet<String>| -> Result<BTreeMap<String, state::Kept>, DailyError> {
        Ok(source.kept(profiles, ids)?.into_iter().filter(|(_, k)| k.seen >= since).collect())
    };
    // Items targeted that the batch does not list.
    let have = listed(tables.get(&TableKind::Items), it::ID);
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    for t in syms(col("target")) {
        if !have.contains(&t) {
            wanted.insert(strings.resolve(t));
        }
    }
    let wanted: BTreeSet<String> = wanted.into_iter().map(str::to_string).collect();
    let found = kept(false, &wanted)?;
    let text = rows_with_ids(&found);
    append_rows(tables, TableKind::Items, &text, strings, opts)?;
    // Accounts acting or written to, and the authors of targeted items.
    let have = listed(tables.get(&TableKind::Accounts), 0);
    let mut who: BTreeSet<Sym> = syms(col("actor")).into_iter().chain(syms(col("target_author"))).collect();
    if let Some(items) = tables.get(&TableKind::Items) {
        who.extend((0..items.rows).filter_map(|r| items.columns[it::AUTHOR].sym(r)));
    }
    let read = plan.reads.get(&TableKind::Accounts).is_some_and(|c| c.iter().any(|c| c != "id"));
    let who: BTreeSet<String> =
        who.into_iter().filter(|w| read && !have.contains(w)).map(|w| strings.resolve(w).to_string()).collect();
    let found = kept(true, &who)?;
    let text = rows_with_ids(&found);
    append_rows(tables, TableKind::Accounts, &text, strings, opts)?;
    // The acting accounts' impressions.
    let impressions = &source.head().impressions;
    if state::impressions_reach(plan) > 0 && !impressions.is_empty() {
        let actors: BTreeSet<&str> = syms(col("actor")).into_iter().map(|a| strings.resolve(a)).collect();
        let mut lines = Vec::new();
        for a in actors {
            for (item, ts) in impressions.get(a).into_iter().flatten() {
                lines.push(serde_json::json!({ "actor": a, "item": item, "ts": format_rfc3339(*ts) }).to_string());
            }
        }
        let text = lines.join("\n");
        append_rows(tables, TableKind::Impressions, &text, strings, opts)?;
    }
    Ok(())
}

/// The state's side rows as JSON lines, each with its id: the key, which
/// the state does not repeat in the row since version 5 (a row of an older
/// state has its `id`: rows are flat objects whose strings escape their
/// quotes, so `"id":` is found only as a field).
fn rows_with_ids(found: &BTreeMap<String, state::Kept>) -> String {
    let mut text = String::new();
    for (id, k) in found {
        if !text.is_empty() {
            text.push('\n');
        }
        if k.json.contains("\"id\":") {
            text.push_str(&k.json);
            continue;
        }
        let rest = k.json.strip_prefix('{').unwrap_or(&k.json);
        text.push_str("{\"id\":");
        text.push_str(&serde_json::Value::from(id.as_str()).to_string());
        if rest != "}" {
            text.push(',');
        }
        text.push_str(rest);
    }
    text
}

/// Appends the JSON lines `text` to table `kind` (made when absent).
fn append_rows(
    tables: &mut BTreeMap<TableKind, Table>,
    kind: TableKind,
    text: &str,
    strings: &mut Interner,
    opts: &ReadOptions,
) -> Result<(), DailyError> {
    if text.is_empty() {
        return Ok(());
    }
    let keep = opts.projection.as_ref().and_then(|p| p.tables.get(&kind).cloned()).map(Arc::new);
    // Parsed in parallel, in pieces of whole lines, appended in order.
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut first_line = 1u64;
    while !rest.is_empty() {
        let cut = rest.len().min(ROWS_PIECE_BYTES);
        // After a newline: a character's boundary.
        let end = memchr::memchr(b'\n', &rest.as_bytes()[cut..]).map_or(rest.len(), |i| cut + i + 1);
        pieces.push((first_line, &rest[..end]));
        first_line += memchr::memchr_iter(b'\n', &rest.as_bytes()[..end]).count() as u64;
        rest = &rest[end..];
    }
    let parsed: Vec<(TableBuilder, Vec<(u64, String)>)> = pieces
        .into_par_iter()
        .map(|(first_line, piece)| {
            let mut builder = TableBuilder::with_projection(kind, keep.clone());
            let mut bad = Vec::new();
            data::jsonl::parse_block(piece.as_bytes(), first_line, &mut builder, &mut bad);
            (builder, bad)
        })
        .collect();
    let table = tables.entry(kind).or_insert_with(|| Table::new(kind));
    for (builder, bad) in parsed {
        if let Some((line, why)) = bad.first() {
            return Err(corrupt_state(&format!("{kind} row {line}"), why.clone()));
        }
        table.append(builder, strings);
    }
    Ok(())
}

/// Bytes of the state's side rows parsed by one thread at a time.
const ROWS_PIECE_BYTES: usize = 1 << 20;

/// Updates the state's side rows after a run at watermark `w`: rows the
/// batch listed or its events referred to are seen now; rows not seen
/// within the plan's reach, and impressions older than the impression
/// window, are forgotten.
fn keep_side_rows(plan: &Plan, state: &mut Update, data: &Dataset, w: Millis) {
    let s = &data.strings;
    // The fields the rules read, and the table's required ones.
    let reads = |kind: TableKind| {
        let mut cols = plan.reads.get(&kind).cloned().unwrap_or_default();
        cols.extend(kind.fields().iter().filter(|f| f.required).map(|f| f.name.to_string()));
        cols
    };
    // Items: every row of the run's table (listed, or brought from the
    // state because targeted) is seen now.
    let item_cols = reads(TableKind::Items);
    let items = &data.items.table;
    for r in 0..items.rows {
        if let Some(id) = items.columns[it::ID].sym(r) {
            let json = items.row_json(r, s, |c| c != "id" && item_cols.contains(c));
            state.items.insert(s.resolve(id).to_string(), Kept { seen: w, json });
        }
    }
    let account_cols = reads(TableKind::Accounts);
    let accounts = &data.accounts.table;
    // Kept only when a rule reads more of an account than its id.
    let read = plan.reads.get(&TableKind::Accounts).is_some_and(|c| c.iter().any(|c| c != "id"));
    for r in (0..accounts.rows).filter(|_| read) {
        if let Some(id) = accounts.columns[0].sym(r) {
            let json = accounts.row_json(r, s, |c| c != "id" && account_cols.contains(c));
            state.profiles.insert(s.resolve(id).to_string(), Kept { seen: w, json });
        }
    }
    let reach = state::impressions_reach(plan);
    if reach > 0 {
        let from = w.saturating_sub(reach);
        if let Some(imp) = &data.impressions {
            for span in &data.events.accounts {
                let kept: Vec<(String, Millis)> = imp
                    .of(span.actor)
                    .filter(|&(_, t)| t >= from)
                    .map(|(i, t)| (s.resolve(i).to_string(), t))
                    .collect();
                let who = s.resolve(span.actor).to_string();
                if kept.is_empty() {
                    state.impressions.remove(&who);
                } else {
                    state.impressions.insert(who, kept);
                }
            }
            // Impressions of accounts that did not act: kept as logged.
            let acted: HashSet<Sym> = data.events.accounts.iter().map(|a| a.actor).collect();
            for who in imp.actors() {
                if acted.contains(&who) {
                    continue;
                }
                let id = s.resolve(who);
                let entry = state.impressions.entry(id.to_string()).or_default();
                entry.extend(imp.of(who).map(|(i, t)| (s.resolve(i).to_string(), t)));
                entry.sort();
                entry.dedup();
            }
        }
        for list in state.impressions.values_mut() {
            list.retain(|&(_, t)| t >= from);
        }
        state.impressions.retain(|_, l| !l.is_empty());
    } else {
        state.impressions.clear();
    }
}

/// What a batch's records count: one event table report, for the summary.
pub fn events_report(report: &ReadReport) -> Option<&TableReport> {
    report.table(TableKind::Events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side row gets its key as `id` unless it has one (a state before
    /// version 5); a label that reads `"id":` is a string, not an id.
    #[test]
    fn side_rows_get_their_ids() {
        let kept = |json: &str| state::Kept { seen: 0, json: json.to_string() };
        let found: BTreeMap<String, state::Kept> = [
            ("a".to_string(), kept(r#"{"author":"u1","labels":["x"]}"#)),
            ("b\"q".to_string(), kept("{}")),
            ("c".to_string(), kept(r#"{"author":"u2","id":"c"}"#)),
            ("d".to_string(), kept(r#"{"labels":["\"id\":\"z\""]}"#)),
        ]
        .into();
        let want = [
            r#"{"id":"a","author":"u1","labels":["x"]}"#,
            r#"{"id":"b\"q"}"#,
            r#"{"author":"u2","id":"c"}"#,
            r#"{"id":"d","labels":["\"id\":\"z\""]}"#,
        ];
        assert_eq!(rows_with_ids(&found), want.join("\n"));
    }
}
