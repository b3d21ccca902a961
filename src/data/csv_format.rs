//! CSV records: a header row, then one record per row.
//!
//! Column names are the contract's field names; an empty cell means the
//! field is absent; list fields are `|`-separated. Quoted cells may span
//! lines (the block reader never cuts inside quotes).

use super::table::{RawField, TableBuilder};

/// Reads the header of a CSV file from its first block. Returns the column
/// names and the byte length and line count of the header.
pub fn parse_header(block: &[u8]) -> Result<(Vec<String>, usize, u64), String> {
    let mut reader = ::csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(block);
    let mut record = ::csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err("empty file: no header row".into()),
        Err(e) => return Err(format!("unreadable header row: {e}")),
    }
    let names: Vec<String> = record.iter().map(|h| h.trim_start_matches('\u{feff}').trim().to_string()).collect();
    if names.iter().all(String::is_empty) {
        return Err("empty header row".into());
    }
    let pos = reader.position();
    Ok((names, pos.byte() as usize, pos.line() - 1))
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
    let mut reader = ::csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(block);
    let mut record = ::csv::ByteRecord::new();
    loop {
        let line = first_line + reader.position().line() - 1;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                bad.push((line, format!("unreadable CSV record: {e}")));
                continue;
            }
        }
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        builder.begin();
        if record.len() != header.len() {
            builder.reject(format!("{} cells, but the header has {} columns", record.len(), header.len()));
        } else {
            for (name, cell) in header.iter().zip(record.iter()) {
                match std::str::from_utf8(cell) {
                    Ok(text) => builder.field(name, RawField::Str(text.into())),
                    Err(_) => builder.reject(format!("column `{name}` is not valid UTF-8")),
                }
            }
        }
        if let Err(why) = builder.end() {
            bad.push((line, why));
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
}
