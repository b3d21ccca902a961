//! A run's incidents: held in memory while they are small, spilled in
//! sorted runs when they are not, and handed back in account order, a
//! chunk at a time, however many there are.
//!
//! A partitioned run scores partitions in any order, and the output is
//! ordered by account id (as text). Incidents grow with flagged accounts,
//! not with events, but on 100 M events they reach hundreds of MiB (each
//! hit carries its `why`). While scoring, [`IncidentStore::add`] collects
//! each partition's accounts; past its share of the memory budget it sorts
//! what it holds by account and writes it to a spill file (a *run*).
//! [`Incidents::for_each_chunk`] then merges the runs and what is still
//! held, by account, into chunks of bounded size. An account's incidents
//! are always whole in one run: a partition holds whole accounts.
//!
//! The spill format is private to this module and to one run: symbols are
//! the run's own numbers, rule and signal kinds are indices.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::intern::{Interner, Sym};
use crate::rules::Effect;
use crate::score::{AccountIncidents, FamilyEvidence, Hit, Incident, Status};
use crate::signals::KINDS;
use crate::spill::SpillDir;

/// How many accounts one chunk of [`Incidents::for_each_chunk`] holds.
pub const CHUNK_ACCOUNTS: usize = 4096;

/// A run's incidents, in account order.
#[derive(Debug)]
pub struct Incidents {
    /// Held in memory, sorted by account.
    held: Vec<AccountIncidents>,
    /// Spilled runs, each sorted by account, and the directory holding
    /// them (removed when this is dropped).
    runs: Vec<PathBuf>,
    dir: Option<SpillDir>,
    strings: Arc<Interner>,
    /// Accounts with incidents, in all.
    accounts: u64,
}

impl Incidents {
    /// Incidents held in memory; `accounts` must be sorted by account id.
    pub fn in_memory(accounts: Vec<AccountIncidents>, strings: Arc<Interner>) -> Incidents {
        Incidents { accounts: accounts.len() as u64, held: accounts, runs: Vec::new(), dir: None, strings }
    }

    /// Accounts with incidents.
    pub fn accounts(&self) -> u64 {
        self.accounts
    }

    /// How many runs were spilled to disk (0: all held in memory).
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// Every account's incidents, in order, in chunks of at most
    /// [`CHUNK_ACCOUNTS`] accounts: memory stays bounded by a chunk and one
    /// account per spilled run.
    pub fn for_each_chunk(self, f: impl FnMut(Vec<AccountIncidents>) -> io::Result<()>) -> io::Result<()> {
        self.for_each_chunk_of(CHUNK_ACCOUNTS, f)
    }

    fn for_each_chunk_of(
        self,
        size: usize,
        mut f: impl FnMut(Vec<AccountIncidents>) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.runs.is_empty() {
            let mut held = self.held.into_iter();
            loop {
                let chunk: Vec<AccountIncidents> = held.by_ref().take(size).collect();
                if chunk.is_empty() {
                    return Ok(());
                }
                f(chunk)?;
            }
        }
        let strings = &self.strings;
        let mut sources: Vec<Source> = self.runs.iter().map(|p| Source::open(p)).collect::<io::Result<_>>()?;
        sources.push(Source::Held(self.held.into_iter()));
        // Heads of the sources, smallest account text first (ties cannot
        // happen: an account is in one source).
        let mut heap = BinaryHeap::new();
        for (k, s) in sources.iter_mut().enumerate() {
            if let Some(a) = s.next()? {
                heap.push(Reverse((strings.resolve(a.actor), k, Head(a))));
            }
        }
        let mut chunk = Vec::with_capacity(size);
        while let Some(Reverse((_, k, Head(a)))) = heap.pop() {
            chunk.push(a);
            if let Some(next) = sources[k].next()? {
                heap.push(Reverse((strings.resolve(next.actor), k, Head(next))));
            }
            if chunk.len() == size {
                f(std::mem::replace(&mut chunk, Vec::with_capacity(size)))?;
            }
        }
        if !chunk.is_empty() {
            f(chunk)?;
        }
        Ok(())
    }

