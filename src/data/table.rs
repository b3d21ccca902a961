//! Columnar storage for one table, and the per-block builder that fills it.
//!
//! A table is a set of typed columns, one per known field of its schema and
//! one per unknown field met in the data ("extras", kept as strings so rules
//! can address them by name). Columns are filled lazily: a column whose
//! values are all absent holds no memory, and a column that is only set from
//! row 1,000 on holds nothing for the rows before.
//!
//! Readers parse blocks of records in parallel, each into its own
//! [`TableBuilder`] with a private interner; [`Table::append`] then merges
//! blocks in file order into the shared interner. The builder never fails on
//! a bad record: it drops the record and says why, for the read report.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::schema::{FieldDef, Kind, TableKind};
use crate::intern::{Interner, LocalStrings, Sym};
use crate::time::{Millis, TimeUnit, check_time, parse_timestamp_in};

/// A column of optional timestamps: the values, and apart from them a
/// validity bitmap, so that absence is never a value (no time, however
/// extreme, can be mistaken for "absent"). Rows past the end are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Times {
    /// One value per row; that of an absent row is 0 and never read.
    values: Vec<Millis>,
    /// Bit `i % 64` of word `i / 64` is set when row `i` has a value.
    present: Vec<u64>,
}

impl Times {
    /// No rows.
    pub fn new() -> Times {
        Times::default()
    }

    /// Every row present, with these values.
    pub fn from_values(values: Vec<Millis>) -> Times {
        let n = values.len();
        let mut present = vec![u64::MAX; n.div_ceil(64)];
        if !n.is_multiple_of(64)
            && let Some(last) = present.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        Times { values, present }
    }

    /// Number of rows held (absent rows included).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no rows are held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at `row`, if present.
    #[inline]
    pub fn get(&self, row: usize) -> Option<Millis> {
        let word = *self.present.get(row / 64)?;
        (word >> (row % 64) & 1 == 1).then(|| self.values[row])
    }

    /// Appends one row.
    pub fn push(&mut self, value: Option<Millis>) {
        let row = self.values.len();
        if row.is_multiple_of(64) {
            self.present.push(0);
        }
        if value.is_some() {
            self.present[row / 64] |= 1 << (row % 64);
        }
        self.values.push(value.unwrap_or(0));
    }

    /// Pads with absent rows up to `len` rows.
    pub fn pad(&mut self, len: usize) {
        if len > self.values.len() {
            self.values.resize(len, 0);
            self.present.resize(len.div_ceil(64), 0);
        }
    }

    /// Appends every row of `other`.
    pub fn extend(&mut self, other: &Times) {
        if self.values.len().is_multiple_of(64) {
            self.values.extend_from_slice(&other.values);
            self.present.extend_from_slice(&other.present);
        } else {
            for r in 0..other.len() {
                self.push(other.get(r));
            }
        }
    }

    /// Whether no row has a value.
    pub fn all_absent(&self) -> bool {
        self.present.iter().all(|&w| w == 0)
    }

    /// The values, when every one of `n` rows is present.
    pub fn into_values(self, n: usize) -> Option<Vec<Millis>> {
        (self.values.len() == n && (0..n).all(|r| self.get(r).is_some())).then_some(self.values)
    }

    /// Approximate heap bytes held.
    fn heap_bytes(&self) -> usize {
        self.values.capacity() * 8 + self.present.capacity() * 8
    }

    /// Bytes of the rows held.
    fn used_bytes(&self) -> usize {
        self.values.len() * 8 + self.present.len() * 8
    }
}

impl FromIterator<Option<Millis>> for Times {
    fn from_iter<I: IntoIterator<Item = Option<Millis>>>(iter: I) -> Times {
        let mut t = Times::new();
        for v in iter {
            t.push(v);
        }
        t
    }
}

/// One column of a table.
#[derive(Clone, Debug)]
pub enum Column {
    /// Timestamps, absent where the bitmap says so.
    Time(Times),
    /// Interned strings.
    Sym(Vec<Option<Sym>>),
    /// Lists of interned strings, as offsets into one value vector.
    List {
        /// `offsets[i]..offsets[i + 1]` are row `i`'s values.
        offsets: Vec<u32>,
        /// All rows' values, concatenated.
        values: Vec<Sym>,
    },
    /// Numbers; NaN where absent.
    Num(Vec<f64>),
    /// Free text.
    Text(Vec<Option<Box<str>>>),
}

impl Column {
    fn new(kind: Kind) -> Column {
        match kind {
            Kind::Time => Column::Time(Times::new()),
            Kind::Sym => Column::Sym(Vec::new()),
            Kind::List => Column::List { offsets: Vec::new(), values: Vec::new() },
            Kind::Num => Column::Num(Vec::new()),
            Kind::Text => Column::Text(Vec::new()),
        }
    }

