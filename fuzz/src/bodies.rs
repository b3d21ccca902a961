//! What each fuzz target does with one input. Shared by the fuzz targets
//! (nightly, `fuzz/run.sh`) and by `tests/fuzz_corpus.rs` (stable `cargo
//! test`), which replays every saved input through the same function.
//!
//! Each body feeds bytes to one of the engine's readers the way a file
//! would reach it, then checks what must hold whatever the bytes: no panic,
//! and where a reader accepts the input, the invariants below.

use std::io::{self, Read};
use std::path::Path;
use std::sync::OnceLock;

use changeling::alerts::{self, Context, RuleInfo};
use changeling::data::source::BlockReader;
use changeling::data::{Dataset, ReadOptions, TableKind, csv_format};
use changeling::plan::Plan;
use changeling::rules::layers::{self, RuleLayer};
use changeling::rules::overrides::Overrides;
use changeling::score::Scorer;
use changeling::spill;

/// A small clean events table, beside a fuzzed table of another kind.
const EVENTS: &str = r#"{"ts":"2024-03-01T10:00:00Z","actor":"a","action":"like","target":"i1"}
{"ts":"2024-03-01T10:00:05Z","actor":"b","action":"like","target":"i1"}
{"ts":"2024-03-01T10:05:00Z","actor":"a","action":"unlike","target":"i1"}
{"ts":"2024-03-01T11:00:00Z","actor":"a","action":"login","country":"DE"}
"#;

/// The table a dataset target writes: chosen by the input's first byte.
fn table_of(byte: u8) -> TableKind {
    TableKind::ALL[byte as usize % TableKind::ALL.len()]
}

/// The shipped rules, compiled once.
fn builtin() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        let (set, diags) = layers::load(&[RuleLayer::Builtin], &Overrides::default());
        let set = set.unwrap_or_else(|| panic!("the built-in rules do not load:\n{}", diags.render()));
        Plan::compile(&set)
    })
}

/// The shipped rules' ids, titles and tags, in plan order, as the CLI
/// binds exceptions to them.
fn builtin_info() -> &'static [RuleInfo] {
    static INFO: OnceLock<Vec<RuleInfo>> = OnceLock::new();
    INFO.get_or_init(|| {
        let (set, _) = layers::load(&[RuleLayer::Builtin], &Overrides::default());
        RuleInfo::of_set(&set.expect("the built-in rules load"))
    })
}

/// Scores `data` with `plan` and writes the alerts: every line must be
/// one JSON object.
fn score_and_write(plan: &Plan, data: &Dataset) {
    let accounts = Scorer::new(plan, data).run_sequential();
    let rules = RuleInfo::of_plan(plan);
    let mut out = Vec::new();
    alerts::write_jsonl(&mut out, &accounts, Context::new(plan, &rules, &data.strings)).expect("writing to memory");
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(line) {
            panic!("an alert line is not JSON ({e}): {}", String::from_utf8_lossy(line));
        }
    }
}

/// Rules: the input is a rule file's text, optionally preceded by a
/// `changeling.toml` text and a NUL byte. Loading never panics; a rule set
/// that loads compiles and scores a small dataset.
pub fn rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (config, rule) = text.split_once('\0').unwrap_or(("", &text));
    let (set, diags) = changeling::rules::load_texts(config, &[("rules/fuzz.toml", rule)]);
    let _ = diags.render();
    let Some(set) = set else { return };
    let plan = Plan::compile(&set);
    let events = Dataset::from_jsonl(&[(TableKind::Events, EVENTS)], true).expect("the fixed events read");
    score_and_write(&plan, &events);
}

