//! Request validation that reproduces the reference server's (FastAPI + pydantic v2) 422 bodies.
//!
//! Entry points: [`parse_body`] (raw bytes -> JSON value, or FastAPI's body errors) and the
//! `from_json` constructor of each request type in [`requests`] (v1) and [`v2`]. Errors are [`FieldError`]s in
//! pydantic's order; [`detail_json`] renders the `{"detail": [...]}` body.
//!
//! Everything here is checked against golden files produced by the real FastAPI + pydantic
//! (tools/reference_oracle, fixtures in crates/domain/tests/golden). Known, documented
//! divergences from the reference (all far from what clients send):
//! * `NaN`, `Infinity`, `-Infinity` and overflowing float literals (`1e400`) are valid JSON for
//!   Python; the reference then answers **500** whenever it echoes such a value in an error
//!   (Starlette renders with `allow_nan=False`) and accepts it silently inside
//!   `request_context`. We read them as `null`: same result inside `request_context`, a 422
//!   (or 200) where the reference crashes.
//! * Integers beyond 64 bits are echoed as floats (the reference echoes them exactly).
//! * Lone UTF-16 surrogate escapes (`"\ud800"`) become U+FFFD (Python keeps the surrogate and
//!   crashes with 500 when it has to echo it).
//! * A body nested deeper than [`pyjson::MAX_DEPTH`] is [`BodyError::TooDeep`] (Python raises
//!   RecursionError at a stack-dependent depth; FastAPI answers 400 "There was an error parsing
//!   the body", exactly as for invalid UTF-8).
//! * A body holding more than [`pyjson::MAX_VALUES`] JSON values is [`BodyError::TooManyValues`]
//!   (the API answers 413), and a 422 lists at most [`MAX_ERRORS`] errors followed by one
//!   `too_many_errors` entry (pydantic lists them all). Both bound what a hostile body costs; no
//!   request of this API comes near either limit.
//! * Bodies in UTF-16/UTF-32 (which `json.loads(bytes)` auto-detects) are treated as invalid
//!   UTF-8. A UTF-8 BOM is skipped, as `json.loads(bytes)` does.
//! * JSON error messages are those of CPython 3.11's decoder; CPython >= 3.13 says "Illegal
//!   trailing comma before end of object/array" for trailing commas.

mod errors;
pub mod pyjson;
pub mod requests;
pub mod v2;

use serde::{Serialize, Serializer};
use serde_json::{json, Value};

pub use requests::{
    CheckConnectivity, EnrollmentAdd, EnrollmentDelete, EnrollmentUpdate, EntityType,
    EventsRequest, ReplayRequest, Simulation, WebhookAdd, WebhookUpdate, PROSPECT_ID_PATTERN,
    SIMULATION_EVENT_TYPES,
};

/// One element of an error location: a field name or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    Field(String),
    Index(usize),
}

impl Serialize for Loc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Loc::Field(f) => s.serialize_str(f),
            Loc::Index(i) => s.serialize_u64(*i as u64),
        }
    }
}

impl From<&str> for Loc {
    fn from(s: &str) -> Self {
        Loc::Field(s.to_owned())
    }
}

impl From<usize> for Loc {
    fn from(i: usize) -> Self {
        Loc::Index(i)
    }
}

/// One pydantic error as FastAPI renders it in a 422 body.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// pydantic's `type`, e.g. `missing`, `string_too_short`.
    pub kind: String,
    pub loc: Vec<Loc>,
    pub msg: String,
    pub input: Value,
    pub ctx: Option<Value>,
}

impl FieldError {
    /// `{"type", "loc", "msg", "input", "ctx"?}` in that key order.
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), Value::String(self.kind.clone()));
        m.insert(
            "loc".into(),
            Value::Array(self.loc.iter().map(loc_json).collect()),
        );
        m.insert("msg".into(), Value::String(self.msg.clone()));
        m.insert("input".into(), self.input.clone());
        if let Some(ctx) = &self.ctx {
            m.insert("ctx".into(), ctx.clone());
        }
        Value::Object(m)
    }
}

fn loc_json(l: &Loc) -> Value {
    match l {
        Loc::Field(f) => Value::String(f.clone()),
        Loc::Index(i) => json!(i),
    }
}

