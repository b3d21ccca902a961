//! The tables of the data contract (`SCHEMA.md`) and their known fields.
//!
//! This is the one place that lists field names and kinds; readers, rules
//! (field references and "did you mean") and docs all take them from here.

/// How a field's values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A timestamp: RFC 3339 text or epoch milliseconds.
    Time,
    /// An identifier or categorical string, interned. Numbers are read as
    /// their decimal text.
    Sym,
    /// A list of strings (JSON array, or `|`-separated in CSV).
    List,
    /// A number.
    Num,
    /// Free text, stored as is (not interned).
    Text,
}

/// One known field of a table.
#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    /// The field's name in every format.
    pub name: &'static str,
    /// How it is stored.
    pub kind: Kind,
    /// Whether a record without it is skipped as bad.
    pub required: bool,
}

const fn f(name: &'static str, kind: Kind, required: bool) -> FieldDef {
    FieldDef { name, kind, required }
}

/// A table of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    /// `events`: one activity event per record (required).
    Events,
    /// `items`: content items that events target.
    Items,
    /// `follows`: the follow graph when the log starts.
    Follows,
    /// `accounts`: account metadata.
    Accounts,
    /// `impressions`: which items were shown to which account.
    Impressions,
    /// `labels`: ground truth for evaluation.
    Labels,
}

/// Column positions of the events table; they are fixed by [`EVENTS`].
pub mod ev {
    /// `ts`
    pub const TS: usize = 0;
    /// `actor`
    pub const ACTOR: usize = 1;
    /// `action`
    pub const ACTION: usize = 2;
    /// `target`
    pub const TARGET: usize = 3;
    /// `target_author`
    pub const TARGET_AUTHOR: usize = 4;
    /// `surface`
    pub const SURFACE: usize = 5;
    /// `client`
    pub const CLIENT: usize = 6;
    /// `device`
    pub const DEVICE: usize = 7;
    /// `ip`
    pub const IP: usize = 8;
    /// `country`
    pub const COUNTRY: usize = 9;
    /// `asn`
    pub const ASN: usize = 10;
    /// `lat`
    pub const LAT: usize = 11;
    /// `lon`
    pub const LON: usize = 12;
}

/// Fields of `events`, in column order (see [`ev`]).
pub const EVENTS: &[FieldDef] = &[
    f("ts", Kind::Time, true),
    f("actor", Kind::Sym, true),
    f("action", Kind::Sym, true),
    f("target", Kind::Sym, false),
    f("target_author", Kind::Sym, false),
    f("surface", Kind::Sym, false),
    f("client", Kind::Sym, false),
    f("device", Kind::Sym, false),
    f("ip", Kind::Sym, false),
    f("country", Kind::Sym, false),
    f("asn", Kind::Sym, false),
    f("lat", Kind::Num, false),
    f("lon", Kind::Num, false),
];

/// Column positions of the items table.
pub mod it {
    /// `id`
    pub const ID: usize = 0;
    /// `author`
    pub const AUTHOR: usize = 1;
    /// `created_at`
    pub const CREATED_AT: usize = 2;
    /// `labels`
    pub const LABELS: usize = 3;
    /// `lang`
    pub const LANG: usize = 4;
    /// `text`
    pub const TEXT: usize = 5;
}

/// Fields of `items`.
pub const ITEMS: &[FieldDef] = &[
    f("id", Kind::Sym, true),
    f("author", Kind::Sym, true),
    f("created_at", Kind::Time, false),
    f("labels", Kind::List, false),
    f("lang", Kind::Sym, false),
    f("text", Kind::Text, false),
];

/// Fields of `follows`: `follower`, `followee`, `since`.
pub const FOLLOWS: &[FieldDef] =
    &[f("follower", Kind::Sym, true), f("followee", Kind::Sym, true), f("since", Kind::Time, false)];

/// Fields of `accounts`: `id`, `created_at`, `handle`, `labels`.
pub const ACCOUNTS: &[FieldDef] = &[
    f("id", Kind::Sym, true),
    f("created_at", Kind::Time, false),
    f("handle", Kind::Sym, false),
    f("labels", Kind::List, false),
];

/// Fields of `impressions`: `actor`, `item`, `ts`, `surface`.
pub const IMPRESSIONS: &[FieldDef] = &[
    f("actor", Kind::Sym, true),
    f("item", Kind::Sym, true),
    f("ts", Kind::Time, true),
    f("surface", Kind::Sym, false),
];

/// Fields of `labels`: `actor`, `label`, `start`, `end`.
pub const LABELS: &[FieldDef] = &[
    f("actor", Kind::Sym, true),
    f("label", Kind::Sym, true),
    f("start", Kind::Time, false),
    f("end", Kind::Time, false),
];

impl TableKind {
    /// Every table, in the order they are read.
    pub const ALL: [TableKind; 6] = [
        TableKind::Events,
        TableKind::Items,
        TableKind::Follows,
        TableKind::Accounts,
        TableKind::Impressions,
        TableKind::Labels,
    ];

    /// The table's file stem (`events`, `items`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Events => "events",
            TableKind::Items => "items",
            TableKind::Follows => "follows",
            TableKind::Accounts => "accounts",
            TableKind::Impressions => "impressions",
            TableKind::Labels => "labels",
        }
    }

    /// The table's known fields, in column order.
    pub fn fields(self) -> &'static [FieldDef] {
        match self {
            TableKind::Events => EVENTS,
            TableKind::Items => ITEMS,
            TableKind::Follows => FOLLOWS,
            TableKind::Accounts => ACCOUNTS,
            TableKind::Impressions => IMPRESSIONS,
            TableKind::Labels => LABELS,
        }
    }
}

impl std::fmt::Display for TableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