    /// Every account's incidents, in order, in one vector (reads spilled
    /// runs back: for callers that want them all).
    pub fn into_vec(self) -> io::Result<Vec<AccountIncidents>> {
        let mut all = Vec::new();
        self.for_each_chunk(|chunk| {
            all.extend(chunk);
            Ok(())
        })?;
        Ok(all)
    }
}

/// An account's incidents as a heap entry (ordered by the key beside it).
struct Head(AccountIncidents);

impl PartialEq for Head {
    fn eq(&self, _: &Head) -> bool {
        true
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, _: &Head) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// One sorted source of the merge.
enum Source {
    Run(zstd::stream::read::Decoder<'static, BufReader<File>>, PathBuf),
    Held(std::vec::IntoIter<AccountIncidents>),
}

impl Source {
    fn open(path: &Path) -> io::Result<Source> {
        let file = File::open(path)?;
        Ok(Source::Run(zstd::stream::read::Decoder::new(file)?, path.to_path_buf()))
    }

    fn next(&mut self) -> io::Result<Option<AccountIncidents>> {
        match self {
            Source::Held(it) => Ok(it.next()),
            Source::Run(r, path) => {
                decode(r).map_err(|e| io::Error::new(e.kind(), format!("incident spill file {}: {e}", path.display())))
            }
        }
    }
}

/// Collects incidents while partitions are scored, spilling sorted runs
/// past `limit` bytes held.
#[derive(Debug)]
pub struct IncidentStore {
    /// The incidents, and the bytes of those held.
    inner: Mutex<(Incidents, usize)>,
    limit: usize,
    parent: PathBuf,
}

impl IncidentStore {
    /// An empty store that spills into a directory under `parent` once it
    /// holds more than `limit` bytes.
    pub fn new(strings: Arc<Interner>, limit: usize, parent: &Path) -> IncidentStore {
        IncidentStore {
            inner: Mutex::new((Incidents::in_memory(Vec::new(), strings), 0)),
            limit,
            parent: parent.to_path_buf(),
        }
    }

    /// Adds one partition's accounts (each whole).
    pub fn add(&self, accounts: Vec<AccountIncidents>) -> io::Result<()> {
        let bytes: usize = accounts.iter().map(heap_bytes).sum();
        let mut guard = self.inner.lock().map_err(|_| io::Error::other("incident store poisoned"))?;
        let (inner, held) = &mut *guard;
        inner.accounts += accounts.len() as u64;
        inner.held.extend(accounts);
        *held += bytes;
        if *held > self.limit {
            spill(inner, &self.parent)?;
            *held = 0;
        }
        Ok(())
    }

