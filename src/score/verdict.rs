//! A rule's verdict on one event, kept while it hits or may still change.
//!
//! Most verdicts are final the moment they are given: the rule hits or it
//! does not, and only hits are kept. Some signals declare a look-ahead
//! ([`crate::signals::Signal::horizon`]): `off_pattern` takes a novel like
//! back when the account engages with the value again within its
//! `return_window`; `lockstep` may fire once other accounts' later actions
//! are known; `after_hit` follows other rules' hits, which may themselves
//! change. A rule's verdict with such a signal is a [`Record`]: what each
//! of its signals said, and how each waiting one may still change
//! ([`Said::later`]). Later events revise it; at the end of an account's
//! events the hits are derived from the records in time order
//! ([`derive`]), `after_hit` deciding on the hits as they then stand.
//!
//! The same records serve a run over all the data and a daily run that
//! resumes from a state: a verdict never reads past its event except
//! through what its signal declared, so both end with the same hits.

use std::borrow::Cow;

use super::Hit;
use crate::intern::{Interner, Sym};
use crate::plan::PlannedRule;
use crate::rules::When;
use crate::signals::{Cause, EarlierHit, Judge, Later, Outcome, Tracker, Why};
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::Millis;

/// What one signal of a rule says about an event, and how it may still
/// change.
#[derive(Clone, Debug)]
pub struct Said {
    /// The verdict as it stands (with words when it fired).
    pub outcome: Outcome,
    /// How it may still change; `None` when final.
    pub later: Option<Later>,
}

/// One rule's verdict on one event of an account.
#[derive(Clone, Debug)]
pub struct Record {
    /// The rule, by plan index.
    pub rule: u32,
    /// The event's index in the dataset (for ordering and tracing).
    pub event: u32,
    /// The event's time.
    pub ts: Millis,
    /// The event's action.
    pub action: Sym,
    /// The event's target, if any.
    pub target: Option<Sym>,
    /// The event in words ("liked t-905 by acct-77 (labels: adult)"), as
    /// [`Head`] keeps them.
    pub head: Head,
    /// What each of the rule's signals says, in the rule's order.
    pub said: Vec<Said>,
}

/// An event's words as a verdict keeps them: the parts they are made of
/// besides the event's action and target (the target's author, and its
/// labels when the target is a listed item), or, read from a state written
/// before version 5, the words themselves.
#[derive(Clone, Debug, PartialEq)]
pub enum Head {
    /// The words, as kept by a state of version 1 to 4.
    Text(String),
    /// The target's author and labels.
    Parts { author: Option<Sym>, labels: Vec<Sym> },
}

impl Head {
    /// The words of an event with `action` and `target`: "liked t-905 by
    /// acct-77 (labels: adult)" (kept words as they are, not copied).
    pub fn words(&self, action: Sym, target: Option<Sym>, strings: &Interner) -> Cow<'_, str> {
        let (author, labels) = match self {
            Head::Text(text) => return Cow::Borrowed(text),
            Head::Parts { author, labels } => (author, labels),
        };
        let mut s = super::verb(strings.resolve(action));
        if let Some(t) = target {
            s.push(' ');
            s.push_str(strings.resolve(t));
            if let Some(a) = author {
                s.push_str(" by ");
                s.push_str(strings.resolve(*a));
            }
            if !labels.is_empty() {
                let names: Vec<&str> = labels.iter().map(|&l| strings.resolve(l)).collect();
                s.push_str(&format!(" (labels: {})", names.join(", ")));
            }
        }
        Cow::Owned(s)
    }

    /// Writes it: a byte for its form (0 the words, 1 the parts), then
    /// them.
    pub fn save(&self, w: &mut Enc<'_>) {
        match self {
            Head::Text(text) => {
                w.u8(0);
                w.text(text);
            }
            Head::Parts { author, labels } => {
                w.u8(1);
                w.opt_sym(*author);
                w.count(labels.len());
                for &l in labels {
                    w.sym(l);
                }
            }
        }
    }

    /// Reads what [`Head::save`] wrote; a state of version 1 to 4 kept the
    /// words alone.
    pub fn load(r: &mut Dec<'_>) -> Result<Head, CodecError> {
        if r.carry_version() < 5 {
            return Ok(Head::Text(r.text()?.to_string()));
        }
        match r.u8()? {
            0 => Ok(Head::Text(r.text()?.to_string())),
            1 => {
                let author = r.opt_sym()?;
                let labels = (0..r.count()?).map(|_| r.sym()).collect::<Result<_, _>>()?;
                Ok(Head::Parts { author, labels })
            }
            form => Err(CodecError(format!("an event's words of form {form}"))),
        }
    }
}