/// Writes `bytes` as the table picked by the first byte, in `format`
/// (a file extension), beside a clean events table when the table is not
/// events; opens the dataset as `score` does, and scores it with the
/// shipped rules when it opens.
fn dataset(data: &[u8], ext: &str) {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let kind = table_of(pick);
    let dir = tempfile::tempdir().expect("a temporary directory");
    write(dir.path(), &format!("{kind}.{ext}"), bytes);
    if kind != TableKind::Events {
        write(dir.path(), "events.jsonl", EVENTS.as_bytes());
    }
    // Small blocks, so that block borders fall inside small inputs too.
    let opts = ReadOptions {
        strict: pick & 0x80 != 0,
        block_bytes: 1 + (pick as usize >> 3 & 0x0f) * 37,
        block_rows: 1 + u64::from(pick >> 3 & 0x0f) * 7,
        max_record_bytes: if pick & 0x40 != 0 { 97 } else { ReadOptions::default().max_record_bytes },
        ..ReadOptions::default()
    };
    if let Ok(data) = Dataset::open(dir.path(), &opts) {
        score_and_write(builtin(), &data);
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("writing a temporary file");
}

/// JSONL: the input (after the first byte) is one table's file.
pub fn jsonl(data: &[u8]) {
    dataset(data, "jsonl");
}

/// CSV: the input (after the first byte) is one table's file.
pub fn csv(data: &[u8]) {
    dataset(data, "csv");
}

/// Parquet: the input (after the first byte) is one table's file.
pub fn parquet(data: &[u8]) {
    dataset(data, "parquet");
}

/// A reader that hands out at most `step` bytes per call, so that the
/// block cutter's refills fall everywhere.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The block cutter: three bytes choose CSV or lines, the block size, the
/// maximum record length and the read size; the rest is the stream.
/// Every block is the input's bytes from the start of its first line, but
/// for records skipped as too long, whose lines are left empty (so nothing
/// is invented or reordered, and line numbers hold); with nothing skipped,
/// the blocks are the whole input, and for CSV they hold exactly the
/// records the parser finds in the whole input.
pub fn block_cutter(data: &[u8]) {
    let [mode, size, max, input @ ..] = data else { return };
    let csv = mode & 1 == 1;
    let target = 1 + *size as usize % 64;
    let max_record = if *max == 255 { usize::MAX } else { 1 + *max as usize };
    let step = 1 + (*mode as usize >> 1) % 17;
    let mut cutter = BlockReader::with_max_record(Dribble { data: input, step }, target, max_record, csv);
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(input.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1)).collect();
    let mut joined = Vec::new();
    let mut skipped = 0;
    let mut records = 0;
    let mut next_line = 1;
    while let Some(block) = cutter.next_block().expect("reading from memory") {
        let line = usize::try_from(block.first_line).unwrap();
        assert!(line >= next_line, "block at line {line} starts before the last block ended (line {next_line})");
        let first_bad = block.bad.iter().map(|b| usize::try_from(b.0).unwrap()).min();
        let input_line = |l: usize| -> &[u8] {
            let start = *line_starts.get(l - 1).unwrap_or_else(|| panic!("block reaches line {l}, past the input"));
            let end = memchr_newline(&input[start..]).map_or(input.len(), |i| start + i);
            &input[start..end]
        };
        let parts: Vec<&[u8]> = block.bytes.split(|b| *b == b'\n').collect();
        for (j, part) in parts.iter().enumerate() {
            let l = line + j;
            if j + 1 == parts.len() && part.is_empty() {
                break;
            }
            let whole = input_line(l);
            let cut = part.is_empty() && first_bad.is_some_and(|b| b <= l);
            assert!(
                *part == whole || (j + 1 == parts.len() && whole.starts_with(part)) || cut,
                "block at line {line}: its line {l} is not the input's"
            );
        }
        next_line = line + parts.len() - 1;
        skipped += block.bad.len();
        if csv {
            records += count_csv_records(&block.bytes);
        }
        joined.extend_from_slice(&block.bytes);
    }
    if skipped == 0 {
        assert_eq!(joined, input, "nothing skipped, yet the blocks are not the input");
        if csv {
            assert_eq!(records, count_csv_records(input), "the blocks hold other records than the input");
        }
    }
}

fn memchr_newline(s: &[u8]) -> Option<usize> {
    s.iter().position(|b| *b == b'\n')
}

/// Records in a whole CSV text, as the parser splits them.
fn count_csv_records(text: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while pos < text.len() {
        match csv_format::scan_record(text, pos, true, None) {
            csv_format::Scan::Record(end) => {
                assert!(end > pos, "a record of no bytes at {pos}");
                pos = end;
                n += 1;
            }
            csv_format::Scan::Open { .. } => return n + 1,
        }
    }
    n
}

/// The spill decoder: the first byte picks the table kind, the rest is a
/// decompressed spill frame. Decoding never panics; what decodes encodes
/// to a canonical form that decodes to itself.
pub fn spill_decoder(data: &[u8]) {
    let Some((&pick, raw)) = data.split_first() else { return };
    let kind = table_of(pick);
    let Ok(tables) = spill::decode(raw, kind) else { return };
    let encode = |tables: &[changeling::data::table::Table]| {
        let mut out = Vec::new();
        for t in tables {
            spill::encode(t, &mut out);
        }
        out
    };
    let once = encode(&tables);
    let again = spill::decode(&once, kind).expect("decoding what was just encoded");
    assert_eq!(once, encode(&again), "encoding is not canonical");
}