    /// An empty column of the same kind.
    pub fn empty_like(&self) -> Column {
        match self {
            Column::Time(_) => Column::Time(Times::new()),
            Column::Num(_) => Column::Num(Vec::new()),
            Column::Text(_) => Column::Text(Vec::new()),
            Column::List { .. } => Column::List { offsets: Vec::new(), values: Vec::new() },
            Column::Sym(_) => Column::Sym(Vec::new()),
        }
    }

    /// The timestamp at `row`, if this is a time column and it is set.
    #[inline]
    pub fn time(&self, row: usize) -> Option<Millis> {
        match self {
            Column::Time(v) => v.get(row),
            _ => None,
        }
    }

    /// The symbol at `row`, if this is a symbol column and it is set.
    #[inline]
    pub fn sym(&self, row: usize) -> Option<Sym> {
        match self {
            Column::Sym(v) => v.get(row).copied().flatten(),
            _ => None,
        }
    }

    /// The list at `row` (empty when absent or not a list column).
    #[inline]
    pub fn list(&self, row: usize) -> &[Sym] {
        match self {
            Column::List { offsets, values } if row + 1 < offsets.len() => {
                &values[offsets[row] as usize..offsets[row + 1] as usize]
            }
            _ => &[],
        }
    }

    /// The number at `row`, if this is a number column and it is set.
    #[inline]
    pub fn num(&self, row: usize) -> Option<f64> {
        match self {
            Column::Num(v) => v.get(row).copied().filter(|x| !x.is_nan()),
            _ => None,
        }
    }

    /// The text at `row`, if this is a text column and it is set.
    #[inline]
    pub fn text(&self, row: usize) -> Option<&str> {
        match self {
            Column::Text(v) => v.get(row).and_then(|t| t.as_deref()),
            _ => None,
        }
    }

    /// Sets `row` (which must be the next row or later) from a parsed value.
    fn push(&mut self, row: usize, value: Parsed) {
        match (self, value) {
            (Column::Time(v), Parsed::Time(t)) => {
                v.pad(row);
                v.push(Some(t));
            }
            (Column::Sym(v), Parsed::Sym(s)) => {
                v.resize(row, None);
                v.push(Some(s));
            }
            (Column::Num(v), Parsed::Num(x)) => {
                v.resize(row, f64::NAN);
                v.push(x);
            }
            (Column::Text(v), Parsed::Text(t)) => {
                v.resize(row, None);
                v.push(Some(t));
            }
            (Column::List { offsets, values }, Parsed::List(items)) => {
                let end = values.len() as u32;
                if offsets.is_empty() {
                    offsets.push(0);
                }
                offsets.resize(row + 1, end);
                values.extend(items);
                offsets.push(values.len() as u32);
            }
            _ => unreachable!("a value is always parsed to its column's kind"),
        }
    }

    /// Appends `other`'s first `rows` rows after this column's `base` rows,
    /// mapping symbols through `map`.
    fn append(&mut self, base: usize, other: Column, map: Option<&[Sym]>) {
        let remap = |s: Sym| map.map_or(s, |m| m[s.index()]);
        match (self, other) {
            (Column::Time(v), Column::Time(o)) => {
                if !o.is_empty() {
                    v.pad(base);
                    v.extend(&o);
                }
            }
            (Column::Sym(v), Column::Sym(o)) => {
                if !o.is_empty() {
                    v.resize(base, None);
                    v.extend(o.into_iter().map(|s| s.map(remap)));
                }
            }
            (Column::Num(v), Column::Num(o)) => {
                if !o.is_empty() {
                    v.resize(base, f64::NAN);
                    v.extend(o);
                }
            }
            (Column::Text(v), Column::Text(o)) => {
                if !o.is_empty() {
                    v.resize(base, None);
                    v.extend(o);
                }
            }
            (Column::List { offsets, values }, Column::List { offsets: oo, values: ov }) => {
                if oo.is_empty() {
                    return;
                }
                let end = values.len() as u32;
                if offsets.is_empty() {
                    offsets.push(0);
                }
                offsets.resize(base + 1, end);
                offsets.extend(oo[1..].iter().map(|&o| o + end));
                values.extend(ov.into_iter().map(remap));
            }
            _ => unreachable!("columns of one name have one kind"),
        }
    }

