//! The v2 request models (Partner Service 0.3.29,
//! `/work/shared/reference/v2/openapi-0.3.29.v2-webhooks-events.subset.json`) and their
//! pydantic-exact validation, with the same machinery as v1's [`super::requests`]. Pydantic
//! declarations mirrored (tools/reference_oracle/app.py; choices in its README, "v2 models"):
//!
//! ```python
//! WebhookUrl = Annotated[HttpUrl, UrlConstraints(max_length=65536)]
//! HeaderLine = Annotated[str, AfterValidator(check_header)]          # our rules, see HeaderLine
//! class WebhookCreateRequest(BaseModel, extra="forbid"):
//!     headers: List[HeaderLine] = Field(None, max_length=WEBHOOK_MAX_HEADERS)
//!     name: str
//!     description: str = None
//!     webhook_url: WebhookUrl
//!     payload_format: PayloadFormat = PayloadFormat.json
//! class WebhookPatchRequest(...):   # every field `= None`, + status: WebhookStatus = None
//! class WebhookConnectivityRequest(...): simulation: WebhookSimulation = None   # v1's model
//! class V2ProspectEnrollmentCreateRequest(...):
//!     request_context: None = None
//!     enrollment_key: str = Field(min_length=4)
//!     webhook_id: str
//!     event_types: List[ProspectsEventIdentifier] = Field(min_length=1, max_length=1000)
//!     prospect_ids: List[constr(pattern=r"^[a-f0-9]{40}$")] = Field(min_length=1, max_length=1000)
//! class V2ProspectEnrollmentPatchRequest(...):   # the same fields, every one `= None`
//! ```
//!
//! A field is nullable only where the schema says so (`request_context`, `type: null`): an
//! explicit `null` elsewhere is the field's type error, as pydantic v2 gives for a `= None`
//! default it does not validate. Lists are de-duplicated in first-occurrence order, as v1's.

use serde_json::Value;

use super::errors::*;
use super::requests::{
    body_model, dedup, v_event_type, v_key, v_list, v_prospect_id, v_simulation, v_str,
};
use super::{FieldError, Loc, Simulation};
use crate::defaults::{WEBHOOK_HEADER_MAX_BYTES, WEBHOOK_MAX_HEADERS};
use crate::ids::{EventType, ProspectId};
use crate::notification::PayloadFormat;

/// `maxLength` of `webhook_url` (pydantic-core counts bytes of UTF-8).
pub const WEBHOOK_URL_MAX_LEN: usize = 65536;
/// `maxItems` of `event_types` and `prospect_ids` in v2 enrollment requests.
pub const ENROLLMENT_MAX_ITEMS: usize = 1000;
/// Headers the service sets on every delivery (content, framing, signatures): a custom header
/// may not carry one of these names, in any case.
pub const RESERVED_HEADERS: [&str; 17] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "x-signature",
    "x-timestamp",
    "x-delivery-id",
    "x-event-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];
const HTTP_SCHEMES: &str = "'http' or 'https'";

/// `WebhookStatus`: a disabled webhook is kept but gets no deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookStatus {
    Active,
    Disabled,
}

impl WebhookStatus {
    pub const ALL: [WebhookStatus; 2] = [WebhookStatus::Active, WebhookStatus::Disabled];

    /// The wire and storage name: `active` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Active => "active",
            WebhookStatus::Disabled => "disabled",
        }
    }

    /// The status named `s` (exact), or None.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One custom header of a v2 webhook, from a `"Name: value"` line. The rules are ours (the
/// reference only says `string[]`): at most [`WEBHOOK_HEADER_MAX_BYTES`] bytes; no control
/// character but HTAB (so no CR/LF: a line cannot smuggle a second header); the name before
/// the first `:` is a non-empty HTTP token (RFC 9110 `tchar`, so no space before the colon)
/// and not one of [`RESERVED_HEADERS`]; the value is the rest without surrounding spaces and
/// tabs (it may be empty). `Debug` does not show the value: headers carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderLine {
    pub name: String,
    pub value: String,
}