/// A spill decoder seed: the JSONL `text` of table `kind` read into a
/// table and encoded as one spill frame, after the byte that picks `kind`.
pub fn spill_seed(kind: TableKind, text: &str) -> Vec<u8> {
    use changeling::data::jsonl;
    use changeling::data::table::{Table, TableBuilder};
    let mut builder = TableBuilder::new(kind);
    let mut bad = Vec::new();
    jsonl::parse_block(text.as_bytes(), 1, &mut builder, &mut bad);
    let mut table = Table::new(kind);
    table.append(builder, &mut changeling::intern::Interner::new());
    let pick = TableKind::ALL.iter().position(|k| *k == kind).expect("a table of ALL");
    let mut out = vec![pick as u8];
    spill::encode(&table, &mut out);
    out
}

/// Alerts read back, as `eval`, `diff` and `report` read them: the first
/// byte picks, by its remainder mod 4, JSON Lines (0), Parquet (1), CSV
/// read whole (2) or for eval (3, [`read::Need::Rules`]); the rest is the file.
/// Reading never panics; alerts that are read keep the contract (`end`
/// not before `start`, `score` in [0, 1], a tier, no alert repeated whole);
/// a diff of the alerts with themselves moves nothing; the report and the
/// evaluation (against labels naming the first alert's account
/// compromised) are made without a panic, and the page shows no raw
/// control or invisible character.
pub fn alerts(data: &[u8]) {
    use changeling::alerts::read;
    use changeling::eval::{self, Settings, TierSource, Truth, Window};
    let Some((&pick, bytes)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = ["alerts.jsonl", "alerts.parquet", "alerts.csv", "alerts.csv"][usize::from(pick % 4)];
    let path = dir.path().join(name);
    write(dir.path(), name, bytes);
    let need = if pick % 4 == 3 { read::Need::Rules } else { read::Need::Hits };
    let Ok(alerts) = read::read_for(&path, need) else { return };
    for (i, a) in alerts.iter().enumerate() {
        assert!(a.start <= a.end, "alert {} ends before it starts", a.line);
        assert!((0.0..=1.0).contains(&a.score), "alert {} scores {}", a.line, a.score);
        assert!(!a.tier.is_empty(), "alert {} has no tier", a.line);
        assert!(
            !alerts[..i].iter().any(|b| read::ReadAlert { line: a.line, ..b.clone() } == *a),
            "alert {} repeats an earlier one",
            a.line
        );
    }
    let tiers = read::tiers_of(&alerts);
    let d = changeling::diff::diff(&alerts, &alerts, &tiers, None);
    assert!(d.moved.is_empty() && d.changed_within_tier == 0, "alerts differ from themselves");
    let _ = changeling::diff::render(&d, "a", "b", 3);

    let mut truth = Truth::default();
    if let Some(first) = alerts.first() {
        truth.add(&first.actor, true, Window { start: Some(first.start), end: Some(first.end) }, None);
    }
    let days: std::collections::BTreeMap<String, u64> = alerts.iter().map(|a| (a.actor.clone(), 1)).collect();
    let file = eval::AlertFile::from_read(&path, &alerts);
    let settings = Settings { tiers: tiers.clone(), tier_source: TierSource::Alerts, slack: 0, rules_tier: None };
    if let Ok(report) = eval::evaluate(&truth, &days, &file, &settings) {
        let _ = serde_json::to_string(&report).expect("a report serializes");
    }
    let _ = eval::curves(&truth, &days, &file, &settings);
    let _ = eval::listing(&truth, &days, &file, &settings);
    let input = changeling::report::Input {
        alerts_name: "alerts".into(),
        alerts: &alerts,
        tiers,
        tier_source: TierSource::Alerts,
        labels: Some(changeling::report::Labels { dataset: "d".into(), truth: &truth, days: &days, slack: 0 }),
        top: 5,
    };
    if let Ok(page) = changeling::report::render(&input) {
        let raw = page.chars().find(|&c| {
            (c.is_control() && c != '\n' && c != '\t' && c != '\r') || changeling::terminal::is_invisible(c)
        });
        assert!(raw.is_none(), "the report shows a raw {raw:?}");
    }
}

/// The daily-state targets' population: the JSONL seeds' day (30 events
/// of 20 accounts, with their items, follows and accounts) cut into three
/// batches of ten events; the side tables come with the first.
fn batch(day: usize) -> Vec<(&'static str, String)> {
    fn text(seed: &'static [u8]) -> &'static str {
        std::str::from_utf8(&seed[1..]).expect("a UTF-8 seed")
    }
    let events: Vec<&str> = text(include_bytes!("../seeds/jsonl/events-00")).lines().collect();
    let mut out = vec![("events.jsonl", events[day * 10..(day + 1) * 10].join("\n") + "\n")];
    if day == 0 {
        out.push(("items.jsonl", text(include_bytes!("../seeds/jsonl/items-00")).to_string()));
        out.push(("follows.jsonl", text(include_bytes!("../seeds/jsonl/follows-00")).to_string()));
        out.push(("accounts.jsonl", text(include_bytes!("../seeds/jsonl/accounts-00")).to_string()));
    }
    out
}

fn write_batch(dir: &Path, day: usize) {
    std::fs::create_dir_all(dir).expect("a batch directory");
    for (name, text) in batch(day) {
        write(dir, name, text.as_bytes());
    }
}

/// The state after the first two batches, in memory and as a state
/// directory's files (path within the directory, bytes; sorted), and the
/// accounts with events in the third batch that it holds.
struct Baseline {
    state: changeling::state::State,
    files: Vec<(String, Vec<u8>)>,
    resumed: Vec<String>,
}

fn baseline() -> &'static Baseline {
    use changeling::run::RunProgress;
    use changeling::run::daily::{self, Emit};
    use changeling::state::store::Store;
    use changeling::state::{Keys, State};
    static BASE: OnceLock<Baseline> = OnceLock::new();
    BASE.get_or_init(|| {
        let plan = builtin();
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = tmp.path().join("state");
        let mut state = State::new(plan);
        let opts = ReadOptions::default();
        for day in 0..2 {
            let b = tmp.path().join(format!("day{day}"));
            write_batch(&b, day);
            let (_, update) = daily::run(&b, plan, &state, &opts, Emit::Changes, &RunProgress::default())
                .expect("a clean batch runs in memory");
            state.apply(update);
            let opened = Store::open(&dir).expect("the state opens");
            let (_, update) = daily::run(&b, plan, &opened, &opts, Emit::Changes, &RunProgress::default())
                .expect("a clean batch runs");
            let (store, opened) = opened;
            store.commit(opened, update, &Keys::of(plan)).expect("the state is written");
        }
        let mut files = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("the state directory") {
                let p = e.expect("a directory entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let name = p.strip_prefix(&dir).expect("within").to_string_lossy().into_owned();
                    files.push((name, std::fs::read(&p).expect("a state file")));
                }
            }
        }
        files.sort();
        let resumed = batch(2)[0]
            .1
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["actor"].as_str().map(String::from))
            .filter(|a| state.accounts.contains_key(a))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Baseline { state, files, resumed }
    })
}

