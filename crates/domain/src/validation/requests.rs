//! The request models of the reference OpenAPI (components/schemas) and their pydantic-exact
//! validation. Pydantic declarations mirrored (see tools/reference_oracle/app.py):
//!
//! ```python
//! class ProspectsEnrollmentsAddRequest(BaseModel, extra="forbid"):
//!     request_context: Optional[dict] = None
//!     enrollment_key: str = Field(min_length=4)
//!     event_types: List[ProspectsEventIdentifier] = Field(min_length=1)
//!     prospect_ids: List[constr(pattern=r"^[a-f0-9]{40}$")] = Field(min_length=1, max_length=20)
//! class ProspectsEnrollmentsUpdateRequest(...)  # + enrollment_id: str (before prospect_ids)
//! class ProspectsEnrollmentsDeleteRequest(...): request_context, enrollment_id: str
//! class ProspectsEventsRequest(...):
//!     request_context; entity_type: EntityType = "prospect"; event_types (as above)
//!     timestamp_to: Optional[str] = None; timestamp_from: Optional[str] = None  # + validator
//!     prospect_ids: Set[constr(pattern=...)] = Field(min_length=1, max_length=40)  # uniqueItems
//! class WebhookAddRequest(...): request_context; partner_id: str; webhook_url: str  # + validator
//! class WebhookSimulation(BaseModel):  # extra ignored (no additionalProperties:false)
//!     event_name: WebhookSimulationEventType = "prospect_changed_role"
//!     number_of_events: int = Field(1, ge=1, le=10)
//!     event_time: Optional[str] = None  # + the timestamp validator
//! class WebhookCheckConnectivityRequest(...): request_context; partner_id: str;
//!     simulation: Optional[WebhookSimulation] = None
//! ```
//!
//! Rules from the SPEC that the OpenAPI does not express are validators raising `ValueError`,
//! i.e. pydantic `value_error` with msg "Value error, <text>" and ctx `{"error": {}}`:
//! * timestamps (`timestamp_from`, `timestamp_to`, `event_time`): ISO 8601 as Python writes it
//!   (`T`, `t` or space; `HH:MM[:SS[.fraction]]`; `Z`, `z`, `±hh:mm`, `±hhmm` or none = UTC; no
//!   leap second) or `YYYY-MM-DD` (see [`parse_timestamp`]);
//! * `webhook_url`: absolute http(s) URL (see [`check_url`]).
//!
//! The OpenAPI lists no required field for WebhookSimulation and shows no defaults: every field
//! is optional; `event_name` defaults to `prospect_changed_role`, `number_of_events` to 1 and
//! `event_time` to the time of the request.

use std::collections::HashSet;

use serde_json::{Map, Value};
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use super::errors::*;
use super::{cap_errors, errors_full, FieldError, Loc};
use crate::ids::{EventType, ProspectId};

pub const PROSPECT_ID_PATTERN: &str = "^[a-f0-9]{40}$";
const KEY_MIN_LEN: usize = 4;
const TS_MSG: &str = "timestamp must be an RFC 3339 date-time or a date in format YYYY-MM-DD";
const URL_MSG: &str = "webhook_url must be an absolute http(s) URL";

/// The `event_name` of a simulation that names none (`simulation: {}`): this service's own
/// most common event, so the receiver sees a realistic prospect notification.
pub const SIMULATION_DEFAULT_EVENT: &str = "prospect_changed_role";

/// `WebhookSimulationEventType`, in the reference's order.
pub const SIMULATION_EVENT_TYPES: [&str; 44] = [
    "award",
    "closing_office",
    "company_award",
    "cost_cutting",
    "decrease_in_all_departments",
    "decrease_in_customer_service_department",
    "decrease_in_engineering_department",
    "decrease_in_marketing_department",
    "decrease_in_operations_department",
    "decrease_in_sales_department",
    "employee_joined_company",
    "funding_round",
    "hiring_in_creative_department",
    "hiring_in_education_department",
    "hiring_in_engineering_department",
    "hiring_in_finance_department",
    "hiring_in_health_department",
    "hiring_in_human_resources_department",
    "hiring_in_legal_department",
    "hiring_in_marketing_department",
    "hiring_in_operations_department",
    "hiring_in_professional_service_department",
    "hiring_in_sales_department",
    "hiring_in_support_department",
    "hiring_in_trade_department",
    "hiring_in_unknown_department",
    "increase_in_all_departments",
    "increase_in_customer_service_department",
    "increase_in_engineering_department",
    "increase_in_marketing_department",
    "increase_in_operations_department",
    "increase_in_sales_department",
    "ipo_announcement",
    "lawsuits_and_legal_issues",
    "merger_and_acquisitions",
    "new_funding_round",
    "new_investment",
    "new_office",
    "new_partnership",
    "new_product",
    "outages_and_security_breaches",
    "prospect_changed_company",
    "prospect_changed_role",
    "prospect_job_start_anniversary",
];