impl Record {
    /// Whether any of its signals may still change.
    pub fn waiting(&self) -> bool {
        self.said.iter().any(|s| s.later.is_some())
    }

    /// The hit it makes now as signals see it on later events, if it hits.
    pub fn earlier(&self, planned: &PlannedRule) -> Option<EarlierHit> {
        let (strength, _) = combine(planned, self.said.iter().map(|s| &s.outcome))?;
        Some(EarlierHit {
            rule: self.rule,
            ts: self.ts,
            action: self.action,
            target: self.target,
            strength: super::incident::round4(strength),
            effect: planned.effect,
        })
    }

    /// The hit it makes now, if it hits: with its words when `strings`
    /// is given, else with none ([`Record::why`] makes them).
    pub fn hit(&self, planned: &PlannedRule, strings: Option<&Interner>) -> Option<Hit> {
        let (strength, fired) = combine(planned, self.said.iter().map(|s| &s.outcome))?;
        let why = strings.map(|strings| self.words(&fired, strings)).unwrap_or_default();
        Some(Hit {
            rule: self.rule,
            event: self.event,
            ts: self.ts,
            action: self.action,
            target: self.target,
            strength: super::incident::round4(strength),
            effect: planned.effect,
            why,
            signals: fired.iter().map(|&si| planned.signals[si].def.kind()).collect(),
        })
    }

    /// The words of the hit it makes now (empty if it makes none).
    pub fn why(&self, planned: &PlannedRule, strings: &Interner) -> String {
        combine(planned, self.said.iter().map(|s| &s.outcome))
            .map_or_else(String::new, |(_, fired)| self.words(&fired, strings))
    }

    /// Its hit's words: the event's, then each fired signal's.
    fn words(&self, fired: &[usize], strings: &Interner) -> String {
        let mut why = self.head.words(self.action, self.target, strings).into_owned();
        if fired.is_empty() {
            why.push_str(": matched the rule's selection");
            return why;
        }
        why.push_str(": ");
        for (k, &si) in fired.iter().enumerate() {
            if k > 0 {
                why.push_str("; ");
            }
            why.push_str(&self.fired_why(si).text(strings));
        }
        why
    }

    fn fired_why(&self, si: usize) -> &Why {
        match &self.said[si].outcome {
            Outcome::Fire { why, .. } => why,
            _ => unreachable!("fired signals fire"),
        }
    }

    /// Feeds what its hit's words say to `eat`, without making them: the
    /// words themselves when every fired signal kept text (as a build
    /// before verdicts kept numbers fed them, so a fingerprint it took
    /// reads the same), else the event's words and each signal's numbers.
    pub fn feed_words(&self, planned: &PlannedRule, strings: &Interner, eat: &mut dyn FnMut(&[u8])) {
        let Some((_, fired)) = combine(planned, self.said.iter().map(|s| &s.outcome)) else { return };
        if fired.iter().all(|&si| matches!(self.fired_why(si), Why::Text(_))) {
            eat(self.words(&fired, strings).as_bytes());
            return;
        }
        eat(self.head.words(self.action, self.target, strings).as_bytes());
        for &si in &fired {
            self.fired_why(si).feed(strings, eat);
        }
    }
}

/// How a rule's signals' outcomes combine: `None` for no hit, else the
/// hit's strength and the signals that fired.
pub fn combine<'a>(planned: &PlannedRule, outcomes: impl Iterator<Item = &'a Outcome>) -> Option<(f64, Vec<usize>)> {
    let mut fired = Vec::new();
    let mut strengths = Vec::new();
    let mut spoke = 0;
    let mut any = false;
    for (si, o) in outcomes.enumerate() {
        any = true;
        match o {
            Outcome::Fire { strength, .. } => {
                spoke += 1;
                fired.push(si);
                strengths.push(*strength);
            }
            Outcome::Quiet => {
                spoke += 1;
                if planned.when == When::All {
                    return None;
                }
            }
            Outcome::Abstain if planned.signals[si].require => return None,
            Outcome::Abstain => {}
        }
    }
    if !any {
        return Some((1.0, fired));
    }
    if fired.is_empty() || spoke == 0 {
        return None;
    }
    let strength = match planned.when {
        When::All => strengths.iter().product(),
        When::Any => 1.0 - strengths.iter().map(|s| 1.0 - s).product::<f64>(),
    };
    Some((strength, fired))
}