/// How far a daily-state input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// Refused before the run: the bytes or the state did not read.
    Refused,
    /// The run read the state and failed on it (an error).
    RunFailed,
    /// The run scored the batch (and, for a directory, wrote the next
    /// state or failed writing it with an error).
    Ran,
}

/// Runs the third batch from `source` and writes its changes (each line
/// must be JSON); the state's update, when the run succeeds.
fn third_batch(source: &dyn changeling::state::Source, emit_open: bool) -> Option<changeling::state::Update> {
    use changeling::run::RunProgress;
    use changeling::run::daily::{self, Emit};
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_batch(dir.path(), 2);
    let emit = if emit_open { Emit::Open } else { Emit::Changes };
    let (out, update) =
        daily::run(dir.path(), builtin(), source, &ReadOptions::default(), emit, &RunProgress::default()).ok()?;
    let rules = RuleInfo::of_plan(builtin());
    let accounts = out.incidents.into_vec().ok()?;
    let mut text = Vec::new();
    alerts::write_jsonl(&mut text, &accounts, Context::new(builtin(), &rules, &out.strings))
        .expect("writing to memory");
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(line) {
            panic!("a change written is not JSON ({e}): {}", String::from_utf8_lossy(line));
        }
    }
    Some(update)
}

/// An LZ4 block of `raw` as [`changeling::state::codec`] stores it (its
/// length as four bytes little-endian, then LZ4's block format), made of
/// literals only: any bytes, packed so that the decoder reaches them.
fn lz4_literals(raw: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    if raw.len() < 15 {
        out.push((raw.len() as u8) << 4);
    } else {
        out.push(0xf0);
        let mut rest = raw.len() - 15;
        while rest >= 255 {
            out.push(255);
            rest -= 255;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(raw);
}

/// A payload as stored, from its table of strings and its body,
/// uncompressed.
fn pack(table: &[u8], body: &[u8]) -> Vec<u8> {
    let mut strings = Vec::new();
    lz4_literals(table, &mut strings);
    let mut out = Vec::new();
    let mut n = strings.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&strings);
    lz4_literals(body, &mut out);
    out
}

/// Reads `body` with every reader of [`changeling::state::codec::Dec`],
/// each byte picking the next read, to the first error or the end.
fn dec_reads(mut d: changeling::state::codec::Dec<'_>) {
    for _ in 0..10_000 {
        let Ok(op) = d.u8() else { return };
        let ok = match op % 12 {
            0 => d.u64().is_ok(),
            1 => d.count().is_ok(),
            2 => d.i64().is_ok(),
            3 => d.time().is_ok(),
            4 => d.u32().is_ok(),
            5 => d.f64().is_ok(),
            6 => d.bool().is_ok(),
            7 => d.text().is_ok(),
            8 => d.sym().is_ok(),
            9 => d.opt_sym().is_ok(),
            10 => d.outcome().is_ok(),
            _ => d.u8().is_ok(),
        };
        if !ok || d.done() {
            return;
        }
    }
}

/// The account payload codec, and an account resumed from the payload.
/// The first byte picks: its bit 0x80, the rest is a payload as stored
/// (else the rest is a table of strings and a body, uncompressed, the
/// table's length in the first two bytes little-endian, packed here as a
/// stored payload, so that the fuzzer reaches past LZ4); its bit 0x40,
/// `--emit open`; its low bits, the account of the third batch whose
/// payload it replaces in the state of the first two. The codec's readers
/// never panic; the run resumes the account or fails with an error.
pub fn state_payload(data: &[u8]) -> Reach {
    use changeling::intern::{Interner, LocalStrings};
    use changeling::state::codec;
    let Some((&pick, rest)) = data.split_first() else { return Reach::Refused };
    let payload = if pick & 0x80 != 0 {
        rest.to_vec()
    } else {
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])).min(rest.len()), rest),
            _ => (0, rest),
        };
        let (table, body) = rest.split_at(len);
        // The uncompressed parts, read directly too.
        if let Ok(d) = codec::Dec::open(table, body, &mut Interner::new()) {
            dec_reads(d);
        }
        pack(table, body)
    };
    if let Ok((table, body)) = codec::unpack(&payload)
        && let Ok(d) = codec::Dec::open(&table, &body, &mut Interner::new())
    {
        dec_reads(d);
    }
    let mut scratch = Vec::new();
    let syms = codec::read_strings(&payload, &mut LocalStrings::new(), &mut scratch);
    let mut body = Vec::new();
    if let (Ok(syms), Ok(())) = (syms, codec::unpack_body(&payload, &mut body)) {
        dec_reads(codec::Dec::with_syms(&body, syms));
    }

    let base = baseline();
    let mut state = base.state.clone();
    let victim = &base.resumed[usize::from(pick & 0x3f) % base.resumed.len()];
    state.accounts.get_mut(victim).expect("an account of the state").payload = payload;
    match third_batch(&state, pick & 0x40 != 0) {
        Some(_) => Reach::Ran,
        None => Reach::RunFailed,
    }
}