impl HeaderLine {
    /// The header of `line`, or the rule it breaks (the text of its `value_error`).
    pub fn parse(line: &str) -> Result<Self, String> {
        if line.len() > WEBHOOK_HEADER_MAX_BYTES {
            return Err(format!(
                "header must be at most {WEBHOOK_HEADER_MAX_BYTES} bytes"
            ));
        }
        if line.chars().any(|c| (c < ' ' && c != '\t') || c == '\x7f') {
            return Err("header must not contain CR, LF or other control characters".into());
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err("header must have the form 'Name: value'".into());
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(
                "header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)".into(),
            );
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
        {
            return Err(format!(
                "header {name} is set by the service and cannot be sent as a custom header"
            ));
        }
        Ok(HeaderLine {
            name: name.to_owned(),
            value: value.trim_matches([' ', '\t']).to_owned(),
        })
    }
}

/// `"Name: value"`, the canonical line (one space after the colon).
impl std::fmt::Display for HeaderLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}

impl std::fmt::Debug for HeaderLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderLine")
            .field("name", &self.name)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .finish()
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `WebhookCreateRequest` (POST /v2/webhooks).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookCreate {
    pub name: String,
    pub description: Option<String>,
    /// As pydantic's `HttpUrl` serialises it (rust-url's normalisation: `https://a.com` →
    /// `https://a.com/`, IDN hosts in punycode), which is also what a delivery requests.
    pub webhook_url: String,
    /// In request order; empty when absent.
    pub headers: Vec<HeaderLine>,
    pub payload_format: PayloadFormat,
}

/// `WebhookPatchRequest` (PATCH /v2/webhooks/{webhook_id}): None = leave unchanged.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct WebhookPatch {
    /// Replaces the whole list (`[]` removes every custom header).
    pub headers: Option<Vec<HeaderLine>>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub webhook_url: Option<String>,
    pub payload_format: Option<PayloadFormat>,
    pub status: Option<WebhookStatus>,
}

/// `WebhookConnectivityRequest` (POST /v2/webhooks/{webhook_id}/check_connectivity).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConnectivity {
    pub simulation: Option<Simulation>,
}

/// `V2ProspectEnrollmentCreateRequest` (POST /v2/prospects/events/enrollments).
#[derive(Clone, Debug, PartialEq)]
pub struct EnrollmentCreate {
    pub enrollment_key: String,
    /// Opaque here: an unknown id is the handler's 404, an inactive webhook its 422.
    pub webhook_id: String,
    /// De-duplicated, first occurrence order.
    pub event_types: Vec<EventType>,
    /// De-duplicated, first occurrence order.
    pub prospect_ids: Vec<ProspectId>,
}

/// `V2ProspectEnrollmentPatchRequest` (PATCH /v2/prospects/events/enrollments/{id}): None =
/// leave unchanged.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EnrollmentPatch {
    pub enrollment_key: Option<String>,
    pub webhook_id: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub prospect_ids: Option<Vec<ProspectId>>,
}

// ------------------------------------------------------------------------------------------
// Field validators

