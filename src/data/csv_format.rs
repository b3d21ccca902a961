//! CSV records: a header row, then one record per row.
//!
//! Column names are the contract's field names; an empty cell means the
//! field is absent; list fields are `|`-separated. Quoted cells may span
//! lines.
//!
//! One state machine, [`scan_record`], decides where a record ends and
//! what its cells are; the block reader cuts the stream with it and the
//! parser splits the blocks with it, so the two agree by construction: no
//! record is split or made up by a cut. Its rules are RFC 4180's as the
//! `csv` crate reads them: a `"` opens a quoted cell only at the start of a
//! cell (elsewhere it is an ordinary character); in a quoted cell `""` is a
//! quote and a line break is part of the cell; after the closing quote the
//! cell goes on unquoted up to the next `,` or line break. A record ends at
//! a line break outside quotes; a `\r` before it is dropped. Blank lines
//! are skipped.
//!
//! A quoted cell that is never closed would swallow the rest of the file:
//! the block reader bounds every record by a maximum length
//! ([`super::ReadOptions::max_record_bytes`]) and skips one left open at the
//! end of the file or past that length as a bad record, resuming at the
//! line after the one where the quote opened.

use super::table::{RawField, TableBuilder};

/// Where [`scan_record`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// A whole record ends just before this index (past its line break,
    /// or at the end of the buffer at the end of the input).
    Record(usize),
    /// The buffer ends inside the record: more input is needed, or, at the
    /// end of the input, a quoted cell opened at `quote` was never closed.
    Open {
        /// Where the quoted cell that is still open begins, if one is.
        quote: Option<usize>,
    },
}

/// The cells of one record: their bytes, unquoted, end to end.
#[derive(Debug, Default)]
pub struct Cells {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Cells {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn end_cell(&mut self) {
        self.ends.push(self.bytes.len());
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The cells, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(s, e)| &self.bytes[s..e])
    }
}

/// Scans the CSV record that starts at `start` in `buf`; `eof` says that
/// nothing follows `buf`. With `cells`, also collects the record's cells.
/// See the module documentation for the rules.
pub fn scan_record(buf: &[u8], start: usize, eof: bool, mut cells: Option<&mut Cells>) -> Scan {
    if let Some(c) = cells.as_deref_mut() {
        c.clear();
    }
    let len = buf.len();
    let mut i = start;
    loop {
        // At the start of a cell.
        if i < len && buf[i] == b'"' {
            let open = i;
            i += 1;
            loop {
                let Some(k) = memchr::memchr(b'"', &buf[i..]) else {
                    return Scan::Open { quote: Some(open) };
                };
                if let Some(c) = cells.as_deref_mut() {
                    c.bytes.extend_from_slice(&buf[i..i + k]);
                }
                i += k + 1;
                if i == len && !eof {
                    // `""` or the closing quote: the next byte tells.
                    return Scan::Open { quote: Some(open) };
                }
                if i < len && buf[i] == b'"' {
                    if let Some(c) = cells.as_deref_mut() {
                        c.bytes.push(b'"');
                    }
                    i += 1;
                    continue;
                }
                break;
            }
        }
        // Unquoted, or the rest of a cell after its closing quote.
        match memchr::memchr2(b',', b'\n', &buf[i..]) {
            None => {
                if !eof {
                    return Scan::Open { quote: None };
                }
                if let Some(c) = cells.as_deref_mut() {
                    c.bytes.extend_from_slice(&buf[i..]);
                    if c.bytes.last() == Some(&b'\r') && buf.last() == Some(&b'\r') {
                        c.bytes.pop();
                    }
                    c.end_cell();
                }
                return Scan::Record(len);
            }
            Some(k) => {
                let at = i + k;
                if let Some(c) = cells.as_deref_mut() {
                    c.bytes.extend_from_slice(&buf[i..at]);
                    if buf[at] == b'\n' && at > 0 && buf[at - 1] == b'\r' && c.bytes.last() == Some(&b'\r') {
                        c.bytes.pop();
                    }
                    c.end_cell();
                }
                if buf[at] == b'\n' {
                    return Scan::Record(at + 1);
                }
                i = at + 1;
            }
        }
    }
}

/// Reads the header of a CSV file from its first block. Returns the column
/// names and the byte length and line count of the header.
pub fn parse_header(block: &[u8]) -> Result<(Vec<String>, usize, u64), String> {
    let mut cells = Cells::default();
    let mut pos = 0;
    loop {
        if pos >= block.len() {
            return Err("empty file: no header row".into());
        }
        match scan_record(block, pos, true, Some(&mut cells)) {
            Scan::Record(end) => {
                let blank = cells.len() == 1 && cells.iter().all(<[u8]>::is_empty);
                if blank {
                    pos = end;
                    continue;
                }
                let mut names = Vec::with_capacity(cells.len());
                for cell in cells.iter() {
                    let Ok(text) = std::str::from_utf8(cell) else {
                        return Err("unreadable header row: not valid UTF-8".into());
                    };
                    names.push(text.trim_start_matches('\u{feff}').trim().to_string());
                }
                if names.iter().all(String::is_empty) {
                    return Err("empty header row".into());
                }
                let lines = memchr::memchr_iter(b'\n', &block[..end]).count() as u64;
                return Ok((names, end, lines));
            }
            Scan::Open { .. } => return Err("unreadable header row: a quoted name is never closed".into()),
        }
    }
}