/// The seeds of [`state_payload`]: each payload the baseline holds of an
/// account of the third batch, uncompressed and as stored.
pub fn state_payload_seeds() -> Vec<(String, Vec<u8>)> {
    use changeling::state::codec;
    let base = baseline();
    let mut out = Vec::new();
    for (i, id) in base.resumed.iter().enumerate() {
        let payload = &base.state.accounts[id].payload;
        let (table, body) = codec::unpack(payload).expect("a payload as written");
        let mut seed = vec![i as u8];
        seed.extend_from_slice(&(table.len() as u16).to_le_bytes());
        seed.extend_from_slice(&table);
        seed.extend_from_slice(&body);
        out.push((id.to_string(), seed));
        let mut stored = vec![i as u8 | 0x80];
        stored.extend_from_slice(payload);
        out.push((format!("{id}-stored"), stored));
    }
    out
}

/// CRC-32 (IEEE), as the state's sums.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A state directory's files, one replaced: the state of the first two
/// batches on disk, the file its first byte picks (its low six bits, among
/// the directory's files sorted by path: `CURRENT`, the manifest, layers
/// and their indexes, the timers', facts', indexes' and impressions'
/// files) holding the rest of the input. Its bit 0x40 reseals the file:
/// its size and CRC32 in the manifest made the input's (or, for a layer,
/// its blocks' CRC32s in its index), so that the input reaches the Arrow
/// reader behind the sums; its bit 0x80 runs with `--emit
/// open`. The state opens, the third batch runs and the next state is
/// written, or one of them is an error: never a panic.
pub fn state_files(data: &[u8]) -> Reach {
    use changeling::state::Keys;
    use changeling::state::store::Store;
    let Some((&pick, bytes)) = data.split_first() else { return Reach::Refused };
    let base = baseline();
    let target = &base.files[usize::from(pick & 0x3f) % base.files.len()].0;
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("state");
    for (name, b) in &base.files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("within the state")).expect("a state directory");
        std::fs::write(&path, if name == target { bytes } else { b }).expect("writing a state file");
    }
    if pick & 0x40 != 0 {
        reseal(&dir, target, bytes);
    }
    let Ok(opened) = Store::open(&dir) else { return Reach::Refused };
    let Some(update) = third_batch(&opened, pick & 0x80 != 0) else { return Reach::RunFailed };
    let (store, opened) = opened;
    let _ = store.commit(opened, update, &Keys::of(builtin()));
    Reach::Ran
}