/// Whether a verdict can never hit, whatever its waiting signals say
/// later: a final quiet signal under `when = "all"`, or a final abstention
/// of a required one.
pub fn dead(planned: &PlannedRule, said: &[Said]) -> bool {
    said.iter().enumerate().any(|(si, s)| {
        s.later.is_none()
            && match s.outcome {
                Outcome::Quiet => planned.when == When::All,
                Outcome::Abstain => planned.signals[si].require,
                Outcome::Fire { .. } => false,
            }
    })
}

/// What revising needs of the bound plan: each rule's signals' judges and
/// trackers.
pub trait Judges {
    /// The judge and tracker of signal `si` of rule `rule`.
    fn judge(&self, rule: u32, si: usize) -> (&Judge, &Tracker);
}

/// Revises every waiting verdict of `records` (from `from` on) with
/// `cause`; a verdict whose deadline is before `now` becomes final (but
/// one that follows earlier hits waits for [`derive`], which decides it).
pub fn revise(records: &mut [Record], from: usize, judges: &impl Judges, cause: &Cause<'_>, now: Millis) {
    for r in &mut records[from..] {
        for (si, said) in r.said.iter_mut().enumerate() {
            let Some(later) = &mut said.later else { continue };
            let (judge, tracker) = judges.judge(r.rule, si);
            if let Some(o) = judge.revise(tracker, later, cause, &said.outcome) {
                said.outcome = o;
            }
            if later.deadline() < now && !later.follows_hits() {
                said.later = None;
            }
        }
    }
}

/// The hits of an account's records, in order: each record's waiting
/// verdicts on earlier hits decided on the hits of the events before it as
/// they now stand; those whose deadline is before `now` become final.
pub fn derive(
    records: &mut [Record],
    rules: &[PlannedRule],
    judges: &impl Judges,
    strings: &Interner,
    now: Millis,
) -> Vec<Hit> {
    derive_from(records, rules, judges, strings, now, true).0
}