/// `EntityType` of the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EntityType {
    Business,
    #[default]
    Prospect,
}

impl EntityType {
    pub const ALL: [EntityType; 2] = [EntityType::Business, EntityType::Prospect];
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Business => "business",
            EntityType::Prospect => "prospect",
        }
    }
}

/// `ProspectsEnrollmentsAddRequest` (POST /v1/prospects/events/enrollments).
#[derive(Clone, Debug, PartialEq)]
pub struct EnrollmentAdd {
    pub enrollment_key: String,
    /// De-duplicated, first occurrence order.
    pub event_types: Vec<EventType>,
    /// De-duplicated, first occurrence order.
    pub prospect_ids: Vec<ProspectId>,
}

/// `ProspectsEnrollmentsUpdateRequest` (PATCH /v1/prospects/events/enrollments).
#[derive(Clone, Debug, PartialEq)]
pub struct EnrollmentUpdate {
    pub enrollment_key: String,
    pub event_types: Vec<EventType>,
    /// Opaque: any string is accepted (unknown ids are a 404, not a 422).
    pub enrollment_id: String,
    pub prospect_ids: Vec<ProspectId>,
}

/// `ProspectsEnrollmentsDeleteRequest` (DELETE /v1/prospects/events/enrollments).
#[derive(Clone, Debug, PartialEq)]
pub struct EnrollmentDelete {
    pub enrollment_id: String,
}

/// `ProspectsEventsRequest` (POST /v1/prospects/events).
#[derive(Clone, Debug, PartialEq)]
pub struct EventsRequest {
    pub entity_type: EntityType,
    pub event_types: Vec<EventType>,
    /// De-duplicated (it is a set in the reference), first occurrence order.
    pub prospect_ids: Vec<ProspectId>,
    /// A plain date means midnight UTC.
    pub timestamp_from: Option<OffsetDateTime>,
    pub timestamp_to: Option<OffsetDateTime>,
}

/// `WebhookAddRequest` (POST /v1/webhooks).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookAdd {
    pub partner_id: String,
    pub webhook_url: String,
}

/// Body of `PUT /v1/webhooks/{partner_id}` (beyond the reference, for clients that call it to
/// change the URL; same validation style): `webhook_url` as [`WebhookAdd`]'s.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookUpdate {
    pub webhook_url: String,
}

/// `WebhookCheckConnectivityRequest` (POST /v1/webhooks/check_connectivity).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckConnectivity {
    pub partner_id: String,
    pub simulation: Option<Simulation>,
}

/// `WebhookSimulation`.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// One of [`SIMULATION_EVENT_TYPES`].
    pub event_name: String,
    /// 1..=10, default 1.
    pub number_of_events: u32,
    pub event_time: Option<OffsetDateTime>,
}

// ------------------------------------------------------------------------------------------
// Model machinery

pub(super) fn at(base: &[Loc], name: &str) -> Vec<Loc> {
    let mut l = base.to_vec();
    l.push(Loc::Field(name.to_owned()));
    l
}

pub(super) fn idx(base: &[Loc], i: usize) -> Vec<Loc> {
    let mut l = base.to_vec();
    l.push(Loc::Index(i));
    l
}

/// One model being validated: collects errors in field order, then extras.
pub(super) struct Model<'a> {
    input: &'a Value,
    map: &'a Map<String, Value>,
    base: Vec<Loc>,
    errors: Vec<FieldError>,
}

impl<'a> Model<'a> {
    /// `None` (with the error recorded in `errors`) when the input is not a dict.
    pub(super) fn new(
        input: &'a Value,
        base: Vec<Loc>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        match input {
            Value::Object(map) => Some(Model {
                input,
                map,
                base,
                errors: Vec::new(),
            }),
            _ => {
                errors.push(model_attributes_type(base, input));
                None
            }
        }
    }