/// Makes `bytes` the size and CRC32 the manifest lists for `target` (a
/// file of the current generation), when it lists it; for a layer of a
/// keyed table, makes its blocks' CRC32s those its index lists (as far as
/// its footer reads and the index has rows), the index resealed in turn.
fn reseal(dir: &Path, target: &str, bytes: &[u8]) {
    let Some((generation, name)) = target.split_once('/') else { return };
    if let Some(layer) = name.strip_suffix(".arrow").filter(|l| !l.ends_with(".index"))
        && let Some(crcs) = block_crcs(bytes)
    {
        let index = dir.join(generation).join(format!("{layer}.index.arrow"));
        if let Some(new) = std::fs::read(&index).ok().and_then(|old| with_crcs(&old, &crcs)) {
            std::fs::write(&index, &new).expect("writing an index");
            reseal(dir, &format!("{generation}/{layer}.index.arrow"), &new);
        }
    }
    let path = dir.join(generation).join("manifest.json");
    let Ok(text) = std::fs::read(&path) else { return };
    let Ok(mut m) = serde_json::from_slice::<serde_json::Value>(&text) else { return };
    let Some(sum) = m.get_mut("files").and_then(|f| f.get_mut(name)) else { return };
    *sum = serde_json::json!({ "bytes": bytes.len(), "crc32": crc32(bytes) });
    std::fs::write(&path, serde_json::to_vec_pretty(&m).expect("JSON")).expect("writing the manifest");
}

/// The seeds of [`state_files`]: each file of the baseline state as it is,
/// and resealed (which changes nothing but the bit).
pub fn state_files_seeds() -> Vec<(String, Vec<u8>)> {
    let base = baseline();
    let mut out = Vec::new();
    for (i, (name, bytes)) in base.files.iter().enumerate() {
        let flat = name.rsplit('/').next().unwrap_or(name).to_string();
        for (tag, bit) in [("", 0u8), ("-sealed", 0x40)] {
            let mut seed = vec![i as u8 | bit];
            seed.extend_from_slice(bytes);
            out.push((format!("{flat}{tag}"), seed));
        }
    }
    out
}

/// The CRC32 of each record batch block of the Arrow IPC file `bytes`, as
/// its footer places them (`None` when the footer does not read).
fn block_crcs(bytes: &[u8]) -> Option<Vec<u32>> {
    let n = bytes.len();
    let len = usize::try_from(i32::from_le_bytes(bytes.get(n.checked_sub(10)?..n - 6)?.try_into().ok()?)).ok()?;
    let footer = arrow::ipc::root_as_footer(bytes.get(n.checked_sub(10 + len)?..n - 10)?).ok()?;
    let crcs = footer
        .recordBatches()?
        .iter()
        .map(|b| {
            let at = usize::try_from(b.offset()).ok()?;
            let end = at
                .checked_add(usize::try_from(b.metaDataLength()).ok()?)?
                .checked_add(usize::try_from(b.bodyLength()).ok()?)?;
            Some(crc32(bytes.get(at..end)?))
        })
        .collect::<Option<Vec<u32>>>()?;
    Some(crcs)
}

/// A layer's index (an Arrow IPC file) with its `crc32` column (the
/// fourth) replaced by `crcs`, row for row, when it reads and has as many
/// rows.
fn with_crcs(index: &[u8], crcs: &[u32]) -> Option<Vec<u8>> {
    use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(index), None).ok()?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().ok()?;
    if batches.iter().map(RecordBatch::num_rows).sum::<usize>() != crcs.len() {
        return None;
    }
    let mut out = Vec::new();
    let mut w = arrow::ipc::writer::FileWriter::try_new(&mut out, &schema).ok()?;
    let mut at = 0;
    for b in batches {
        let mut columns: Vec<ArrayRef> = b.columns().to_vec();
        let rows = b.num_rows();
        *columns.get_mut(3)? = std::sync::Arc::new(UInt32Array::from(crcs[at..at + rows].to_vec()));
        at += rows;
        w.write(&RecordBatch::try_new(schema.clone(), columns).ok()?).ok()?;
    }
    w.finish().ok()?;
    drop(w);
    Some(out)
}