    /// Reorders the column to `order` (row `i` of the result is row
    /// `order[i]` of `self`), for `rows` rows in all.
    pub fn gather(&self, order: &[u32]) -> Column {
        fn g<T: Clone>(v: &[T], order: &[u32], absent: T) -> Vec<T> {
            if v.is_empty() {
                return Vec::new();
            }
            order.iter().map(|&i| v.get(i as usize).cloned().unwrap_or_else(|| absent.clone())).collect()
        }
        match self {
            Column::Time(v) if v.is_empty() => Column::Time(Times::new()),
            Column::Time(v) => Column::Time(order.iter().map(|&i| v.get(i as usize)).collect()),
            Column::Sym(v) => Column::Sym(g(v, order, None)),
            Column::Num(v) => Column::Num(g(v, order, f64::NAN)),
            Column::Text(v) => Column::Text(g(v, order, None)),
            Column::List { offsets, .. } if offsets.is_empty() => self.clone(),
            Column::List { .. } => {
                let mut offsets = Vec::with_capacity(order.len() + 1);
                let mut values = Vec::new();
                offsets.push(0);
                for &i in order {
                    values.extend_from_slice(self.list(i as usize));
                    offsets.push(values.len() as u32);
                }
                Column::List { offsets, values }
            }
        }
    }

    /// Whether two rows hold the same value in this column.
    #[inline]
    pub fn same(&self, a: usize, b: usize) -> bool {
        match self {
            Column::Time(_) => self.time(a) == self.time(b),
            Column::Sym(_) => self.sym(a) == self.sym(b),
            Column::Num(_) => self.num(a).map(f64::to_bits) == self.num(b).map(f64::to_bits),
            Column::Text(_) => self.text(a) == self.text(b),
            Column::List { .. } => self.list(a) == self.list(b),
        }
    }

    /// Orders two rows by this column's value as text (absent first), so
    /// that ties sort the same whatever the symbol numbering.
    pub fn cmp_rows(&self, a: usize, b: usize, strings: &Interner) -> std::cmp::Ordering {
        match self {
            Column::Time(_) => self.time(a).cmp(&self.time(b)),
            Column::Sym(_) => self.sym(a).map(|s| strings.resolve(s)).cmp(&self.sym(b).map(|s| strings.resolve(s))),
            Column::Num(_) => self.num(a).unwrap_or(f64::NAN).total_cmp(&self.num(b).unwrap_or(f64::NAN)),
            Column::Text(_) => self.text(a).cmp(&self.text(b)),
            Column::List { .. } => {
                let la = self.list(a).iter().map(|&s| strings.resolve(s));
                la.cmp(self.list(b).iter().map(|&s| strings.resolve(s)))
            }
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Column::Time(v) => v.heap_bytes(),
            Column::Sym(v) => v.capacity() * 4,
            Column::Num(v) => v.capacity() * 8,
            Column::Text(v) => v.iter().flatten().map(|t| t.len()).sum::<usize>() + v.capacity() * 16,
            Column::List { offsets, values } => offsets.capacity() * 4 + values.capacity() * 4,
        }
    }

    /// Bytes of the values held (not counting spare capacity).
    pub fn used_bytes(&self) -> usize {
        match self {
            Column::Time(v) => v.used_bytes(),
            Column::Sym(v) => v.len() * 4,
            Column::Num(v) => v.len() * 8,
            Column::Text(v) => v.iter().flatten().map(|t| t.len()).sum::<usize>() + v.len() * 16,
            Column::List { offsets, values } => offsets.len() * 4 + values.len() * 4,
        }
    }
}