    /// A required field: `missing` when absent, else `f(value, loc)`.
    pub(super) fn required<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&Value, Vec<Loc>, &mut Vec<FieldError>) -> Option<T>,
    ) -> Option<T> {
        let loc = at(&self.base, name);
        match self.map.get(name) {
            None => {
                self.errors.push(missing(loc, self.input));
                None
            }
            Some(v) => f(v, loc, &mut self.errors),
        }
    }

    /// A field with a default: `Some(None)` when absent.
    pub(super) fn optional<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&Value, Vec<Loc>, &mut Vec<FieldError>) -> Option<T>,
    ) -> Option<Option<T>> {
        let loc = at(&self.base, name);
        match self.map.get(name) {
            None => Some(None),
            Some(v) => f(v, loc, &mut self.errors).map(Some),
        }
    }

    /// `extra="forbid"`: one `extra_forbidden` per unknown key, in input order (up to the cap).
    pub(super) fn forbid_extra(&mut self, fields: &[&str]) {
        for (k, v) in self.map {
            if errors_full(&self.errors) {
                return;
            }
            if !fields.contains(&k.as_str()) {
                self.errors.push(extra_forbidden(at(&self.base, k), v));
            }
        }
    }

    pub(super) fn finish<T>(self, out: Option<T>) -> Result<T, Vec<FieldError>> {
        match out {
            Some(t) if self.errors.is_empty() => Ok(t),
            // A nested model (simulation) has a handful of fields: only the body reaches the cap.
            _ => Err(cap_errors(self.errors)),
        }
    }
}

pub(super) fn body_model(v: &Value) -> Result<Model<'_>, Vec<FieldError>> {
    let mut errors = Vec::new();
    Model::new(v, vec![Loc::from("body")], &mut errors).ok_or(errors)
}

// ------------------------------------------------------------------------------------------
// Field validators (pydantic python-mode semantics: FastAPI validates the dict json.loads made)

pub(super) fn v_str(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            errs.push(string_type(loc, v));
            None
        }
    }
}

