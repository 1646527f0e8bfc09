//! The one table writer every listing uses (`beam list`, `beam tokens list`,
//! `beam domains list`, members, agent tokens): columns as wide as their
//! widest cell, numbers right-aligned, the last column never padded.

use serde_json::Value;

/// How a column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table being filled.
#[derive(Debug)]
pub struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

/// A JSON value as a cell: strings without quotes, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[(&'static str, Align)]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, a line per row after the header.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|(h, _)| h.to_string()).collect();
        for r in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.headers.iter().enumerate() {
                let c = r.get(i).map_or("", String::as_str);
                let pad = widths[i].saturating_sub(c.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                let last = i + 1 == n;
                match align {
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(c);
                    }
                    Align::Left if last => line.push_str(c),
                    Align::Left => {
                        line.push_str(c);
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_ids_are_padded() {
        let mut t = Table::new(&[
            ("ID", Align::Right),
            ("NAME", Align::Left),
            ("URL", Align::Left),
        ]);
        t.row(vec![cell(&Value::from(7)), "a".into(), "http://a".into()]);
        t.row(vec![
            cell(&Value::from(1234)),
            "longer-name".into(),
            "http://b".into(),
        ]);
        t.row(vec![
            cell(&Value::Null),
            cell(&Value::from("x")),
            String::new(),
        ]);
        assert_eq!(
            t.render(),
            "  ID  NAME         URL\n   7  a            http://a\n1234  longer-name  http://b\n   -  x\n"
        );
    }
}
