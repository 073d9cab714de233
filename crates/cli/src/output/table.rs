//! Aligned columns, as `kubectl get` prints them: upper-case headers, two spaces between
//! columns, "-" for an empty cell; colour is added after padding so it never shifts a column.
//! Also the two-column "field  value" layout of a single object.

use super::style::{paint, Tone};

/// One cell: its text and tone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell { text: text.into(), tone }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, tone: Tone::Plain }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// Rows under headers.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| h.to_uppercase()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self, colour: bool) -> String {
        let header_cells: Vec<Cell> = self.headers.iter().map(|h| Cell::from(h.as_str())).collect();
        let shown = |cell: &Cell| if cell.text.is_empty() { "-".to_string() } else { cell.text.clone() };
        let columns = self.headers.len();
        let mut widths = vec![0usize; columns];
        for row in std::iter::once(&header_cells).chain(&self.rows) {
            for (index, cell) in row.iter().take(columns).enumerate() {
                widths[index] = widths[index].max(shown(cell).chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header_cells).chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().take(columns).enumerate() {
                let text = shown(cell);
                let last = index + 1 == columns.min(row.len());
                let padding = if last { 0 } else { widths[index] - text.chars().count() + 2 };
                line.push_str(&paint(&text, cell.tone, colour));
                line.push_str(&" ".repeat(padding));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// "field  value" lines for one object; empty values are left out.
pub fn fields(pairs: &[(&str, Cell)], colour: bool) -> String {
    let width = pairs.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in pairs.iter().filter(|(_, value)| !value.text.is_empty()) {
        out.push_str(&format!("{name:<width$}  {}\n", paint(&value.text, value.tone, colour)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_colour_does_not_shift_them() {
        let mut table = Table::new(&["id", "status", "name"]);
        table.row(vec!["a1".into(), Cell::toned("online", Tone::Good), "web".into()]);
        table.row(vec!["b22222".into(), Cell::toned("offline", Tone::Warn), "".into()]);
        assert_eq!(table.render(false), "ID      STATUS   NAME\na1      online   web\nb22222  offline  -\n");
        let coloured = table.render(true);
        assert!(coloured.contains("a1      \x1b[32monline\x1b[0m   web\n"), "{coloured:?}");
    }

    #[test]
    fn fields_skip_empty_values() {
        let text =
            fields(&[("id", "a1".into()), ("group", "".into()), ("status", Cell::toned("online", Tone::Good))], false);
        assert_eq!(text, "id      a1\nstatus  online\n");
    }
}