/// `request_context: None = None`: only null (or absent).
fn v_none(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<()> {
    if v.is_null() {
        Some(())
    } else {
        errs.push(none_required(loc, v));
        None
    }
}

/// `Annotated[HttpUrl, UrlConstraints(max_length=65536)]`, as pydantic-core validates it: a
/// string (`url_type`), at most 65536 bytes (`url_too_long`), non-empty and parsed by rust-url
/// (`url_parsing` with the parser's message), scheme http or https (`url_scheme`).
fn v_webhook_url(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<String> {
    let Value::String(s) = v else {
        errs.push(url_type(loc, v));
        return None;
    };
    if s.len() > WEBHOOK_URL_MAX_LEN {
        errs.push(url_too_long(loc, v, WEBHOOK_URL_MAX_LEN));
        return None;
    }
    if s.is_empty() {
        errs.push(url_parsing(loc, v, "input is empty"));
        return None;
    }
    let url = match url::Url::parse(s) {
        Ok(url) => url,
        Err(e) => {
            errs.push(url_parsing(loc, v, &e.to_string()));
            return None;
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        errs.push(url_scheme(loc, v, HTTP_SCHEMES));
        return None;
    }
    Some(url.into())
}

fn v_header_line(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<HeaderLine> {
    let s = v_str(v, loc.clone(), errs)?;
    match HeaderLine::parse(&s) {
        Ok(h) => Some(h),
        Err(msg) => {
            errs.push(value_error(loc, v, &msg));
            None
        }
    }
}

fn v_headers(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<Vec<HeaderLine>> {
    v_list(v, loc, errs, 0, Some(WEBHOOK_MAX_HEADERS), v_header_line)
}

fn v_payload_format(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<PayloadFormat> {
    match v.as_str().and_then(PayloadFormat::parse) {
        Some(f) => Some(f),
        None => {
            errs.push(enum_err(
                loc,
                v,
                &PayloadFormat::ALL.map(PayloadFormat::as_str),
            ));
            None
        }
    }
}

fn v_webhook_status(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<WebhookStatus> {
    match v.as_str().and_then(WebhookStatus::parse) {
        Some(s) => Some(s),
        None => {
            errs.push(enum_err(
                loc,
                v,
                &WebhookStatus::ALL.map(WebhookStatus::as_str),
            ));
            None
        }
    }
}

/// `simulation: WebhookSimulation = None`: v1's model, but not nullable.
fn v_simulation_object(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<Simulation> {
    if v.is_null() {
        errs.push(model_attributes_type(loc, v));
        return None;
    }
    v_simulation(v, loc, errs).flatten()
}

fn v_event_types_1000(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<EventType>> {
    v_list(v, loc, errs, 1, Some(ENROLLMENT_MAX_ITEMS), v_event_type).map(dedup)
}

fn v_prospect_ids_1000(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<ProspectId>> {
    v_list(v, loc, errs, 1, Some(ENROLLMENT_MAX_ITEMS), v_prospect_id).map(dedup)
}

// ------------------------------------------------------------------------------------------
// Models

impl WebhookCreate {
    pub const FIELDS: [&'static str; 5] = [
        "headers",
        "name",
        "description",
        "webhook_url",
        "payload_format",
    ];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let headers = m.optional("headers", v_headers);
        let name = m.required("name", v_str);
        let description = m.optional("description", v_str);
        let webhook_url = m.required("webhook_url", v_webhook_url);
        let payload_format = m.optional("payload_format", v_payload_format);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                name: name?,
                description: description?,
                webhook_url: webhook_url?,
                headers: headers?.unwrap_or_default(),
                payload_format: payload_format?.unwrap_or_default(),
            })
        })();
        m.finish(out)
    }
}

impl WebhookPatch {
    pub const FIELDS: [&'static str; 6] = [
        "headers",
        "name",
        "description",
        "webhook_url",
        "payload_format",
        "status",
    ];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let headers = m.optional("headers", v_headers);
        let name = m.optional("name", v_str);
        let description = m.optional("description", v_str);
        let webhook_url = m.optional("webhook_url", v_webhook_url);
        let payload_format = m.optional("payload_format", v_payload_format);
        let status = m.optional("status", v_webhook_status);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                headers: headers?,
                name: name?,
                description: description?,
                webhook_url: webhook_url?,
                payload_format: payload_format?,
                status: status?,
            })
        })();
        m.finish(out)
    }
}

impl WebhookConnectivity {
    pub const FIELDS: [&'static str; 1] = ["simulation"];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let simulation = m.optional("simulation", v_simulation_object);
        m.forbid_extra(&Self::FIELDS);
        let out = simulation.map(|simulation| Self { simulation });
        m.finish(out)
    }
}

impl EnrollmentCreate {
    pub const FIELDS: [&'static str; 5] = [
        "request_context",
        "enrollment_key",
        "webhook_id",
        "event_types",
        "prospect_ids",
    ];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_none);
        let enrollment_key = m.required("enrollment_key", v_key);
        let webhook_id = m.required("webhook_id", v_str);
        let event_types = m.required("event_types", v_event_types_1000);
        let prospect_ids = m.required("prospect_ids", v_prospect_ids_1000);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                enrollment_key: enrollment_key?,
                webhook_id: webhook_id?,
                event_types: event_types?,
                prospect_ids: prospect_ids?,
            })
        })();
        m.finish(rc.and(out))
    }
}

