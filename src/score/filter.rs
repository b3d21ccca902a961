//! Filters bound to a dataset: field names resolved to columns, values to
//! symbols, so that testing an event compares integers.
//!
//! Binding cannot fail: a field the dataset does not have is simply absent
//! on every event, and a value the data never contains can never be equal.

use regex::Regex;

use crate::data::Dataset;
use crate::data::schema::ev;
use crate::data::table::Column;
use crate::intern::Sym;
use crate::rules::filter::{Filter, Op, Scope};

/// Where a field's value comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Event(usize),
    Item(usize),
    Account(usize),
    Author(usize),
    Missing,
}

#[derive(Clone, Debug)]
enum Test {
    Eq(Option<Sym>, String),
    Ne(Option<Sym>, String),
    In(Vec<Sym>, Vec<String>),
    NotIn(Vec<Sym>, Vec<String>),
    Matches(Regex),
    Cmp(std::cmp::Ordering, bool, f64),
    Exists(bool),
}

/// A filter ready to test events.
#[derive(Clone, Debug)]
pub struct BoundFilter(Node);

#[derive(Clone, Debug)]
enum Node {
    Test(Source, Test),
    Any(Vec<Node>),
    All(Vec<Node>),
}

/// A field's value at one event.
enum Value<'a> {
    None,
    Sym(Sym),
    List(&'a [Sym]),
    Num(f64),
    Text(&'a str),
}

impl BoundFilter {
    /// Binds a validated filter (macros already expanded) to `data`.
    pub fn bind(f: &Filter, data: &Dataset) -> BoundFilter {
        BoundFilter(bind(f, data))
    }

    /// Whether event `i` passes.
    #[inline]
    pub fn test(&self, data: &Dataset, i: usize) -> bool {
        self.0.test(data, i)
    }
}

fn bind(f: &Filter, data: &Dataset) -> Node {
    match f {
        Filter::Any(fs) => Node::Any(fs.iter().map(|f| bind(f, data)).collect()),
        Filter::All(fs) => Node::All(fs.iter().map(|f| bind(f, data)).collect()),
        // Expansion replaced every macro use; an empty group always passes.
        Filter::Use(_) => Node::All(Vec::new()),
        Filter::Test { field, op, .. } => {
            let table = match field.scope {
                Scope::Event => &data.events.table,
                Scope::Item => &data.items.table,
                Scope::Account | Scope::Author => &data.accounts.table,
            };
            let source = match (field.scope, table.column_index(&field.name)) {
                (_, None) => Source::Missing,
                (Scope::Event, Some(c)) => Source::Event(c),
                (Scope::Item, Some(c)) => Source::Item(c),
                (Scope::Account, Some(c)) => Source::Account(c),
                (Scope::Author, Some(c)) => Source::Author(c),
            };
            let sym = |s: &String| data.strings.get(s);
            let syms = |v: &[String]| {
                v.iter()
                    .filter_map(|s| data.strings.get(s))
                    .collect::<Vec<Sym>>()
            };
            use std::cmp::Ordering::*;
            let test = match op {
                Op::Eq(v) => Test::Eq(sym(v), v.clone()),
                Op::Ne(v) => Test::Ne(sym(v), v.clone()),
                Op::In(v) => Test::In(syms(v), v.clone()),
                Op::NotIn(v) => Test::NotIn(syms(v), v.clone()),
                Op::Matches(r) => Test::Matches(r.clone()),
                Op::Gt(x) => Test::Cmp(Greater, false, *x),
                Op::Ge(x) => Test::Cmp(Greater, true, *x),
                Op::Lt(x) => Test::Cmp(Less, false, *x),
                Op::Le(x) => Test::Cmp(Less, true, *x),
                Op::Exists(b) => Test::Exists(*b),
            };
            Node::Test(source, test)
        }
    }
}

impl Node {
    fn test(&self, data: &Dataset, i: usize) -> bool {
        match self {
            Node::Any(fs) => fs.iter().any(|f| f.test(data, i)),
            Node::All(fs) => fs.iter().all(|f| f.test(data, i)),
            Node::Test(source, test) => run(test, value(*source, data, i), data),
        }
    }
}

fn column_value(c: &Column, row: usize) -> Value<'_> {
    match c {
        Column::Sym(_) => c.sym(row).map_or(Value::None, Value::Sym),
        Column::List { .. } => match c.list(row) {
            [] => Value::None,
            l => Value::List(l),
        },
        Column::Num(_) => c.num(row).map_or(Value::None, Value::Num),
        Column::Time(_) => c.time(row).map_or(Value::None, |t| Value::Num(t as f64)),
        Column::Text(_) => c.text(row).map_or(Value::None, Value::Text),
    }
}

