//! Query-string validation shared by the listing endpoints, with FastAPI's error shapes
//! (`loc` starts with "query"; the last occurrence of a repeated parameter wins).

use domain::validation::{FieldError, Loc};
use serde_json::{json, Value};
use store::Cursor;

pub(crate) struct Params<'a>(pub &'a [(String, String)]);

impl Params<'_> {
    pub fn last(&self, name: &str) -> Option<&String> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// `limit` as pydantic validates `Query(None, ge=1, le=max)`.
    pub fn limit(&self, max: u32, errors: &mut Vec<FieldError>) -> Option<u32> {
        self.int_in("limit", 1, max, errors)
    }

    /// Parameter `name` as pydantic validates `Query(None, ge=min, le=max)`.
    pub fn int_in(
        &self,
        name: &str,
        min: u32,
        max: u32,
        errors: &mut Vec<FieldError>,
    ) -> Option<u32> {
        let l = self.last(name)?;
        match parse_python_int(l) {
            None => errors.push(query_error(
                "int_parsing",
                name,
                "Input should be a valid integer, unable to parse string as an integer".into(),
                l,
                None,
            )),
            Some(n) if n < min as i128 => errors.push(query_error(
                "greater_than_equal",
                name,
                format!("Input should be greater than or equal to {min}"),
                l,
                Some(json!({"ge": min})),
            )),
            Some(n) if n > max as i128 => errors.push(query_error(
                "less_than_equal",
                name,
                format!("Input should be less than or equal to {max}"),
                l,
                Some(json!({"le": max})),
            )),
            Some(n) => return Some(n as u32),
        }
        None
    }

    /// An opaque cursor returned as `next_cursor` by the same endpoint.
    pub fn cursor(&self, errors: &mut Vec<FieldError>) -> Option<Cursor> {
        let c = self.last("cursor")?;
        let decoded = Cursor::decode(c);
        if decoded.is_none() {
            errors.push(query_error(
                "value_error",
                "cursor",
                "Value error, cursor is not one returned by this endpoint".into(),
                c,
                Some(json!({"error": {}})),
            ));
        }
        decoded
    }
}

/// Integers as pydantic parses them from strings: optional sign, digits, `_` between digits,
/// surrounding whitespace.
pub(crate) fn parse_python_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let n: i128 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -n } else { n })
}

pub(crate) fn query_error(
    kind: &str,
    field: &str,
    msg: String,
    input: &str,
    ctx: Option<Value>,
) -> FieldError {
    FieldError {
        kind: kind.to_string(),
        loc: vec![Loc::Field("query".into()), Loc::Field(field.into())],
        msg,
        input: Value::String(input.to_string()),
        ctx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_ints() {
        assert_eq!(parse_python_int(" 1_000 "), Some(1000));
        assert_eq!(parse_python_int("-3"), Some(-3));
        assert_eq!(parse_python_int("1__0"), None);
        assert_eq!(parse_python_int("1.0"), None);
        assert_eq!(parse_python_int(""), None);
    }
}
