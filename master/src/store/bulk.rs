//! Bulk statements: a whole batch of rows goes in ONE bound parameter, a JSON array of row
//! arrays, which the statement unpacks (SQLite `json_each`, PostgreSQL `jsonb_array_elements`:
//! parsed once, where `json` lexed the row again for every field; blobs travel as hex). One statement per table and batch, with the same text whatever the
//! batch's size:
//! - SQLite: a statement per 64 rows cost a round trip to sqlx's SQLite worker and a lookup per
//!   parameter name;
//! - PostgreSQL: a multi-row `VALUES` of 500 rows × 6 parameters had a different text for every
//!   row count, so most batches parsed and planned a 3,000-parameter statement anew.
//!
//! (SQLite ≥ 3.41 for `unhex`; the bundled one is 3.46.)

use super::Backend;
use serde_json::Value;

/// The type of a column read out of the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Text,
    Int,
    /// Hex in the JSON ([`blob`]), bytes in the table.
    Blob,
}

/// `[[a, b, …], …]`: one JSON text holding every row.
pub fn rows_json<I, R>(rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = Value>,
{
    let rows: Vec<Value> = rows.into_iter().map(|row| Value::Array(row.into_iter().collect())).collect();
    Value::Array(rows).to_string()
}

/// A blob as a JSON string the statement turns back into bytes.
pub fn blob(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

/// `SELECT … AS c0, … AS c1, …` over the rows bound as `$1` ([`rows_json`]), one field per
/// column, each read as its type.
pub fn select_rows(backend: Backend, columns: &[Column]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| match (backend, column) {
            (Backend::Sqlite, Column::Blob) => format!("unhex(value->>{index}) AS c{index}"),
            (Backend::Sqlite, _) => format!("value->>{index} AS c{index}"),
            (Backend::Postgres, Column::Text) => format!("(value->>{index}) AS c{index}"),
            (Backend::Postgres, Column::Int) => format!("(value->>{index})::bigint AS c{index}"),
            (Backend::Postgres, Column::Blob) => format!("decode(value->>{index}, 'hex') AS c{index}"),
        })
        .collect();
    match backend {
        Backend::Sqlite => format!("SELECT {} FROM json_each($1)", fields.join(", ")),
        Backend::Postgres => format!("SELECT {} FROM jsonb_array_elements($1::jsonb)", fields.join(", ")),
    }
}

/// `(SELECT …)`: the strings of a JSON array bound as `$1`, for `IN`.
pub fn text_list(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "(SELECT value FROM json_each($1))",
        Backend::Postgres => "(SELECT jsonb_array_elements_text($1::jsonb))",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_become_one_json_array_and_blobs_hex() {
        let text = rows_json([vec![json!("a"), json!(1), blob(&[0, 255])], vec![json!("b"), json!(2), blob(b"")]]);
        assert_eq!(text, r#"[["a",1,"00ff"],["b",2,""]]"#);
    }

    #[test]
    fn the_select_names_every_column_and_reads_it_as_its_type() {
        let columns = [Column::Text, Column::Int, Column::Blob];
        assert_eq!(
            select_rows(Backend::Sqlite, &columns),
            "SELECT value->>0 AS c0, value->>1 AS c1, unhex(value->>2) AS c2 FROM json_each($1)"
        );
        assert_eq!(
            select_rows(Backend::Postgres, &columns),
            "SELECT (value->>0) AS c0, (value->>1)::bigint AS c1, decode(value->>2, 'hex') AS c2 \
             FROM jsonb_array_elements($1::jsonb)"
        );
    }
}