/// The same keys as [`FieldError::to_json`], written straight from the error (no copy of
/// `input`, which may be the whole body).
impl Serialize for FieldError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(4 + usize::from(self.ctx.is_some())))?;
        m.serialize_entry("type", &self.kind)?;
        m.serialize_entry("loc", &self.loc)?;
        m.serialize_entry("msg", &self.msg)?;
        m.serialize_entry("input", &self.input)?;
        if let Some(ctx) = &self.ctx {
            m.serialize_entry("ctx", ctx)?;
        }
        m.end()
    }
}

/// `{"detail": [...]}`, the 422 body, serialized without copying the errors.
#[derive(Serialize)]
pub struct Detail<'a> {
    pub detail: &'a [FieldError],
}

/// `{"detail": [...]}` as a value.
pub fn detail_json(errors: &[FieldError]) -> Value {
    serde_json::to_value(Detail { detail: errors }).expect("errors serialize to JSON")
}

/// Errors listed in one 422 at most. pydantic lists every error, so a body with 90,000 unknown
/// keys answered 12 MB; no valid-looking request has more than a few dozen errors (the
/// reference's golden cases: at most 50).
pub const MAX_ERRORS: usize = 100;

/// Caps `errors` at [`MAX_ERRORS`]: beyond it, the list ends with one `too_many_errors` entry.
/// Collectors keep at most `MAX_ERRORS + 1` errors, so "more than the cap" stays visible here.
pub(crate) fn cap_errors(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    if errors.len() > MAX_ERRORS {
        errors.truncate(MAX_ERRORS);
        errors.push(errors::fe(
            "too_many_errors",
            vec![Loc::from("body")],
            format!("Too many errors: only the first {MAX_ERRORS} are listed"),
            Value::Null,
            None,
        ));
    }
    errors
}

/// Whether a collector already holds enough errors to trigger the cap.
pub(crate) fn errors_full(errors: &[FieldError]) -> bool {
    errors.len() > MAX_ERRORS
}

/// Why a body could not be turned into a JSON value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// Answer 422 with these errors (empty body, malformed JSON).
    #[error("invalid request body")]
    Invalid(Vec<FieldError>),
    /// Not UTF-8: FastAPI answers 400 `{"detail":"There was an error parsing the body"}`.
    #[error("There was an error parsing the body")]
    NotUtf8,
    /// Nested too deep (Python: RecursionError): also 400 "There was an error parsing the body".
    #[error("There was an error parsing the body")]
    TooDeep,
    /// More than [`pyjson::MAX_VALUES`] values: the API answers 413.
    #[error("Request body is too large")]
    TooManyValues,
}

