//! Markdown tables for the reports.

/// A Markdown table with a row of cells per item. `align` has one letter
/// per column: `l` (left) or `r` (right); a row shorter than the header is
/// padded with empty cells.
pub fn table<T>(
    header: &[&str],
    align: &str,
    items: &[T],
    cells: impl Fn(&T) -> Vec<String>,
) -> String {
    let mut out = String::new();
    push_row(&mut out, header.iter().copied());
    let rules = header.iter().enumerate().map(|(i, _)| {
        if align.as_bytes().get(i) == Some(&b'r') {
            "---:"
        } else {
            "---"
        }
    });
    push_row(&mut out, rules);
    for item in items {
        let row = cells(item);
        push_row(
            &mut out,
            (0..header.len()).map(|i| row.get(i).map_or("", String::as_str)),
        );
    }
    out
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    out.push('|');
    for cell in cells {
        out.push(' ');
        out.push_str(cell);
        out.push_str(" |");
    }
    out.push('\n');
}

/// `value` with `decimals` places, or `–` for none.
pub fn value(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let rows = [("a", Some(1)), ("b", None)];
        let cells = |&(name, n): &(&str, Option<u32>)| {
            let mut cells = vec![name.to_owned()];
            cells.extend(n.map(|n| n.to_string()));
            cells
        };
        assert_eq!(
            table(&["name", "n"], "lr", &rows, cells),
            "| name | n |\n| --- | ---: |\n| a | 1 |\n| b |  |\n"
        );
    }

    #[test]
    fn values() {
        assert_eq!(value(Some(1.234), 2), "1.23");
        assert_eq!(value(None, 2), "–");
    }
}