pub(super) fn v_key(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<String> {
    let s = v_str(v, loc.clone(), errs)?;
    if s.chars().count() < KEY_MIN_LEN {
        errs.push(string_too_short(loc, v, KEY_MIN_LEN));
        return None;
    }
    Some(s)
}

/// `Optional[dict] = None`; the value itself is not kept.
fn v_request_context(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<()> {
    match v {
        Value::Null | Value::Object(_) => Some(()),
        _ => {
            errs.push(dict_type(loc, v));
            None
        }
    }
}

pub(super) fn v_prospect_id(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<ProspectId> {
    let s = v_str(v, loc.clone(), errs)?;
    match ProspectId::parse(&s) {
        Some(p) => Some(p),
        None => {
            errs.push(pattern_mismatch(loc, v, PROSPECT_ID_PATTERN));
            None
        }
    }
}

fn event_type_names() -> [&'static str; 3] {
    EventType::ALL.map(EventType::as_str)
}

pub(super) fn v_event_type(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<EventType> {
    match v.as_str().and_then(EventType::parse) {
        Some(t) => Some(t),
        None => {
            errs.push(enum_err(loc, v, &event_type_names()));
            None
        }
    }
}

/// `List[T]` with `min_length`/`max_length` (pydantic-core `validate_iter_to_vec`): when the
/// input is longer than `max`, only `too_long` is reported (item errors are dropped); item
/// errors by index; `too_short` only when every item is valid.
pub(super) fn v_list<T>(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
    min: usize,
    max: Option<usize>,
    item: impl Fn(&Value, Vec<Loc>, &mut Vec<FieldError>) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Array(items) = v else {
        errs.push(list_type(loc, v));
        return None;
    };
    if let Some(max) = max {
        if items.len() > max {
            errs.push(too_long(loc, v, "List", max, Some(items.len())));
            return None;
        }
    }
    let mut out = Vec::with_capacity(items.len());
    let mut item_errs = Vec::new();
    for (i, it) in items.iter().enumerate() {
        // Once over the error cap the outcome is settled (item errors, nothing else).
        if errors_full(&item_errs) {
            break;
        }
        if let Some(t) = item(it, idx(&loc, i), &mut item_errs) {
            out.push(t);
        }
    }
    if !item_errs.is_empty() {
        errs.extend(item_errs);
        return None;
    }
    if out.len() < min {
        errs.push(too_short(loc, v, "List", min, out.len()));
        return None;
    }
    Some(out)
}

/// `Set[T]` with `min_length`/`max_length` (pydantic-core `validate_iter_to_set`): valid items
/// are merged; as soon as the set holds more than `max` items, only `too_long` ("not more",
/// actual_length null) is reported. Output keeps first-occurrence order.
fn v_set<T: Clone + Eq + std::hash::Hash>(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
    min: usize,
    max: usize,
    item: impl Fn(&Value, Vec<Loc>, &mut Vec<FieldError>) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Array(items) = v else {
        errs.push(set_type(loc, v));
        return None;
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut item_errs = Vec::new();
    for (i, it) in items.iter().enumerate() {
        // Past the error cap, items are still read: a later `too_long` replaces every error.
        let mut sink = Vec::new();
        let errs_here = if errors_full(&item_errs) {
            &mut sink
        } else {
            &mut item_errs
        };
        if let Some(t) = item(it, idx(&loc, i), errs_here) {
            if seen.insert(t.clone()) {
                out.push(t);
                if out.len() > max {
                    errs.push(too_long(loc, v, "Set", max, None));
                    return None;
                }
            }
        }
    }
    if !item_errs.is_empty() {
        errs.extend(item_errs);
        return None;
    }
    if out.len() < min {
        errs.push(too_short(loc, v, "Set", min, out.len()));
        return None;
    }
    Some(out)
}

pub(super) fn dedup<T: Clone + Eq + std::hash::Hash>(v: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|t| seen.insert(t.clone())).collect()
}

pub(super) fn v_event_types(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<EventType>> {
    v_list(v, loc, errs, 1, None, v_event_type).map(dedup)
}

fn v_prospect_ids_20(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<ProspectId>> {
    v_list(v, loc, errs, 1, Some(20), v_prospect_id).map(dedup)
}

fn v_prospect_ids_set40(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<ProspectId>> {
    v_set(v, loc, errs, 1, 40, v_prospect_id)
}

/// `Optional[str]` + the timestamp validator.
fn v_timestamp(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Option<OffsetDateTime>> {
    if v.is_null() {
        return Some(None);
    }
    let s = v_str(v, loc.clone(), errs)?;
    match parse_timestamp(&s) {
        Some(t) => Some(Some(t)),
        None => {
            errs.push(value_error(loc, v, TS_MSG));
            None
        }
    }
}

/// [`v_timestamp`] for a time that is stored (a simulated event's): it must also lie in the
/// supported range ([`crate::instant`]). Query bounds are not checked: nothing is stored outside
/// the range, so a bound beyond it (`9999-12-31` as "forever") selects what it should.
fn v_stored_timestamp(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Option<OffsetDateTime>> {
    match v_timestamp(v, loc.clone(), errs)? {
        Some(t) if crate::instant::check(t).is_err() => {
            errs.push(value_error(loc, v, &range_msg()));
            None
        }
        t => Some(t),
    }
}

fn range_msg() -> String {
    format!(
        "timestamp must lie in the supported range ({})",
        crate::instant::RANGE_TEXT
    )
}

fn digits(s: &str) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn date_of(s: &str) -> Option<Date> {
    // [0-9]{4}-[0-9]{2}-[0-9]{2}
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    if y < 1 {
        return None;
    }
    let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
    Date::from_calendar_date(y as i32, month, u8::try_from(d).ok()?).ok()
}

/// A timestamp as Python clients write it (`date.isoformat()`, `datetime.isoformat()` naive or
/// aware, `str(datetime)`, `strftime("%z")` offsets): `YYYY-MM-DD` (midnight UTC), or that date,
/// `T`/`t`/space, `HH:MM[:SS[.fraction]]` and an optional offset (`Z`, `z`, `±HH:MM`, `±HHMM`);
/// without an offset the time is read as UTC. No leap second. Every form is one that pydantic's
/// `datetime` accepts too. Mirrors `check_timestamp` of the oracle; the one parser of every
/// timestamp a v1 request carries (events window, replay window, simulation `event_time`).
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    if !s.is_ascii() {
        return None;
    }
    if s.len() == 10 {
        return Some(date_of(s)?.midnight().assume_utc());
    }
    if s.len() < 16 || !matches!(s.as_bytes()[10], b'T' | b't' | b' ') {
        return None;
    }
    let date = date_of(&s[..10])?;
    let (time, rest) = time_of(&s[11..])?;
    Some(date.with_time(time).assume_offset(offset_of(rest)?))
}

/// `HH:MM[:SS[.fraction]]` at the start of `s` (ASCII), and what follows it.
fn time_of(s: &str) -> Option<(Time, &str)> {
    if s.len() < 5 || s.as_bytes()[2] != b':' {
        return None;
    }
    let (h, mi) = (digits(&s[0..2])?, digits(&s[3..5])?);
    let (mut se, mut nanos, mut rest) = (0, 0, &s[5..]);
    if let Some(r) = rest.strip_prefix(':') {
        se = digits(r.get(..2)?)?;
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            let nine: String = r[..n]
                .chars()
                .chain(std::iter::repeat('0'))
                .take(9)
                .collect();
            nanos = nine.parse().ok()?;
            rest = &r[n..];
        }
    }
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let time = Time::from_hms_nano(h as u8, mi as u8, se as u8, nanos).ok()?;
    Some((time, rest))
}

/// The offset after a time: none (naive: UTC), `Z`, `z`, `±HH:MM` or `±HHMM` (at most 23:59).
fn offset_of(s: &str) -> Option<UtcOffset> {
    let sign = match s.as_bytes().first() {
        None => return Some(UtcOffset::UTC),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return matches!(s, "Z" | "z").then_some(UtcOffset::UTC),
    };
    let hm = &s[1..];
    let (oh, om) = match hm.len() {
        5 if hm.as_bytes()[2] == b':' => (digits(&hm[0..2])?, digits(&hm[3..5])?),
        4 => (digits(&hm[0..2])?, digits(&hm[2..4])?),
        _ => return None,
    };
    if oh > 23 || om > 59 {
        return None;
    }
    UtcOffset::from_hms(sign * oh as i8, sign * om as i8, 0).ok()
}

/// Absolute http(s) URL, mirroring `check_url` of the oracle: scheme `http`/`https` (any case),
/// then `://`, then an authority whose host (after an optional `userinfo@`, before an optional
/// `:port` of 1–5 digits <= 65535) is non-empty and does not end with `:`; no ASCII whitespace
/// or control character anywhere.
pub fn check_url(v: &str) -> bool {
    if v.chars().any(|c| (c as u32) <= 0x20 || c as u32 == 0x7f) {
        return false;
    }
    let rest = if v.len() >= 8 && v.is_char_boundary(8) && v[..8].eq_ignore_ascii_case("https://") {
        &v[8..]
    } else if v.len() >= 7 && v.is_char_boundary(7) && v[..7].eq_ignore_ascii_case("http://") {
        &v[7..]
    } else {
        return false;
    };
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = auth.rsplit('@').next().unwrap_or("");
    let (h, port) = match host.rfind(':') {
        Some(i)
            if (1..=5).contains(&(host.len() - i - 1))
                && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            (
                &host[..i],
                Some(host[i + 1..].parse::<u32>().unwrap_or(u32::MAX)),
            )
        }
        _ => (host, None),
    };
    !h.is_empty() && !h.ends_with(':') && port.is_none_or(|p| p <= 65535)
}

fn v_url(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<String> {
    let s = v_str(v, loc.clone(), errs)?;
    if check_url(&s) {
        Some(s)
    } else {
        errs.push(value_error(loc, v, URL_MSG));
        None
    }
}

fn v_entity_type(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<EntityType> {
    match EntityType::ALL
        .into_iter()
        .find(|t| v.as_str() == Some(t.as_str()))
    {
        Some(t) => Some(t),
        None => {
            errs.push(enum_err(loc, v, &EntityType::ALL.map(EntityType::as_str)));
            None
        }
    }
}

fn v_simulation_event(v: &Value, loc: Vec<Loc>, errs: &mut Vec<FieldError>) -> Option<String> {
    match v.as_str().filter(|s| SIMULATION_EVENT_TYPES.contains(s)) {
        Some(s) => Some(s.to_owned()),
        None => {
            errs.push(enum_err(loc, v, &SIMULATION_EVENT_TYPES));
            None
        }
    }
}

/// An integer as pydantic's lax python-mode `int` sees it.
enum PyInt {
    Small(i128),
    /// Beyond i128, with its sign (only compared against the bounds).
    Huge {
        negative: bool,
    },
}

fn lax_int(v: &Value, loc: &[Loc], errs: &mut Vec<FieldError>) -> Option<PyInt> {
    match v {
        Value::Bool(b) => Some(PyInt::Small(*b as i128)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(PyInt::Small(i as i128))
            } else if let Some(u) = n.as_u64() {
                Some(PyInt::Small(u as i128))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 {
                    errs.push(int_from_float(loc.to_vec(), v));
                    return None;
                }
                // pydantic-core float_as_int: only strictly inside the i64 range.
                if (i64::MIN as f64) < f && f < (i64::MAX as f64) {
                    Some(PyInt::Small(f as i128))
                } else {
                    errs.push(int_parsing_size(loc.to_vec(), v));
                    None
                }
            }
        }
        Value::String(s) => {
            // pydantic-core str_as_int: strip whitespace, parse, else strip ".000" and retry.
            let t = s.trim();
            if t.len() > 4300 {
                errs.push(int_parsing_size(loc.to_vec(), v));
                return None;
            }
            let parse = |t: &str| -> Option<PyInt> {
                let (neg, d) = match t.as_bytes().first() {
                    Some(b'-') => (true, &t[1..]),
                    Some(b'+') => (false, &t[1..]),
                    _ => (false, t),
                };
                if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some(match d.parse::<i128>() {
                    Ok(i) => PyInt::Small(if neg { -i } else { i }),
                    Err(_) => PyInt::Huge {
                        negative: neg && d.bytes().any(|b| b != b'0'),
                    },
                })
            };
            let r = parse(t).or_else(|| {
                let i = t.find('.')?;
                t[i + 1..]
                    .bytes()
                    .all(|b| b == b'0')
                    .then(|| parse(&t[..i]))
                    .flatten()
            });
            if r.is_none() {
                errs.push(int_parsing(loc.to_vec(), v));
            }
            r
        }
        _ => {
            errs.push(int_type(loc.to_vec(), v));
            None
        }
    }
}

/// `int = Field(ge=ge, le=le)`.
fn v_bounded_int(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
    ge: i64,
    le: i64,
) -> Option<i64> {
    let i = lax_int(v, &loc, errs)?;
    let (too_big, too_small) = match i {
        PyInt::Small(i) => (i > le as i128, i < ge as i128),
        PyInt::Huge { negative } => (!negative, negative),
    };
    if too_big {
        errs.push(less_than_equal(loc, v, le));
        return None;
    }
    if too_small {
        errs.push(greater_than_equal(loc, v, ge));
        return None;
    }
    match i {
        PyInt::Small(i) => Some(i as i64),
        PyInt::Huge { .. } => None,
    }
}

pub(super) fn v_simulation(
    v: &Value,
    loc: Vec<Loc>,
    errs: &mut Vec<FieldError>,
) -> Option<Option<Simulation>> {
    if v.is_null() {
        return Some(None);
    }
    let mut m = Model::new(v, loc, errs)?;
    let event_name = m.optional("event_name", v_simulation_event);
    let number = m.optional("number_of_events", |v, l, e| v_bounded_int(v, l, e, 1, 10));
    let event_time = m.optional("event_time", v_stored_timestamp);
    // extra="ignore": unknown keys are dropped.
    let out = match (event_name, number, event_time) {
        (Some(event_name), Some(n), Some(t)) => Some(Simulation {
            event_name: event_name.unwrap_or_else(|| SIMULATION_DEFAULT_EVENT.to_owned()),
            number_of_events: n.unwrap_or(1) as u32,
            event_time: t.flatten(),
        }),
        _ => None,
    };
    match m.finish(out) {
        Ok(s) => Some(Some(s)),
        Err(e) => {
            errs.extend(e);
            None
        }
    }
}

// ------------------------------------------------------------------------------------------
// Models

impl EnrollmentAdd {
    pub const FIELDS: [&'static str; 4] = [
        "request_context",
        "enrollment_key",
        "event_types",
        "prospect_ids",
    ];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let enrollment_key = m.required("enrollment_key", v_key);
        let event_types = m.required("event_types", v_event_types);
        let prospect_ids = m.required("prospect_ids", v_prospect_ids_20);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                enrollment_key: enrollment_key?,
                event_types: event_types?,
                prospect_ids: prospect_ids?,
            })
        })();
        m.finish(rc.and(out))
    }
}

impl EnrollmentUpdate {
    pub const FIELDS: [&'static str; 5] = [
        "request_context",
        "enrollment_key",
        "event_types",
        "enrollment_id",
        "prospect_ids",
    ];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let enrollment_key = m.required("enrollment_key", v_key);
        let event_types = m.required("event_types", v_event_types);
        let enrollment_id = m.required("enrollment_id", v_str);
        let prospect_ids = m.required("prospect_ids", v_prospect_ids_20);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                enrollment_key: enrollment_key?,
                event_types: event_types?,
                enrollment_id: enrollment_id?,
                prospect_ids: prospect_ids?,
            })
        })();
        m.finish(rc.and(out))
    }
}