fn value(source: Source, data: &Dataset, i: usize) -> Value<'_> {
    let e = &data.events;
    match source {
        Source::Missing => Value::None,
        Source::Event(ev::ACTOR) => Value::Sym(e.actor(i)),
        Source::Event(ev::ACTION) => Value::Sym(e.action(i)),
        Source::Event(ev::TS) => Value::Num(e.ts(i) as f64),
        Source::Event(c) => column_value(&e.table.columns[c], i),
        Source::Item(c) => match e.target(i).and_then(|t| data.items.row(t)) {
            Some(r) => column_value(&data.items.table.columns[c], r),
            None => Value::None,
        },
        Source::Account(c) => match data.accounts.row(e.actor(i)) {
            Some(r) => column_value(&data.accounts.table.columns[c], r),
            None => Value::None,
        },
        Source::Author(c) => {
            let author = e.sym(ev::TARGET_AUTHOR, i).or_else(|| {
                e.target(i)
                    .and_then(|t| data.items.row(t))
                    .and_then(|r| data.items.author(r))
            });
            match author.and_then(|a| data.accounts.row(a)) {
                Some(r) => column_value(&data.accounts.table.columns[c], r),
                None => Value::None,
            }
        }
    }
}

fn run(test: &Test, v: Value<'_>, data: &Dataset) -> bool {
    let text = |s: Sym| data.strings.resolve(s);
    let any = |v: &Value<'_>, f: &dyn Fn(Sym) -> bool| -> bool {
        match v {
            Value::Sym(s) => f(*s),
            Value::List(l) => l.iter().any(|&s| f(s)),
            _ => false,
        }
    };
    match test {
        Test::Exists(want) => !matches!(v, Value::None) == *want,
        Test::Eq(sym, raw) => match &v {
            Value::Num(x) => raw.parse::<f64>().is_ok_and(|y| *x == y),
            Value::Text(t) => t == raw,
            _ => sym.is_some_and(|s| any(&v, &|x| x == s)),
        },
        Test::Ne(sym, raw) => match &v {
            Value::None => true,
            Value::Num(x) => raw.parse::<f64>() != Ok(*x),
            Value::Text(t) => t != raw,
            _ => !sym.is_some_and(|s| any(&v, &|x| x == s)),
        },
        Test::In(syms, raw) => match &v {
            Value::Num(x) => raw.iter().any(|r| r.parse::<f64>().is_ok_and(|y| *x == y)),
            Value::Text(t) => raw.iter().any(|r| r == t),
            _ => any(&v, &|x| syms.contains(&x)),
        },
        Test::NotIn(syms, raw) => match &v {
            Value::None => true,
            Value::Num(x) => !raw.iter().any(|r| r.parse::<f64>().is_ok_and(|y| *x == y)),
            Value::Text(t) => !raw.iter().any(|r| r == t),
            _ => !any(&v, &|x| syms.contains(&x)),
        },
        Test::Matches(re) => match &v {
            Value::Text(t) => re.is_match(t),
            Value::Num(x) => re.is_match(&x.to_string()),
            _ => any(&v, &|s| re.is_match(text(s))),
        },
        Test::Cmp(ord, or_equal, y) => {
            let x = match &v {
                Value::Num(x) => Some(*x),
                Value::Sym(s) => text(*s).trim().parse::<f64>().ok(),
                Value::Text(t) => t.trim().parse::<f64>().ok(),
                _ => None,
            };
            x.is_some_and(|x| match x.partial_cmp(y) {
                Some(o) => o == *ord || (*or_equal && o == std::cmp::Ordering::Equal),
                None => false,
            })
        }
    }
}
