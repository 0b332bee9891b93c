//! Constructors for the pydantic v2 error kinds we reproduce (type, msg and ctx wording copied
//! from pydantic-core, checked against the oracle in tools/reference_oracle).

use serde_json::{json, Value};

use super::{FieldError, Loc};

pub(crate) fn fe(
    kind: &str,
    loc: Vec<Loc>,
    msg: impl Into<String>,
    input: Value,
    ctx: Option<Value>,
) -> FieldError {
    FieldError {
        kind: kind.to_owned(),
        loc,
        msg: msg.into(),
        input,
        ctx,
    }
}

pub(crate) fn missing(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe("missing", loc, "Field required", input.clone(), None)
}

pub(crate) fn extra_forbidden(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "extra_forbidden",
        loc,
        "Extra inputs are not permitted",
        input.clone(),
        None,
    )
}

pub(crate) fn model_attributes_type(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "model_attributes_type",
        loc,
        "Input should be a valid dictionary or object to extract fields from",
        input.clone(),
        None,
    )
}

pub(crate) fn string_type(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "string_type",
        loc,
        "Input should be a valid string",
        input.clone(),
        None,
    )
}

pub(crate) fn dict_type(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "dict_type",
        loc,
        "Input should be a valid dictionary",
        input.clone(),
        None,
    )
}

pub(crate) fn list_type(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "list_type",
        loc,
        "Input should be a valid list",
        input.clone(),
        None,
    )
}

pub(crate) fn set_type(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "set_type",
        loc,
        "Input should be a valid set",
        input.clone(),
        None,
    )
}

pub(crate) fn int_type(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "int_type",
        loc,
        "Input should be a valid integer",
        input.clone(),
        None,
    )
}

pub(crate) fn int_parsing(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "int_parsing",
        loc,
        "Input should be a valid integer, unable to parse string as an integer",
        input.clone(),
        None,
    )
}

pub(crate) fn int_parsing_size(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "int_parsing_size",
        loc,
        "Unable to parse input string as an integer, exceeded maximum size",
        input.clone(),
        None,
    )
}

pub(crate) fn int_from_float(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "int_from_float",
        loc,
        "Input should be a valid integer, got a number with a fractional part",
        input.clone(),
        None,
    )
}

pub(crate) fn greater_than_equal(loc: Vec<Loc>, input: &Value, ge: i64) -> FieldError {
    fe(
        "greater_than_equal",
        loc,
        format!("Input should be greater than or equal to {ge}"),
        input.clone(),
        Some(json!({ "ge": ge })),
    )
}

pub(crate) fn less_than_equal(loc: Vec<Loc>, input: &Value, le: i64) -> FieldError {
    fe(
        "less_than_equal",
        loc,
        format!("Input should be less than or equal to {le}"),
        input.clone(),
        Some(json!({ "le": le })),
    )
}

pub(crate) fn string_too_short(loc: Vec<Loc>, input: &Value, min: usize) -> FieldError {
    let s = if min == 1 { "" } else { "s" };
    fe(
        "string_too_short",
        loc,
        format!("String should have at least {min} character{s}"),
        input.clone(),
        Some(json!({ "min_length": min })),
    )
}

pub(crate) fn pattern_mismatch(loc: Vec<Loc>, input: &Value, pattern: &str) -> FieldError {
    fe(
        "string_pattern_mismatch",
        loc,
        format!("String should match pattern '{pattern}'"),
        input.clone(),
        Some(json!({ "pattern": pattern })),
    )
}

/// `'a', 'b' or 'c'` as pydantic renders an enum's expected values.
pub(crate) fn expected_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

pub(crate) fn enum_err(loc: Vec<Loc>, input: &Value, values: &[&str]) -> FieldError {
    let expected = expected_list(values);
    fe(
        "enum",
        loc,
        format!("Input should be {expected}"),
        input.clone(),
        Some(json!({ "expected": expected })),
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub(crate) fn too_short(
    loc: Vec<Loc>,
    input: &Value,
    field_type: &str,
    min: usize,
    actual: usize,
) -> FieldError {
    fe(
        "too_short",
        loc,
        format!(
            "{field_type} should have at least {min} item{} after validation, not {actual}",
            plural(min)
        ),
        input.clone(),
        Some(json!({ "field_type": field_type, "min_length": min, "actual_length": actual })),
    )
}

/// `actual = None` is the Set flavour: "…, not more" with `actual_length: null`.
pub(crate) fn too_long(
    loc: Vec<Loc>,
    input: &Value,
    field_type: &str,
    max: usize,
    actual: Option<usize>,
) -> FieldError {
    let not = match actual {
        Some(a) => a.to_string(),
        None => "more".to_owned(),
    };
    fe(
        "too_long",
        loc,
        format!(
            "{field_type} should have at most {max} item{} after validation, not {not}",
            plural(max)
        ),
        input.clone(),
        Some(json!({ "field_type": field_type, "max_length": max, "actual_length": actual })),
    )
}

/// A `@field_validator` raising `ValueError(msg)`: FastAPI's jsonable_encoder turns the exception
/// object in ctx into `{}`.
pub(crate) fn value_error(loc: Vec<Loc>, input: &Value, msg: &str) -> FieldError {
    fe(
        "value_error",
        loc,
        format!("Value error, {msg}"),
        input.clone(),
        Some(json!({ "error": {} })),
    )
}

/// pydantic v2's `None` type (`request_context: None`): anything but null.
pub(crate) fn none_required(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "none_required",
        loc,
        "Input should be None",
        input.clone(),
        None,
    )
}

pub(crate) fn url_type(loc: Vec<Loc>, input: &Value) -> FieldError {
    fe(
        "url_type",
        loc,
        "URL input should be a string or URL",
        input.clone(),
        None,
    )
}

/// `error` is pydantic-core's text: "input is empty", or the rust-url `ParseError` it got.
pub(crate) fn url_parsing(loc: Vec<Loc>, input: &Value, error: &str) -> FieldError {
    fe(
        "url_parsing",
        loc,
        format!("Input should be a valid URL, {error}"),
        input.clone(),
        Some(json!({ "error": error })),
    )
}

/// The length is counted in bytes of UTF-8, as pydantic-core does.
pub(crate) fn url_too_long(loc: Vec<Loc>, input: &Value, max: usize) -> FieldError {
    let s = if max == 1 { "" } else { "s" };
    fe(
        "url_too_long",
        loc,
        format!("URL should have at most {max} character{s}"),
        input.clone(),
        Some(json!({ "max_length": max })),
    )
}

/// `expected` as pydantic renders the allowed schemes, e.g. `'http' or 'https'`.
pub(crate) fn url_scheme(loc: Vec<Loc>, input: &Value, expected: &str) -> FieldError {
    fe(
        "url_scheme",
        loc,
        format!("URL scheme should be {expected}"),
        input.clone(),
        Some(json!({ "expected_schemes": expected })),
    )
}