/// [`derive`], with each hit's record (its position in `records`); the
/// hits' words are made only if `words` ([`Record::why`] makes them later).
pub fn derive_from(
    records: &mut [Record],
    rules: &[PlannedRule],
    judges: &impl Judges,
    strings: &Interner,
    now: Millis,
    words: bool,
) -> (Vec<Hit>, Vec<usize>) {
    let mut hits: Vec<Hit> = Vec::new();
    let mut from = Vec::new();
    let mut earlier: Vec<EarlierHit> = Vec::new();
    // Hits of the records of the current event, seen by later events only.
    let mut current: Option<(Millis, u32)> = None;
    let mut fresh = 0;
    for (k, r) in records.iter_mut().enumerate() {
        if current != Some((r.ts, r.event)) {
            earlier.extend(hits[hits.len() - fresh..].iter().map(Hit::earlier));
            (current, fresh) = (Some((r.ts, r.event)), 0);
        }
        for (si, said) in r.said.iter_mut().enumerate() {
            let Some(later) = &mut said.later else { continue };
            let (judge, tracker) = judges.judge(r.rule, si);
            if let Some(o) = judge.revise(tracker, later, &Cause::Hits(&earlier, strings), &said.outcome) {
                said.outcome = o;
            }
            if later.deadline() < now {
                said.later = None;
            }
        }
        if let Some(hit) = r.hit(&rules[r.rule as usize], words.then_some(strings)) {
            hits.push(hit);
            from.push(k);
            fresh += 1;
        }
    }
    (hits, from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::rules::layers::{self, RuleLayer};

    /// An event's words kept as their parts read as the words a state
    /// before version 5 kept whole, take fewer bytes, and read back in
    /// both versions; a form this build does not know is an error.
    #[test]
    fn an_events_words_read_the_same_from_their_parts() {
        let mut strings = Interner::new();
        let [like, login, t, a, x, y] =
            ["like", "login", "t-905", "acct-77", "adult", "music"].map(|v| strings.intern(v));
        let parts = Head::Parts { author: Some(a), labels: vec![x, y] };
        assert_eq!(parts.words(like, Some(t), &strings), "liked t-905 by acct-77 (labels: adult, music)");
        let bare = Head::Parts { author: None, labels: Vec::new() };
        assert_eq!(bare.words(like, Some(t), &strings), "liked t-905");
        assert_eq!(bare.words(login, None, &strings), "logged in");
        let text = Head::Text("liked t-905 by acct-77 (labels: adult, music)".into());
        assert_eq!(text.words(like, Some(t), &strings), parts.words(like, Some(t), &strings));
        let body = |head: &Head| {
            let mut w = Enc::new(&strings);
            head.save(&mut w);
            w.u8(0xaa);
            let (_, body) = crate::state::codec::unpack(&w.finish()).unwrap();
            body
        };
        // The payload's strings in the order first written: t's author,
        // then the labels.
        let syms = vec![a, x, y];
        for head in [&parts, &text] {
            let bytes = body(head);
            let mut r = Dec::with_syms(&bytes, syms.clone());
            r.set_carry_version(5);
            assert_eq!(&Head::load(&mut r).unwrap(), head);
            assert_eq!(r.u8().unwrap(), 0xaa);
        }
        assert!(body(&parts).len() + 30 < body(&text).len());
        // Version 4 kept the words alone.
        let mut w = Enc::new(&strings);
        w.text("liked t-905");
        let (_, old) = crate::state::codec::unpack(&w.finish()).unwrap();
        let mut r = Dec::with_syms(&old, Vec::new());
        r.set_carry_version(4);
        assert_eq!(Head::load(&mut r).unwrap(), Head::Text("liked t-905".into()));
        let mut r = Dec::with_syms(&[7], Vec::new());
        r.set_carry_version(5);
        assert!(Head::load(&mut r).unwrap_err().0.contains("form 7"));
    }

    /// What a hit's words say is fed to a fingerprint: as the words
    /// themselves (once, as one piece) while every fired signal kept text,
    /// so that fingerprints an earlier build stored read the same; else as
    /// numbers, in which a settled look-ahead differs from a provisional
    /// one as its words do.
    #[test]
    fn words_are_fed_to_fingerprints_as_before_and_as_numbers() {
        let (set, _) = layers::load(&[RuleLayer::Builtin], &Default::default());
        let plan = Plan::compile(&set.unwrap());
        let k = plan.rules.iter().position(|r| r.id == "likes/unexposed-off-pattern").unwrap();
        let planned = &plan.rules[k];
        assert_eq!(planned.signals.len(), 2);
        let mut strings = Interner::new();
        let like = strings.intern("like");
        let (numbers, settled) = crate::signals::off_pattern::tests::provisional_and_settled(&mut strings);
        let record = |said: Vec<Outcome>| Record {
            rule: k as u32,
            event: 3,
            ts: 1_000,
            action: like,
            target: None,
            head: Head::Text("liked t1 by a1".into()),
            said: said.into_iter().map(|outcome| Said { outcome, later: None }).collect(),
        };
        let fired = |why: Why| Outcome::Fire { strength: 0.5, why };
        let fed = |r: &Record| {
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            r.feed_words(planned, &strings, &mut |b: &[u8]| pieces.push(b.to_vec()));
            pieces
        };
        let texts = record(vec![fired(Why::Text("author a1 not followed".into())), fired(Why::Text("label x".into()))]);
        let why = texts.why(planned, &strings);
        assert_eq!(why, "liked t1 by a1: author a1 not followed; label x");
        assert_eq!(texts.hit(planned, Some(&strings)).unwrap().why, why);
        assert_eq!(texts.hit(planned, None).unwrap().why, "", "words only when asked");
        assert_eq!(fed(&texts), vec![why.into_bytes()]);

        // Numbers: off_pattern's words, provisional and settled.
        let provisional = record(vec![fired(Why::Text("author a1 not followed".into())), fired(numbers)]);
        let settled = record(vec![fired(Why::Text("author a1 not followed".into())), fired(settled)]);
        assert_ne!(fed(&provisional), fed(&settled));
        assert_ne!(provisional.why(planned, &strings), settled.why(planned, &strings));
        assert_eq!(fed(&provisional), fed(&provisional.clone()));
    }
}