impl EnrollmentDelete {
    pub const FIELDS: [&'static str; 2] = ["request_context", "enrollment_id"];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let enrollment_id = m.required("enrollment_id", v_str);
        m.forbid_extra(&Self::FIELDS);
        let out = enrollment_id.map(|enrollment_id| Self { enrollment_id });
        m.finish(rc.and(out))
    }
}

impl EventsRequest {
    pub const FIELDS: [&'static str; 6] = [
        "request_context",
        "entity_type",
        "event_types",
        "timestamp_to",
        "timestamp_from",
        "prospect_ids",
    ];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let entity_type = m.optional("entity_type", v_entity_type);
        let event_types = m.required("event_types", v_event_types);
        let timestamp_to = m.optional("timestamp_to", v_timestamp);
        let timestamp_from = m.optional("timestamp_from", v_timestamp);
        let prospect_ids = m.required("prospect_ids", v_prospect_ids_set40);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                entity_type: entity_type?.unwrap_or_default(),
                event_types: event_types?,
                prospect_ids: prospect_ids?,
                timestamp_from: timestamp_from?.flatten(),
                timestamp_to: timestamp_to?.flatten(),
            })
        })();
        m.finish(rc.and(out))
    }
}

impl WebhookAdd {
    pub const FIELDS: [&'static str; 3] = ["request_context", "partner_id", "webhook_url"];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let partner_id = m.required("partner_id", v_str);
        let webhook_url = m.required("webhook_url", v_url);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                partner_id: partner_id?,
                webhook_url: webhook_url?,
            })
        })();
        m.finish(rc.and(out))
    }
}