impl EnrollmentPatch {
    pub const FIELDS: [&'static str; 5] = EnrollmentCreate::FIELDS;

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_none);
        let enrollment_key = m.optional("enrollment_key", v_key);
        let webhook_id = m.optional("webhook_id", v_str);
        let event_types = m.optional("event_types", v_event_types_1000);
        let prospect_ids = m.optional("prospect_ids", v_prospect_ids_1000);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                enrollment_key: enrollment_key?,
                webhook_id: webhook_id?,
                event_types: event_types?,
                prospect_ids: prospect_ids?,
            })
        })();
        m.finish(rc.and(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_lines() {
        let h = HeaderLine::parse("Authorization:  Bearer sk-1 \t").unwrap();
        assert_eq!(
            (h.name.as_str(), h.value.as_str()),
            ("Authorization", "Bearer sk-1")
        );
        assert_eq!(h.to_string(), "Authorization: Bearer sk-1");
        assert!(!format!("{h:?}").contains("sk-1"), "{h:?}");
        assert_eq!(HeaderLine::parse("A:").unwrap().value, "");
        assert_eq!(HeaderLine::parse("A: b: c").unwrap().value, "b: c");
        for (line, why) in [
            ("A: b\r\nX-Injected: 1", "control"),
            ("A: b\n", "control"),
            ("A\0: b", "control"),
            ("NoColon", "form"),
            (": v", "token"),
            ("A B: c", "token"),
            ("A : b", "token"),
            ("Ä: b", "token"),
            ("content-TYPE: x", "set by the service"),
            ("Webhook-Signature: v1,x", "set by the service"),
            ("X-Signature: x", "set by the service"),
            ("Host: x", "set by the service"),
        ] {
            let e = HeaderLine::parse(line).unwrap_err();
            assert!(e.contains(why), "{line:?}: {e}");
        }
        let at_cap = format!("A: {}", "x".repeat(WEBHOOK_HEADER_MAX_BYTES - 3));
        assert!(HeaderLine::parse(&at_cap).is_ok());
        // Bytes, not characters.
        let over = format!("A: {}", "é".repeat(WEBHOOK_HEADER_MAX_BYTES / 2 - 1));
        assert!(over.chars().count() < WEBHOOK_HEADER_MAX_BYTES);
        assert!(HeaderLine::parse(&over).unwrap_err().contains("at most"));
    }

    #[test]
    fn create_defaults_and_normalised_url() {
        let w =
            WebhookCreate::from_json(&json!({"name": "n", "webhook_url": "HTTPS://Example.COM"}))
                .unwrap();
        assert_eq!(w.webhook_url, "https://example.com/");
        assert_eq!(w.payload_format, PayloadFormat::Json);
        assert_eq!((w.headers.len(), w.description), (0, None));
        let w = WebhookCreate::from_json(&json!({"name": "n", "webhook_url": "https://a.com/h",
            "headers": ["X-A: 1", "X-A: 2"], "payload_format": "stringified_json"}))
        .unwrap();
        assert_eq!(w.payload_format, PayloadFormat::StringifiedJson);
        assert_eq!(
            w.headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            ["X-A: 1", "X-A: 2"]
        );
    }

    #[test]
    fn patches_are_partial() {
        assert_eq!(
            WebhookPatch::from_json(&json!({})).unwrap(),
            WebhookPatch::default()
        );
        let p = WebhookPatch::from_json(&json!({"status": "disabled", "headers": []})).unwrap();
        assert_eq!(p.status, Some(WebhookStatus::Disabled));
        assert_eq!(p.headers, Some(vec![]));
        assert_eq!(p.name, None);
        let e = EnrollmentPatch::from_json(&json!({"webhook_id": "wh_1"})).unwrap();
        assert_eq!(e.webhook_id.as_deref(), Some("wh_1"));
        assert_eq!((e.event_types, e.prospect_ids), (None, None));
        let c = WebhookConnectivity::from_json(&json!({})).unwrap();
        assert_eq!(c.simulation, None);
        let c = WebhookConnectivity::from_json(&json!({"simulation": {}})).unwrap();
        assert_eq!(c.simulation.unwrap().number_of_events, 1);
    }

    #[test]
    fn statuses() {
        for s in WebhookStatus::ALL {
            assert_eq!(WebhookStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(WebhookStatus::parse("Active"), None);
    }
}