/// The time the exceptions target reads exceptions at (2025-01-01, UTC):
/// an `expires` before it warns, as one before the clock does.
const EXCEPTIONS_NOW: changeling::time::Millis = 1_735_689_600_000;

/// A small dataset with hits, as JSONL (events, items, follows): the
/// positive case of likes/removed-suspicious-like, with a device, an IP
/// and an ASN on each event. An account likes its followee's news hourly
/// from home, then, from another device and network, likes three adult
/// items of an author it does not follow and removes two an hour later.
fn hit_day() -> &'static [(TableKind, String); 3] {
    static DAY: OnceLock<[(TableKind, String); 3]> = OnceLock::new();
    DAY.get_or_init(|| {
        let event = |ts: &str, action: &str, target: &str, away: bool| {
            let (device, ip, asn) =
                if away { ("d-new", "203.0.113.9", "AS64511") } else { ("d-home", "198.51.100.4", "AS64496") };
            format!(
                "{{\"ts\":\"{ts}\",\"actor\":\"a\",\"action\":\"{action}\",\"target\":\"{target}\",\"surface\":\"home\",\
                 \"device\":\"{device}\",\"ip\":\"{ip}\",\"asn\":\"{asn}\"}}\n"
            )
        };
        let mut events: String =
            (0..20).map(|n| event(&format!("2020-01-01T{n:02}:00:00Z"), "like", &format!("i{n}"), false)).collect();
        for (ts, action, target) in [
            ("2020-01-02T12:00:00Z", "like", "x0"),
            ("2020-01-02T12:05:00Z", "like", "x1"),
            ("2020-01-02T12:10:00Z", "like", "x2"),
            ("2020-01-02T13:00:00Z", "unlike", "x0"),
            ("2020-01-02T13:02:00Z", "unlike", "x1"),
        ] {
            events += &event(ts, action, target, true);
        }
        let items: String = (0..20)
            .map(|n| format!("{{\"id\":\"i{n}\",\"author\":\"c1\",\"labels\":[\"news\"]}}\n"))
            .chain((0..4).map(|n| format!("{{\"id\":\"x{n}\",\"author\":\"p9\",\"labels\":[\"adult\"]}}\n")))
            .collect();
        let follows = "{\"follower\":\"a\",\"followee\":\"c1\"}\n".to_string();
        [(TableKind::Events, events), (TableKind::Items, items), (TableKind::Follows, follows)]
    })
}

/// Exceptions: the input is an exceptions file (`--exceptions FILE`),
/// read as the CLI reads it, at a fixed time. Reading never panics; the
/// exceptions that read are bound to the shipped rules and applied to
/// [`hit_day`], whose alerts are written (each line JSON); what each
/// exception suppressed is listed, one entry an exception, and no more
/// hits are suppressed than the rules make without exceptions.
pub fn exceptions(data: &[u8]) -> Reach {
    use changeling::exceptions::{self, Bound};
    let dir = tempfile::tempdir().expect("a temporary directory");
    write(dir.path(), "exceptions.toml", data);
    let (read, diags) = exceptions::load(&[dir.path().join("exceptions.toml")], EXCEPTIONS_NOW);
    let _ = diags.render();
    let Some(read) = read else { return Reach::Refused };
    let n = read.len();
    let Ok(bound) = Bound::new(read, builtin_info()) else { return Reach::Refused };
    let plan = builtin().clone().with_exceptions(bound);
    let texts: Vec<(TableKind, &str)> = hit_day().iter().map(|(k, t)| (*k, t.as_str())).collect();
    let day = Dataset::from_jsonl(&texts, true).expect("the day reads");
    score_and_write(&plan, &day);
    let listed = plan.exceptions.as_ref().map_or_else(Vec::new, |x| x.suppressed());
    assert_eq!(listed.len(), n, "{n} exceptions read, {} listed", listed.len());
    let suppressed: u64 = listed.iter().map(|s| s.hits).sum();
    let hits: usize =
        Scorer::new(builtin(), &day).run_sequential().iter().flat_map(|a| &a.incidents).map(|i| i.hits.len()).sum();
    assert!(suppressed <= hits as u64, "{suppressed} hits suppressed, of {hits}");
    let _ = serde_json::to_string(&listed).expect("the list serializes");
    Reach::Ran
}