/// Parses every record of `block` (which holds no header) into `builder`,
/// reporting bad records through `bad` as (line number, reason).
pub fn parse_block(
    block: &[u8],
    first_line: u64,
    header: &[String],
    builder: &mut TableBuilder,
    bad: &mut Vec<(u64, String)>,
) {
    let mut cells = Cells::default();
    let mut pos = 0;
    let mut line = first_line;
    while pos < block.len() {
        let end = match scan_record(block, pos, true, Some(&mut cells)) {
            Scan::Record(end) => end,
            Scan::Open { quote } => {
                // Never from the block reader, which cuts whole records.
                let at = quote.unwrap_or(pos);
                let opened = line + memchr::memchr_iter(b'\n', &block[pos..at]).count() as u64;
                bad.push((line, format!("a quoted cell opened on line {opened} is never closed")));
                return;
            }
        };
        let record_line = line;
        let breaks = memchr::memchr_iter(b'\n', &block[pos..end]).count() as u64;
        line += breaks;
        pos = end;
        if cells.len() == 1 && cells.iter().all(<[u8]>::is_empty) {
            continue;
        }
        // A record over several lines says which (a stray quote shows).
        let spans =
            if breaks > 1 { format!(" (the record spans lines {record_line}-{})", line - 1) } else { String::new() };
        builder.begin();
        if cells.len() != header.len() {
            builder.reject(format!("{} cells, but the header has {} columns{spans}", cells.len(), header.len()));
        } else {
            for (name, cell) in header.iter().zip(cells.iter()) {
                match std::str::from_utf8(cell) {
                    Ok(text) => builder.field(name, RawField::Str(text.into())),
                    Err(_) => builder.reject(format!("column `{name}` is not valid UTF-8")),
                }
            }
        }
        if let Err(why) = builder.end() {
            bad.push((record_line, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::schema::TableKind;
    use crate::data::table::Table;
    use crate::intern::Interner;

    #[test]
    fn header_then_records() {
        let text = b"ts,actor,action,target,note\n1000,liu,like,905,\"two\nlines\"\n2000,,like,1,\nbad,liu,like,1,\n3000,liu,like\n4000,liu,unlike,905,\n";
        let (header, len, lines) = parse_header(text).unwrap();
        assert_eq!(header, ["ts", "actor", "action", "target", "note"]);
        assert_eq!(lines, 1);
        let mut b = TableBuilder::new(TableKind::Events);
        let mut bad = Vec::new();
        parse_block(&text[len..], 1 + lines, &header, &mut b, &mut bad);
        let at: Vec<u64> = bad.iter().map(|(l, _)| *l).collect();
        assert_eq!(at, [4, 5, 6], "{bad:?}");
        let mut strings = Interner::new();
        let mut t = Table::new(TableKind::Events);
        t.append(b, &mut strings);
        assert_eq!(t.rows, 2);
        let note = t.column_index("note").unwrap();
        assert_eq!(strings.resolve(t.columns[note].sym(0).unwrap()), "two\nlines");
        assert_eq!(t.columns[note].sym(1), None);
    }

    /// Every record as the parser sees it, and the cut points the block
    /// reader would choose: the same records.
    fn records(text: &[u8]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut cells = Cells::default();
        let mut pos = 0;
        while pos < text.len() {
            match scan_record(text, pos, true, Some(&mut cells)) {
                Scan::Record(end) => {
                    out.push(cells.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect());
                    pos = end;
                }
                Scan::Open { quote } => panic!("open at {quote:?}"),
            }
        }
        out
    }

    #[test]
    fn quotes_open_cells_only_at_their_start() {
        // A stray quote inside an unquoted cell is a character; the quoted
        // cell after it keeps its line break.
        let text = b"1,li\"u,like\n2,liu,\"two\nlines\"\n3,\"a\"\"b\"c,x\r\n\n4,,\n";
        assert_eq!(
            records(text),
            [
                vec!["1", "li\"u", "like"],
                vec!["2", "liu", "two\nlines"],
                vec!["3", "a\"bc", "x"],
                vec![""],
                vec!["4", "", ""],
            ]
        );
        // What the csv crate reads, record for record.
        let mut reader = ::csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&text[..]);
        let theirs: Vec<Vec<String>> =
            reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
        let ours: Vec<Vec<String>> = records(text).into_iter().filter(|r| r != &[""]).collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn an_open_quote_is_reported_not_read_on() {
        let text = b"1,\"open\n2,liu,like\n";
        assert_eq!(scan_record(text, 0, true, None), Scan::Open { quote: Some(2) });
        assert_eq!(scan_record(text, 0, false, None), Scan::Open { quote: Some(2) });
        // A quote at the end of the buffer waits for the next byte.
        assert_eq!(scan_record(b"1,\"a\"", 0, false, None), Scan::Open { quote: Some(2) });
        assert_eq!(scan_record(b"1,\"a\"", 0, true, None), Scan::Record(5));
    }
}