impl WebhookUpdate {
    pub const FIELDS: [&'static str; 2] = ["request_context", "webhook_url"];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let webhook_url = m.required("webhook_url", v_url);
        m.forbid_extra(&Self::FIELDS);
        let out = webhook_url.map(|webhook_url| Self { webhook_url });
        m.finish(rc.and(out))
    }
}

impl CheckConnectivity {
    pub const FIELDS: [&'static str; 3] = ["request_context", "partner_id", "simulation"];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let partner_id = m.required("partner_id", v_str);
        let simulation = m.optional("simulation", v_simulation);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                partner_id: partner_id?,
                simulation: simulation?.flatten(),
            })
        })();
        m.finish(rc.and(out))
    }
}

/// Body of `POST /v1/webhooks/{partner_id}/replay` (beyond the reference; same validation
/// style): `timestamp_from` required, `timestamp_to` optional, `event_types` optional (≥ 1).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayRequest {
    pub timestamp_from: OffsetDateTime,
    pub timestamp_to: Option<OffsetDateTime>,
    pub event_types: Option<Vec<EventType>>,
}

impl ReplayRequest {
    pub const FIELDS: [&'static str; 4] = [
        "request_context",
        "timestamp_from",
        "timestamp_to",
        "event_types",
    ];

    pub fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
        let mut m = body_model(v)?;
        let rc = m.optional("request_context", v_request_context);
        let from = m.required("timestamp_from", |v, loc, errs| {
            if v.is_null() {
                errs.push(super::errors::fe(
                    "value_error",
                    loc,
                    "Value error, timestamp_from is required",
                    v.clone(),
                    Some(serde_json::json!({"error": {}})),
                ));
                return None;
            }
            v_timestamp(v, loc, errs).flatten()
        });
        let to = m.optional("timestamp_to", v_timestamp);
        let event_types = m.optional("event_types", v_event_types);
        m.forbid_extra(&Self::FIELDS);
        let out = (|| {
            Some(Self {
                timestamp_from: from?,
                timestamp_to: to?.flatten(),
                event_types: event_types?,
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
    fn timestamps() {
        assert!(parse_timestamp("2024-02-29").is_some());
        assert!(parse_timestamp("2023-02-29").is_none());
        let t = parse_timestamp("2024-01-01t10:20:30.5-05:30").unwrap();
        assert_eq!(t.unix_timestamp(), 1704124230);
        assert!(parse_timestamp("2024-01-01T10:20:60Z").is_none());
        // Python clients: naive (UTC), space, minutes only, fraction, `%z` offsets.
        let utc = |s: &str| parse_timestamp(s).map(|t| t.unix_timestamp_nanos());
        let at = 1_704_104_430_000_000_000i128; // 2024-01-01T10:20:30Z
        assert_eq!(utc("2024-01-01T10:20:30"), Some(at));
        assert_eq!(utc("2024-01-01 10:20:30"), Some(at));
        assert_eq!(utc("2024-01-01T10:20:30.25"), Some(at + 250_000_000));
        assert_eq!(utc("2024-01-01T10:20"), Some(at - 30_000_000_000));
        assert_eq!(utc("2024-01-01T12:20:30+0200"), Some(at));
        assert_eq!(utc("2024-01-01T12:20+02:00"), Some(at - 30_000_000_000));
        for bad in [
            "2024-01-01T10:20:30+02",
            "2024-01-01T10",
            "2024-01-01T10:20:",
            "2024-01-01T10:20:3",
            "2024-01-01T10:20.5",
            "2024-01-01T10:20:30.",
            "2024-01-01T10:20:30+2:00",
            "2024-01-01T10:20:30+02:0",
            "2024-01-01T10:20:30+24:00",
            "2024-01-01T10:20:30Zz",
            "2024-01-01T10:20:30 ",
        ] {
            assert_eq!(utc(bad), None, "{bad}");
        }
    }

    /// A simulated event's time is stored: outside the supported range it is a `value_error`
    /// (it used to be accepted); the events query's bounds are not (nothing is stored beyond).
    #[test]
    fn stored_timestamps_lie_in_the_supported_range() {
        let sim = |t: &str| {
            CheckConnectivity::from_json(&json!({"partner_id": "p",
                "simulation": {"event_name": "award", "event_time": t}}))
        };
        assert!(sim("1900-01-01T00:00:00Z").is_ok());
        assert!(sim("2200-12-31T23:59:59.999999999Z").is_ok());
        for t in ["1899-12-31T23:59:59Z", "2201-01-01", "9999-12-31T23:59:59Z"] {
            let errs = sim(t).err().unwrap();
            let e = serde_json::to_value(&errs).unwrap();
            assert_eq!(e[0]["type"], "value_error", "{t}: {e}");
            assert_eq!(e[0]["loc"], json!(["body", "simulation", "event_time"]));
            assert_eq!(
                e[0]["msg"],
                "Value error, timestamp must lie in the supported range (1900-01-01 to 2200-12-31, UTC)"
            );
        }
        let events = EventsRequest::from_json(&json!({"event_types": ["prospect_changed_role"],
            "prospect_ids": ["a".repeat(40)], "timestamp_from": "0001-01-01",
            "timestamp_to": "9999-12-31"}));
        assert!(events.is_ok());
    }

    #[test]
    fn urls() {
        assert!(check_url("https://example.com/hook"));
        assert!(check_url("HTTP://a:65535"));
        assert!(!check_url("http://a:65536"));
        assert!(!check_url("ftp://a"));
        assert!(!check_url("http://:80"));
        assert!(!check_url("https://exa mple.com"));
    }

    #[test]
    fn add_dedupes_in_order() {
        let a = "b".repeat(40);
        let b = "a".repeat(40);
        let r = EnrollmentAdd::from_json(&json!({
            "enrollment_key": "abcd",
            "event_types": ["prospect_changed_company", "prospect_changed_role", "prospect_changed_company"],
            "prospect_ids": [a, b, a],
        }))
        .unwrap();
        assert_eq!(
            r.event_types,
            vec![EventType::ChangedCompany, EventType::ChangedRole]
        );
        assert_eq!(
            r.prospect_ids
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            vec![a, b]
        );
    }
}