/// The Parquet seeds' events table, as Arrow (its schema and batches).
fn arrow_events() -> &'static (arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>) {
    use std::io::{Seek, Write};
    static EVENTS: OnceLock<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>)> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(&include_bytes!("../seeds/parquet/events.parquet")[1..]).expect("a temporary file");
        file.rewind().expect("a temporary file");
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).expect("the events seed reads");
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        (schema, reader.collect::<Result<_, _>>().expect("the events seed reads"))
    })
}

thread_local! {
    /// Whether this thread is in [`harness_decoding`].
    static HARNESS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, the harness's own decoding of an input into what the engine
/// is handed (not the engine's work): the Arrow IPC reader panics on some
/// corrupt streams (a buffer sliced past the body), which is no finding
/// about the engine, so such a panic comes back as `None`, the panic hook
/// (which aborts under libFuzzer) kept quiet for it.
fn harness_decoding<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let next = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !HARNESS.with(std::cell::Cell::get) {
                next(info);
            }
        }));
    });
    HARNESS.with(|h| h.set(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    HARNESS.with(|h| h.set(false));
    out
}

/// Whether no message of the IPC stream `bytes` (as far as it parses)
/// has compressed buffers. Python hands the engine tables in memory, never
/// compressed buffers; and arrow's stream reader allocates the size a
/// compressed buffer claims before it checks it, so an input claiming
/// petabytes aborts the harness's decoding, before the engine sees a table.
fn uncompressed(mut bytes: &[u8]) -> bool {
    let word = |b: &[u8], at: usize| b.get(at..at + 4).map(|w| i32::from_le_bytes(w.try_into().expect("four bytes")));
    loop {
        let (len, at): (Option<i32>, usize) = match word(bytes, 0) {
            Some(-1) => (word(bytes, 4), 8),
            other => (other, 4),
        };
        let Some(len) = len.and_then(|l| usize::try_from(l).ok()).filter(|&l| l > 0) else { return true };
        let Some(meta) = bytes.get(at..at.saturating_add(len)) else { return true };
        let Ok(message) = arrow::ipc::root_as_message(meta) else { return true };
        let batch =
            message.header_as_record_batch().or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
        if batch.is_some_and(|b| b.compression().is_some()) {
            return false;
        }
        let body = usize::try_from(message.bodyLength()).unwrap_or(usize::MAX);
        let Some(rest) = bytes.get((at + len).saturating_add(body)..) else { return true };
        bytes = rest;
    }
}

/// Arrow tables as the Python package hands them over (a dict of tables
/// to `changeling.score`, read by [`Dataset::from_arrow`]): the first byte
/// picks the table (as for the dataset targets) and the options (bit
/// 0x80 strict, bit 0x40 the plan's projection, bits 0x30 the time unit);
/// the rest is an Arrow IPC stream, whose record batches (those read
/// before any error: Python hands over only whole batches; a stream the
/// IPC reader panics on is skipped, see [`harness_decoding`]) are the table,
/// beside the Parquet seeds' events table when the table is not events. The
/// dataset reads or is an error, never a panic; one that reads is scored
/// with the shipped rules.
pub fn arrow(data: &[u8]) -> Reach {
    use changeling::time::TimeUnit;
    let Some((&pick, bytes)) = data.split_first() else { return Reach::Refused };
    if !uncompressed(bytes) {
        return Reach::Refused;
    }
    let kind = table_of(pick);
    let decoded = harness_decoding(|| {
        let reader = arrow::ipc::reader::StreamReader::try_new(bytes, None).ok()?;
        let schema = reader.schema();
        Some((schema, reader.map_while(Result::ok).collect::<Vec<_>>()))
    });
    let Some(Some((schema, batches))) = decoded else { return Reach::Refused };
    let mut tables = vec![(kind, schema, batches)];
    if kind != TableKind::Events {
        let (schema, batches) = arrow_events();
        tables.push((TableKind::Events, schema.clone(), batches.clone()));
    }
    let opts = ReadOptions {
        strict: pick & 0x80 != 0,
        projection: (pick & 0x40 != 0).then(|| builtin().projection()),
        time_unit: [None, Some(TimeUnit::S), Some(TimeUnit::Us), Some(TimeUnit::Ns)][usize::from(pick >> 4 & 3)],
        ..ReadOptions::default()
    };
    let Ok(data) = Dataset::from_arrow(tables, &opts) else { return Reach::RunFailed };
    score_and_write(builtin(), &data);
    Reach::Ran
}