/// A value as a reader found it, before it is typed by its column.
#[derive(Debug)]
pub enum RawField<'a> {
    /// A string (JSON string, or any CSV cell).
    Str(Cow<'a, str>),
    /// A JSON number, as its source text.
    Num(&'a str),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON array of scalars, as strings.
    List(Vec<Cow<'a, str>>),
    /// Any other JSON value (an object), as its source text.
    Json(&'a str),
    /// JSON `null`: the field is absent.
    Null,
}

/// A value typed for its column.
#[derive(Debug)]
enum Parsed {
    Time(Millis),
    Sym(Sym),
    List(Vec<Sym>),
    Num(f64),
    Text(Box<str>),
}

/// A table: a schema's columns plus extras, and its row count.
#[derive(Clone, Debug)]
pub struct Table {
    /// Which table this is.
    pub kind: TableKind,
    /// Columns: the schema's fields in order, then extras.
    pub columns: Vec<Column>,
    /// Column names, parallel to `columns`.
    pub names: Vec<String>,
    /// Number of rows.
    pub rows: usize,
}

impl Table {
    /// An empty table of `kind`.
    pub fn new(kind: TableKind) -> Table {
        let fields = kind.fields();
        Table {
            kind,
            columns: fields.iter().map(|f| Column::new(f.kind)).collect(),
            names: fields.iter().map(|f| f.name.to_string()).collect(),
            rows: 0,
        }
    }

    /// The column named `name`, if the table has one.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Row `row` as one JSON object of its present fields whose names
    /// `keep` accepts (times as RFC 3339 text, lists as arrays): a row a
    /// daily state keeps, read back as a JSON Lines record of the table.
    pub fn row_json(&self, row: usize, strings: &Interner, keep: impl Fn(&str) -> bool) -> String {
        let mut obj = serde_json::Map::new();
        for (name, column) in self.names.iter().zip(&self.columns) {
            if !keep(name) {
                continue;
            }
            let value = match column {
                Column::Time(_) => column.time(row).map(|t| crate::time::format_rfc3339(t).into()),
                Column::Sym(_) => column.sym(row).map(|s| strings.resolve(s).into()),
                Column::List { .. } => {
                    let values = column.list(row);
                    (!values.is_empty() || row < self.rows)
                        .then(|| values.iter().map(|&s| serde_json::Value::from(strings.resolve(s))).collect())
                }
                Column::Num(_) => column.num(row).and_then(serde_json::Number::from_f64).map(serde_json::Value::Number),
                Column::Text(_) => column.text(row).map(Into::into),
            };
            if let Some(v) = value {
                obj.insert(name.clone(), v);
            }
        }
        serde_json::Value::Object(obj).to_string()
    }

    /// Names of the extra (unknown) fields met, in first-seen order.
    pub fn extra_names(&self) -> &[String] {
        &self.names[self.kind.fields().len()..]
    }

    /// Appends a parsed block, interning its strings into `strings`.
    pub fn append(&mut self, block: TableBuilder, strings: &mut Interner) {
        let map = strings.absorb(&block.strings);
        self.append_columns(block.names, block.columns, block.rows, Some(&map));
    }

    /// Appends another table of the same kind whose symbols already belong
    /// to the same interner (a spilled partition chunk, say).
    pub fn append_table(&mut self, other: Table) {
        self.append_columns(other.names, other.columns, other.rows, None);
    }

    /// Appends `rows` rows given as named columns, matching columns by
    /// name and mapping symbols through `map` when given.
    fn append_columns(&mut self, names: Vec<String>, columns: Vec<Column>, rows: usize, map: Option<&[Sym]>) {
        use rayon::prelude::*;
        let base = self.rows;
        let mut incoming: Vec<Option<Column>> = vec![None; self.columns.len()];
        for (name, column) in names.into_iter().zip(columns) {
            let at = match self.column_index(&name) {
                Some(i) => i,
                None => {
                    self.names.push(name);
                    self.columns.push(column.empty_like());
                    incoming.push(None);
                    self.columns.len() - 1
                }
            };
            debug_assert!(incoming[at].is_none(), "a block names each column once");
            incoming[at] = Some(column);
        }
        // Columns are independent: each is appended (and its symbols
        // mapped) on its own worker.
        self.columns.par_iter_mut().zip(incoming).for_each(|(column, other)| {
            if let Some(other) = other {
                column.append(base, other, map);
            }
        });
        self.rows += rows;
    }

    /// Reorders every column to `order` and sets the row count to its length.
    pub fn gather(&mut self, order: &[u32]) {
        use rayon::prelude::*;
        self.columns = self.columns.par_iter().map(|c| c.gather(order)).collect();
        self.rows = order.len();
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.columns.iter().map(Column::heap_bytes).sum()
    }

    /// Bytes of the values held (not counting spare capacity).
    pub fn used_bytes(&self) -> usize {
        self.columns.iter().map(Column::used_bytes).sum()
    }
}

/// Fills one block's worth of a table from records, with a private interner.
pub struct TableBuilder {
    kind: TableKind,
    fields: &'static [FieldDef],
    strings: LocalStrings,
    columns: Vec<Column>,
    names: Vec<String>,
    rows: usize,
    /// The row being built: (column, value).
    pending: Vec<(usize, Parsed)>,
    /// First problem with the row being built.
    problem: Option<String>,
    /// Column index of the k-th key of the previous record: records of one
    /// file repeat their key order, so this usually avoids a lookup.
    /// Values from [`SKIPPED`] up name a skipped key.
    key_guess: Vec<usize>,
    key_at: usize,
    /// Columns to keep (the plan's projection); `None` keeps all.
    keep: Option<Arc<BTreeSet<String>>>,
    /// Names of keys met and skipped, with their kind when they are
    /// fields of the schema (checked though not stored).
    skipped: Vec<(String, Option<Kind>)>,
    /// Fingerprint of the skipped fields of the row being built.
    unread: u64,
    hasher: foldhash::fast::FixedState,
    /// The unit of numeric times.
    time_unit: TimeUnit,
}

/// Offset of skipped keys in `key_guess`.
const SKIPPED: usize = 1 << 31;

/// The column that holds, per row, a fingerprint of the fields not read
/// (outside the projection), so that "exact duplicate" still means
/// identical in every field. Its name cannot come from ordinary data.
pub const UNREAD: &str = "\u{1}unread";

impl TableBuilder {
    /// An empty builder for `kind`.
    pub fn new(kind: TableKind) -> TableBuilder {
        let fields = kind.fields();
        TableBuilder {
            kind,
            fields,
            strings: LocalStrings::new(),
            columns: fields.iter().map(|f| Column::new(f.kind)).collect(),
            names: fields.iter().map(|f| f.name.to_string()).collect(),
            rows: 0,
            pending: Vec::with_capacity(16),
            problem: None,
            key_guess: Vec::new(),
            key_at: 0,
            keep: None,
            skipped: Vec::new(),
            unread: 0,
            hasher: foldhash::fast::FixedState::default(),
            time_unit: TimeUnit::Ms,
        }
    }

    /// The builder, reading numeric times in `unit`.
    pub fn with_time_unit(self, unit: TimeUnit) -> TableBuilder {
        TableBuilder { time_unit: unit, ..self }
    }

    /// The earliest and latest value of the block's time fields, if any.
    pub fn time_span(&self) -> Option<(Millis, Millis)> {
        let mut span: Option<(Millis, Millis)> = None;
        // The schema's fields only: the fingerprint of unread fields
        // ([`UNREAD`]) is kept in a time column too.
        for c in &self.columns[..self.fields.len()] {
            if let Column::Time(t) = c {
                for t in (0..self.rows).filter_map(|r| t.get(r)) {
                    span = Some(span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
                }
            }
        }
        span
    }

    /// A builder that keeps only the fields in `keep` (and the required
    /// ones); the others are not parsed, only fingerprinted.
    pub fn with_projection(kind: TableKind, keep: Option<Arc<BTreeSet<String>>>) -> TableBuilder {
        TableBuilder { keep, ..TableBuilder::new(kind) }
    }

    /// A block built column by column by a columnar reader (Parquet), for
    /// [`Table::append`]. `columns` pairs a name with its values over
    /// `rows` rows (shorter when the last rows are absent): a known field
    /// must have its schema's kind, any other name is an extra and must be
    /// [`Column::Sym`]. Symbols are of `strings`. Every row is taken as good:
    /// the reader has already dropped bad ones.
    pub(crate) fn from_columns(
        kind: TableKind,
        strings: LocalStrings,
        columns: Vec<(String, Column)>,
        rows: usize,
    ) -> TableBuilder {
        let mut b = TableBuilder::new(kind);
        b.strings = strings;
        b.rows = rows;
        for (name, column) in columns {
            match b.names.iter().position(|n| *n == name) {
                Some(i) => {
                    debug_assert_eq!(
                        std::mem::discriminant(&b.columns[i]),
                        std::mem::discriminant(&column),
                        "column `{name}` has its schema's kind"
                    );
                    b.columns[i] = column;
                }
                None => {
                    debug_assert!(matches!(column, Column::Sym(_)), "extras are symbols");
                    b.names.push(name);
                    b.columns.push(column);
                }
            }
        }
        b
    }

    /// Rows built so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Starts a new record, forgetting any unfinished one.
    pub fn begin(&mut self) {
        self.pending.clear();
        self.problem = None;
        self.key_at = 0;
        self.unread = 0;
    }

    /// The column of `key`, or `SKIPPED + k` when the projection skips it.
    fn column_of(&mut self, key: &str) -> usize {
        if let Some(&g) = self.key_guess.get(self.key_at) {
            let name = if g >= SKIPPED { &self.skipped[g - SKIPPED].0 } else { &self.names[g] };
            if name == key {
                self.key_at += 1;
                return g;
            }
        }
        let col = match self.skipped.iter().position(|(n, _)| n == key) {
            Some(k) => SKIPPED + k,
            None => {
                let wanted = self.keep.as_ref().is_none_or(|k| k.contains(key))
                    || self.fields.iter().any(|f| f.required && f.name == key);
                match self.names.iter().position(|n| n == key) {
                    // A schema field (or an extra met before) the plan reads.
                    Some(i) if wanted => i,
                    None if wanted && key != UNREAD => {
                        self.names.push(key.to_string());
                        self.columns.push(Column::Sym(Vec::new()));
                        self.names.len() - 1
                    }
                    // Outside the projection, schema field or not: only
                    // fingerprinted.
                    _ => {
                        let kind = self.fields.iter().find(|f| f.name == key).map(|f| f.kind);
                        self.skipped.push((key.to_string(), kind));
                        SKIPPED + self.skipped.len() - 1
                    }
                }
            }
        };
        if self.key_at < self.key_guess.len() {
            self.key_guess[self.key_at] = col;
        } else {
            self.key_guess.push(col);
        }
        self.key_at += 1;
        col
    }

    fn kind_of(&self, col: usize) -> Kind {
        self.fields.get(col).map_or(Kind::Sym, |f| f.kind)
    }

    /// Adds one field of the current record.
    ///
    /// A field of the table's schema is checked against its kind whether
    /// or not the projection keeps it, so which records are bad never
    /// depends on which rules are loaded; a field outside the projection is
    /// checked without being stored or interned.
    pub fn field(&mut self, key: &str, value: RawField<'_>) {
        if matches!(value, RawField::Null) {
            return;
        }
        if let RawField::Str(s) = &value
            && s.is_empty()
        {
            return;
        }
        let col = self.column_of(key);
        let result = if col >= SKIPPED {
            self.fingerprint(key, &value);
            match self.skipped[col - SKIPPED].1 {
                Some(kind) => typed(kind, false, value, self.time_unit).map(|_| None),
                None => Ok(None),
            }
        } else {
            self.parse(col, value)
        };
        match result {
            Ok(Some(v)) => self.pending.push((col, v)),
            Ok(None) => {}
            Err(why) => {
                if self.problem.is_none() {
                    self.problem = Some(format!("field `{key}`: {why}"));
                }
            }
        }
    }

    /// Folds a skipped field into the row's fingerprint (order-independent).
    fn fingerprint(&mut self, key: &str, value: &RawField<'_>) {
        use std::hash::BuildHasher;
        let h = match value {
            RawField::Str(s) => self.hasher.hash_one((key, &**s)),
            RawField::Num(n) | RawField::Json(n) => self.hasher.hash_one((key, *n)),
            RawField::Bool(b) => self.hasher.hash_one((key, if *b { "true" } else { "false" })),
            RawField::List(items) => self.hasher.hash_one((key, items.join("|"))),
            RawField::Null => return,
        };
        self.unread = self.unread.wrapping_add(h);
    }

    /// Types `value` for column `col` and interns its strings.
    fn parse(&mut self, col: usize, value: RawField<'_>) -> Result<Option<Parsed>, String> {
        let extra = col >= self.fields.len();
        Ok(Some(match typed(self.kind_of(col), extra, value, self.time_unit)? {
            Typed::Absent => return Ok(None),
            Typed::Time(t) => Parsed::Time(t),
            Typed::Num(x) => Parsed::Num(x),
            Typed::Text(t) => Parsed::Text(t.into()),
            Typed::Sym(s) => Parsed::Sym(self.strings.intern(&s)),
            Typed::Items(items) => {
                Parsed::List(items.iter().filter(|s| !s.is_empty()).map(|s| self.strings.intern(s)).collect())
            }
            Typed::Joined(s) => {
                Parsed::List(s.split('|').filter(|p| !p.is_empty()).map(|p| self.strings.intern(p)).collect())
            }
        }))
    }

    /// Records that the current record is bad for a reason found outside the
    /// builder (broken syntax); `end` will then drop it.
    pub fn reject(&mut self, why: String) {
        if self.problem.is_none() {
            self.problem = Some(why);
        }
    }

    /// Finishes the current record: adds it as a row, or drops it and says why.
    pub fn end(&mut self) -> Result<(), String> {
        if let Some(why) = self.problem.take() {
            self.pending.clear();
            return Err(why);
        }
        for f in self.fields.iter().enumerate().filter(|(_, f)| f.required) {
            if !self.pending.iter().any(|(c, _)| *c == f.0) {
                self.pending.clear();
                return Err(format!("missing required field `{}`", f.1.name));
            }
        }
        if let Err(why) = self.check_values() {
            self.pending.clear();
            return Err(why);
        }
        // A key repeated within a record: the last value wins.
        let row = self.rows;
        let mut pending = std::mem::take(&mut self.pending);
        if pending.len() > 1 {
            // Stable sort, then reverse: within a column the last value given
            // comes first, and dedup keeps it.
            pending.sort_by_key(|(c, _)| *c);
            pending.reverse();
            pending.dedup_by_key(|(c, _)| *c);
        }
        for (col, v) in pending.drain(..) {
            self.columns[col].push(row, v);
        }
        self.pending = pending;
        if self.unread != 0 {
            let col = match self.names.iter().position(|n| n == UNREAD) {
                Some(c) => c,
                None => {
                    self.names.push(UNREAD.to_string());
                    self.columns.push(Column::Time(Times::new()));
                    self.names.len() - 1
                }
            };
            // A fingerprint, not a time: only compared for equality and
            // order, never read as a time.
            self.columns[col].push(row, Parsed::Time(self.unread as i64));
        }
        self.rows += 1;
        Ok(())
    }
}

impl TableBuilder {
    /// Checks of values beyond their type that the contract states.
    fn check_values(&self) -> Result<(), String> {
        if self.kind == TableKind::Labels {
            let label = super::schema::LABELS.iter().position(|f| f.name == "label").expect("labels has `label`");
            for (col, value) in self.pending.iter().rev() {
                if *col == label
                    && let Parsed::Sym(s) = value
                {
                    return check_label(self.strings.resolve(*s));
                }
            }
        }
        Ok(())
    }
}

/// A value checked against its column's kind, not yet interned.
enum Typed<'a> {
    Absent,
    Time(Millis),
    Num(f64),
    Text(Cow<'a, str>),
    Sym(Cow<'a, str>),
    /// List items, each one value.
    Items(Vec<Cow<'a, str>>),
    /// A list given as one `|`-separated text (CSV).
    Joined(Cow<'a, str>),
}

/// Checks `value` against `kind`: the one place that says which values a
/// field of each kind accepts. An identifier or string field of the schema
/// takes a string or a number (its decimal text); an extra field (`extra`,
/// not in the schema) takes any value, as its text.
fn typed(kind: Kind, extra: bool, value: RawField<'_>, unit: TimeUnit) -> Result<Typed<'_>, String> {
    Ok(match kind {
        Kind::Time => match value {
            RawField::Str(s) => Typed::Time(parse_time_text(&s, unit)?),
            RawField::Num(n) => Typed::Time(parse_time_number(n, unit)?),
            other => return Err(format!("expected a timestamp, found {}", describe(&other))),
        },
        Kind::Sym => match value {
            RawField::Str(s) => Typed::Sym(s),
            RawField::Num(n) => Typed::Sym(Cow::Borrowed(n)),
            RawField::Json(n) if extra => Typed::Sym(Cow::Borrowed(n)),
            RawField::Bool(b) if extra => Typed::Sym(Cow::Borrowed(if b { "true" } else { "false" })),
            RawField::List(items) if extra => Typed::Sym(Cow::Owned(items.join("|"))),
            RawField::Null => Typed::Absent,
            other => return Err(format!("expected a string, found {}", describe(&other))),
        },
        Kind::List => match value {
            RawField::List(items) => Typed::Items(items),
            RawField::Str(s) => Typed::Joined(s),
            RawField::Num(n) => Typed::Items(vec![Cow::Borrowed(n)]),
            other => return Err(format!("expected a list of strings, found {}", describe(&other))),
        },
        Kind::Num => match value {
            RawField::Num(n) => Typed::Num(n.parse().map_err(|_| format!("`{n}` is not a number"))?),
            RawField::Str(s) => match parse_num_text(&s)? {
                Some(x) => Typed::Num(x),
                None => Typed::Absent,
            },
            other => return Err(format!("expected a number, found {}", describe(&other))),
        },
        Kind::Text => match value {
            RawField::Str(s) => Typed::Text(s),
            RawField::Num(n) | RawField::Json(n) => Typed::Text(Cow::Borrowed(n)),
            other => return Err(format!("expected text, found {}", describe(&other))),
        },
    })
}

/// Parses a timestamp given as text (RFC 3339 or an epoch number in
/// `unit`), with the reason it is bad if it is.
pub(crate) fn parse_time_text(s: &str, unit: TimeUnit) -> Result<Millis, String> {
    parse_timestamp_in(s, unit)
}

/// Parses a timestamp given as a JSON number (epoch time in `unit`),
/// checked to lie in the accepted range (see [`crate::time::MIN_TIME`]).
pub(crate) fn parse_time_number(n: &str, unit: TimeUnit) -> Result<Millis, String> {
    let digits = n.strip_prefix('-').unwrap_or(n);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{n}` is not an integer of epoch {}", unit.plural()));
    }
    let v = n.parse::<i128>().unwrap_or(if n.starts_with('-') { i128::MIN } else { i128::MAX });
    check_time(unit.to_millis(v)).map_err(|why| format!("`{n}` is {why}"))
}

/// Parses a number given as text; NaN means absent (`None`).
pub(crate) fn parse_num_text(s: &str) -> Result<Option<f64>, String> {
    let x: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    Ok((!x.is_nan()).then_some(x))
}

/// The contract's check of a `labels` record's `label` value.
pub(crate) fn check_label(text: &str) -> Result<(), String> {
    match text {
        "compromised" | "benign" => Ok(()),
        other => Err(format!("`label` is `{other}`; it must be `compromised` or `benign`")),
    }
}

fn describe(v: &RawField<'_>) -> &'static str {
    match v {
        RawField::Str(_) => "a string",
        RawField::Num(_) => "a number",
        RawField::Bool(_) => "a boolean",
        RawField::List(_) => "a list",
        RawField::Json(_) => "an object",
        RawField::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> RawField<'_> {
        RawField::Str(Cow::Borrowed(v))
    }

    #[test]
    fn builds_rows_and_rejects_bad_ones() {
        let mut b = TableBuilder::new(TableKind::Events);
        b.begin();
        b.field("ts", RawField::Num("1000"));
        b.field("actor", s("a"));
        b.field("action", s("like"));
        b.field("mood", s("happy"));
        assert_eq!(b.end(), Ok(()));
        b.begin();
        b.field("actor", s("a"));
        b.field("action", s("like"));
        assert_eq!(b.end().unwrap_err(), "missing required field `ts`");
        b.begin();
        b.field("ts", s("yesterday"));
        b.field("actor", s("a"));
        b.field("action", s("like"));
        assert!(b.end().unwrap_err().contains("field `ts`"));
        b.begin();
        b.field("ts", s("1970-01-01T00:00:02Z"));
        b.field("actor", RawField::Num("42"));
        b.field("action", s("like"));
        b.field("action", s("unlike"));
        assert_eq!(b.end(), Ok(()));

        let mut strings = Interner::new();
        let mut t = Table::new(TableKind::Events);
        t.append(b, &mut strings);
        assert_eq!(t.rows, 2);
        assert_eq!(t.columns[0].time(1), Some(2000));
        assert_eq!(strings.resolve(t.columns[1].sym(1).unwrap()), "42");
        assert_eq!(strings.resolve(t.columns[2].sym(1).unwrap()), "unlike");
        let mood = t.column_index("mood").unwrap();
        assert_eq!(strings.resolve(t.columns[mood].sym(0).unwrap()), "happy");
        assert_eq!(t.columns[mood].sym(1), None);
        assert_eq!(t.extra_names(), ["mood"]);
    }

    #[test]
    fn projection_skips_schema_fields_but_fingerprints_them() {
        let keep: BTreeSet<String> = ["ts", "actor", "action", "device"].iter().map(|s| s.to_string()).collect();
        let mut b = TableBuilder::with_projection(TableKind::Events, Some(Arc::new(keep)));
        for ip in ["10.0.0.1", "10.0.0.2"] {
            b.begin();
            b.field("ts", RawField::Num("1000"));
            b.field("actor", s("a"));
            b.field("action", s("login"));
            b.field("device", s("d1"));
            b.field("ip", s(ip));
            b.field("mood", s("happy"));
            b.end().unwrap();
        }
        let mut strings = Interner::new();
        let mut t = Table::new(TableKind::Events);
        t.append(b, &mut strings);
        // `ip` is a schema field outside the projection: not interned, not
        // stored; the rows still differ by their fingerprint.
        assert_eq!(strings.get("10.0.0.1"), None);
        assert_eq!(strings.get("happy"), None);
        assert_eq!(t.columns[super::super::schema::ev::IP].sym(0), None);
        assert_eq!(strings.resolve(t.columns[super::super::schema::ev::DEVICE].sym(1).unwrap()), "d1");
        let unread = t.column_index(UNREAD).unwrap();
        assert_ne!(t.columns[unread].time(0), t.columns[unread].time(1));
    }

    #[test]
    fn lists_fill_lazily_and_merge() {
        let mut strings = Interner::new();
        let mut t = Table::new(TableKind::Items);
        for block in 0..2 {
            let mut b = TableBuilder::new(TableKind::Items);
            for row in 0..3 {
                b.begin();
                b.field("id", s(&format!("i{block}{row}")));
                b.field("author", s("x"));
                if row == 1 {
                    b.field("labels", s("adult|politics"));
                }
                b.end().unwrap();
            }
            t.append(b, &mut strings);
        }
        let labels = &t.columns[super::super::schema::it::LABELS];
        let names = |r| labels.list(r).iter().map(|&s| strings.resolve(s)).collect::<Vec<_>>();
        assert_eq!(names(0), Vec::<&str>::new());
        assert_eq!(names(1), ["adult", "politics"]);
        assert_eq!(names(3), Vec::<&str>::new());
        assert_eq!(names(4), ["adult", "politics"]);
        assert_eq!(names(5), Vec::<&str>::new());
        let g = labels.gather(&[4, 0]);
        assert_eq!(g.list(0).len(), 2);
        assert_eq!(g.list(1).len(), 0);
    }
}