    /// The incidents, what is held sorted by account.
    pub fn finish(self) -> io::Result<Incidents> {
        let (mut inner, _) = self.inner.into_inner().map_err(|_| io::Error::other("incident store poisoned"))?;
        sort(&mut inner);
        Ok(inner)
    }
}

fn sort(inc: &mut Incidents) {
    let strings = &inc.strings;
    inc.held.sort_unstable_by(|a, b| strings.resolve(a.actor).cmp(strings.resolve(b.actor)));
}

/// Writes what `inc` holds, sorted, as one more run.
fn spill(inc: &mut Incidents, parent: &Path) -> io::Result<()> {
    sort(inc);
    if inc.dir.is_none() {
        inc.dir = Some(SpillDir::new(parent)?);
    }
    let dir = inc.dir.as_ref().expect("made above");
    let path = dir.path().join(format!("incidents-{}.zst", inc.runs.len()));
    let mut w = zstd::stream::write::Encoder::new(BufWriter::new(File::create(&path)?), 1)?;
    w.include_checksum(true)?;
    let mut buf = Vec::new();
    for a in inc.held.drain(..) {
        buf.clear();
        encode(&a, &mut buf);
        w.write_all(&buf)?;
    }
    w.finish()?.flush()?;
    inc.held = Vec::new();
    inc.runs.push(path);
    Ok(())
}

/// Approximate heap bytes of one account's incidents.
fn heap_bytes(a: &AccountIncidents) -> usize {
    let hit = |h: &Hit| std::mem::size_of::<Hit>() + h.why.capacity() + h.signals.capacity() * 16;
    std::mem::size_of::<AccountIncidents>()
        + a.incidents
            .iter()
            .map(|i| {
                std::mem::size_of::<Incident>()
                    + i.families.capacity() * std::mem::size_of::<FamilyEvidence>()
                    + i.hits.iter().map(hit).sum::<usize>()
            })
            .sum::<usize>()
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// One account's incidents, as the spill format writes them.
fn encode(a: &AccountIncidents, out: &mut Vec<u8>) {
    put_u32(out, a.actor.index() as u32);
    put_u32(out, a.incidents.len() as u32);
    for i in &a.incidents {
        put_u32(out, i.id.len() as u32);
        out.extend_from_slice(i.id.as_bytes());
        put_u64(out, i.final_after as u64);
        out.push(i.status as u8);
        put_u64(out, i.start as u64);
        put_u64(out, i.end as u64);
        put_u64(out, i.score.to_bits());
        put_u32(out, i.tier as u32);
        put_u32(out, i.families.len() as u32);
        for f in &i.families {
            put_u32(out, f.family as u32);
            put_u64(out, f.evidence.to_bits());
            put_u32(out, f.hits);
        }
        put_u32(out, i.hits.len() as u32);
        for h in &i.hits {
            put_u32(out, h.rule);
            put_u32(out, h.event);
            put_u64(out, h.ts as u64);
            put_u32(out, h.action.index() as u32);
            put_u32(out, h.target.map_or(u32::MAX, |t| t.index() as u32));
            put_u64(out, h.strength.to_bits());
            out.push(matches!(h.effect, Effect::Against) as u8);
            put_u32(out, h.why.len() as u32);
            out.extend_from_slice(h.why.as_bytes());
            out.push(h.signals.len() as u8);
            for s in &h.signals {
                out.push(KINDS.iter().position(|k| k == s).expect("a signal kind is registered") as u8);
            }
        }
    }
}

/// Reads fixed-size fields, telling a clean end (before the first byte of
/// an account) from a truncated record.
struct Fields<'r, R: Read> {
    r: &'r mut R,
}

impl<R: Read> Fields<'_, R> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn text(&mut self) -> io::Result<String> {
        let len = self.u32()? as usize;
        let mut bytes = Vec::new();
        self.r.by_ref().take(len as u64).read_to_end(&mut bytes)?;
        if bytes.len() != len {
            return Err(corrupt("truncated"));
        }
        String::from_utf8(bytes).map_err(|_| corrupt("a text that is not UTF-8"))
    }
    fn sym(&mut self) -> io::Result<Sym> {
        let n = self.u32()?;
        if n == u32::MAX {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a symbol out of range"));
        }
        Ok(Interner::sym_at(n as usize))
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt record: {what}"))
}

/// The next account's incidents, or `None` at the end of the run.
fn decode(r: &mut impl Read) -> io::Result<Option<AccountIncidents>> {
    let mut first = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut first[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(corrupt("truncated")),
            n => got += n,
        }
    }
    let mut f = Fields { r };
    let actor = Interner::sym_at(u32::from_le_bytes(first) as usize);
    let n = f.u32()?;
    let mut incidents = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        let id = f.text()?;
        let final_after = f.u64()? as i64;
        let status = match f.u8()? {
            0 => Status::New,
            1 => Status::Updated,
            2 => Status::Final,
            3 => Status::Withdrawn,
            _ => return Err(corrupt("an unknown status")),
        };
        let start = f.u64()? as i64;
        let end = f.u64()? as i64;
        let score = f64::from_bits(f.u64()?);
        let tier = f.u32()? as usize;
        let families = (0..f.u32()?)
            .map(|_| {
                Ok(FamilyEvidence { family: f.u32()? as usize, evidence: f64::from_bits(f.u64()?), hits: f.u32()? })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let nh = f.u32()?;
        let mut hits = Vec::with_capacity(nh.min(1 << 16) as usize);
        for _ in 0..nh {
            let rule = f.u32()?;
            let event = f.u32()?;
            let ts = f.u64()? as i64;
            let action = f.sym()?;
            let target = match f.u32()? {
                u32::MAX => None,
                t => Some(Interner::sym_at(t as usize)),
            };
            let strength = f64::from_bits(f.u64()?);
            let effect = if f.u8()? == 1 { Effect::Against } else { Effect::For };
            let why = f.text()?;
            let signals = (0..f.u8()?)
                .map(|_| KINDS.get(f.u8()? as usize).copied().ok_or_else(|| corrupt("an unknown signal kind")))
                .collect::<io::Result<Vec<_>>>()?;
            hits.push(Hit { rule, event, ts, action, target, strength, effect, why, signals });
        }
        incidents.push(Incident { id, start, end, score, tier, families, hits, final_after, status });
    }
    Ok(Some(AccountIncidents { actor, incidents }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accounts added in any order, through a store that spills after
    /// every few, come back in account order, whole and unchanged, in
    /// chunks; and a store that never spills gives the same.
    #[test]
    fn spilled_runs_merge_back_in_account_order() {
        let (dir, plan, _info, opts) = crate::stream::tests::demo();
        let data = crate::data::Dataset::open(dir.path(), &opts).unwrap();
        let want = crate::score::Scorer::new(&plan, &data).run();
        assert!(want.len() > 100, "the demo flags accounts");
        let strings = data.strings.clone();
        let tmp = tempfile::tempdir().unwrap();
        for limit in [0, 20_000, usize::MAX] {
            let store = IncidentStore::new(strings.clone(), limit, tmp.path());
            // Partitions in a scrambled order, each sorted on its own.
            let mut parts: Vec<Vec<AccountIncidents>> = vec![Vec::new(); 7];
            for (k, a) in want.iter().enumerate() {
                parts[(k * 5) % 7].push(a.clone());
            }
            for p in parts.into_iter().rev() {
                store.add(p).unwrap();
            }
            let got = store.finish().unwrap();
            assert_eq!(got.accounts(), want.len() as u64);
            assert_eq!(got.spilled_runs() > 0, limit < usize::MAX, "limit {limit}");
            let mut chunks = 0;
            let mut all = Vec::new();
            got.for_each_chunk_of(16, |c| {
                assert!(c.len() <= 16);
                chunks += 1;
                all.extend(c);
                Ok(())
            })
            .unwrap();
            assert!(all == want, "limit {limit}: merged incidents differ");
            assert_eq!(chunks, want.len().div_ceil(16));
        }
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "spill directories removed");
    }

    /// A run file cut short is an error naming the file, not a panic or a
    /// silent end.
    #[test]
    fn a_truncated_run_is_an_error() {
        let mut strings = Interner::new();
        let actor = strings.intern("acct");
        let action = strings.intern("like");
        let hit = Hit {
            rule: 0,
            event: 3,
            ts: 1000,
            action,
            target: None,
            strength: 0.5,
            effect: Effect::For,
            why: "liked it".into(),
            signals: vec![KINDS[0]],
        };
        let incident = Incident {
            id: "i".into(),
            start: 1000,
            end: 1000,
            score: 0.5,
            tier: 0,
            families: Vec::new(),
            hits: vec![hit],
            final_after: 2000,
            status: Status::New,
        };
        let a = AccountIncidents { actor, incidents: vec![incident] };
        let mut bytes = Vec::new();
        encode(&a, &mut bytes);
        assert_eq!(decode(&mut &bytes[..]).unwrap(), Some(a));
        for cut in 1..bytes.len() {
            assert!(decode(&mut &bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&mut &bytes[..0]).unwrap(), None);
    }
}
