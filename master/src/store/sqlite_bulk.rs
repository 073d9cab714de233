//! Bulk statements for SQLite: a whole batch of rows goes in ONE bound parameter, a JSON array
//! of row arrays, which the statement unpacks with `json_each` (blobs travel as hex and come
//! back through `unhex`). A statement per 64 rows cost a round trip to sqlx's SQLite worker and
//! a lookup per parameter name; one statement per table and batch costs neither.
//! (SQLite ≥ 3.41 for `unhex`; the bundled one is 3.46.)

use serde_json::Value;

/// `[[a, b, …], …]`: one JSON text holding every row.
pub fn rows_json<I, R>(rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = Value>,
{
    let rows: Vec<Value> = rows.into_iter().map(|row| Value::Array(row.into_iter().collect())).collect();
    Value::Array(rows).to_string()
}

/// A blob as a JSON string the statement turns back with `unhex(…)`.
pub fn blob(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

/// `SELECT value->>0 AS c0, …` over the rows of `json_each($1)`, for `columns` columns; the
/// ones listed in `blobs` are unhexed.
pub fn select_rows(columns: usize, blobs: &[usize]) -> String {
    let fields: Vec<String> = (0..columns)
        .map(|index| {
            if blobs.contains(&index) {
                format!("unhex(value->>{index}) AS c{index}")
            } else {
                format!("value->>{index} AS c{index}")
            }
        })
        .collect();
    format!("SELECT {} FROM json_each($1)", fields.join(", "))
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
    fn the_select_names_every_column_and_unhexes_blobs() {
        assert_eq!(
            select_rows(3, &[2]),
            "SELECT value->>0 AS c0, value->>1 AS c1, unhex(value->>2) AS c2 FROM json_each($1)"
        );
    }
}