/// Parses a JSON request body exactly as FastAPI does (for a JSON content type):
/// * empty body -> `missing` at `["body"]`, "Field required", input null;
/// * malformed JSON -> `json_invalid` at `["body", <char offset>]`, "JSON decode error",
///   input `{}`, ctx `{"error": <Python's JSONDecodeError.msg>}`;
/// * invalid UTF-8 -> [`BodyError::NotUtf8`].
///
/// The value returned is then validated by a request's `from_json` (a non-object body, `null`
/// included, gives `model_attributes_type` there).
pub fn parse_body(bytes: &[u8]) -> Result<Value, BodyError> {
    if bytes.is_empty() {
        return Err(BodyError::Invalid(vec![errors::fe(
            "missing",
            vec![Loc::from("body")],
            "Field required",
            Value::Null,
            None,
        )]));
    }
    // json.loads(bytes) decodes with 'utf-8-sig' when the body starts with a UTF-8 BOM.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| BodyError::NotUtf8)?;
    match pyjson::loads(text) {
        Ok(v) => Ok(v),
        Err(pyjson::LoadError::TooDeep) => Err(BodyError::TooDeep),
        Err(pyjson::LoadError::TooManyValues) => Err(BodyError::TooManyValues),
        Err(pyjson::LoadError::Decode(e)) => Err(BodyError::Invalid(vec![errors::fe(
            "json_invalid",
            vec![Loc::from("body"), Loc::Index(e.pos)],
            "JSON decode error",
            json!({}),
            Some(json!({ "error": e.msg })),
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_key_order() {
        let e = errors::string_too_short(
            vec!["body".into(), "enrollment_key".into()],
            &json!("ab"),
            4,
        );
        assert_eq!(
            serde_json::to_string(&e.to_json()).unwrap(),
            r#"{"type":"string_too_short","loc":["body","enrollment_key"],"msg":"String should have at least 4 characters","input":"ab","ctx":{"min_length":4}}"#
        );
        let m = errors::missing(vec!["body".into(), Loc::Index(3)], &json!(null));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"missing","loc":["body",3],"msg":"Field required","input":null}"#
        );
    }

    fn kinds(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.kind.as_str()).collect()
    }

    /// pydantic lists every error; a 422 lists the first MAX_ERRORS and says it stopped.
    #[test]
    fn errors_are_capped_whatever_the_body() {
        let pid = "a".repeat(40);
        // Unknown keys (the issue's body, under the value cap).
        let mut body = serde_json::Map::new();
        for i in 0..5_000 {
            body.insert(format!("unknown_{i}"), json!(i));
        }
        let e = EnrollmentDelete::from_json(&Value::Object(body)).unwrap_err();
        assert_eq!(e.len(), MAX_ERRORS + 1);
        // Field order is kept: `missing` first, then the extras in input order.
        assert_eq!(e[0].kind, "missing");
        assert_eq!(e[1].loc, vec![Loc::from("body"), Loc::from("unknown_0")]);
        assert_eq!(e[MAX_ERRORS - 1].loc[1], Loc::from("unknown_98"));
        let last = &e[MAX_ERRORS];
        assert_eq!(
            serde_json::to_string(last).unwrap(),
            r#"{"type":"too_many_errors","loc":["body"],"msg":"Too many errors: only the first 100 are listed","input":null}"#
        );
        // A list of invalid items.
        let bad =
            json!({"enrollment_key": "abcd", "prospect_ids": [pid], "event_types": vec![0; 5_000]});
        let e = EnrollmentAdd::from_json(&bad).unwrap_err();
        assert_eq!(e.len(), MAX_ERRORS + 1);
        assert_eq!(kinds(&e[..MAX_ERRORS]), vec!["enum"; MAX_ERRORS]);
        // A set of invalid ids: capped too…
        let bad = json!({"event_types": ["prospect_changed_role"], "prospect_ids": vec![0; 5_000]});
        let e = EventsRequest::from_json(&bad).unwrap_err();
        assert_eq!(e.len(), MAX_ERRORS + 1);
        assert_eq!(kinds(&e[..MAX_ERRORS]), vec!["string_type"; MAX_ERRORS]);
        // …but a `too_long` found after the cap still replaces the item errors, as in pydantic.
        let mut ids: Vec<Value> = vec![json!(0); 500];
        ids.extend((0..41).map(|i| json!(format!("{i:040x}"))));
        let bad = json!({"event_types": ["prospect_changed_role"], "prospect_ids": ids});
        let e = EventsRequest::from_json(&bad).unwrap_err();
        assert_eq!(kinds(&e), vec!["too_long"]);
        // At the cap exactly, nothing is cut.
        let bad = json!({"enrollment_key": "abcd", "prospect_ids": [pid], "event_types": vec![0; MAX_ERRORS]});
        let e = EnrollmentAdd::from_json(&bad).unwrap_err();
        assert_eq!(kinds(&e), vec!["enum"; MAX_ERRORS]);
    }

    #[test]
    fn too_many_values_is_its_own_body_error() {
        let body = format!("[{}]", vec!["0"; pyjson::MAX_VALUES].join(","));
        assert_eq!(parse_body(body.as_bytes()), Err(BodyError::TooManyValues));
    }

    #[test]
    fn body_errors() {
        assert_eq!(parse_body(b"\xff{}"), Err(BodyError::NotUtf8));
        assert_eq!(parse_body(b"\xef\xbb\xbf{}").unwrap(), json!({}));
        let Err(BodyError::Invalid(e)) = parse_body(b"") else {
            panic!()
        };
        assert_eq!(e[0].kind, "missing");
        let Err(BodyError::Invalid(e)) = parse_body("{\"é\":1,}".as_bytes()) else {
            panic!()
        };
        assert_eq!(e[0].loc, vec![Loc::from("body"), Loc::Index(7)]);
    }
}
