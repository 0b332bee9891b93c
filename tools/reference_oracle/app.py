"""Reference oracle: a FastAPI + pydantic v2 app whose request models mirror the request schemas
of /work/shared/reference/partner-service-prospect-events.openapi.json (components/schemas).

It only validates: every endpoint answers 200 {"ok": true} once the body validated, so the 422
bodies it produces are exactly what the reference server (FastAPI + pydantic v2) returns.

Modelling choices (also documented in crates/domain/src/validation/mod.rs):
* `request_context`: `Optional[dict] = None`  (OpenAPI: type object, nullable).
* `prospect_ids` of ProspectsEventsRequest has `uniqueItems: true`. Both `Set[constr]` (with
  min/max length) and `List[constr]` + `json_schema_extra={"uniqueItems": True}` emit exactly the
  OpenAPI's schema (checked with model_json_schema()). `Set` is the declaration pydantic itself
  maps to uniqueItems (a List needs a hand-written schema override), so we use `Set`. Its wire
  behaviour differs from a list: duplicates are merged before the length checks, max_length is
  checked while adding *valid* items ("Set should have at most 40 items after validation, not
  more", ctx actual_length null, item errors dropped), a non-list gives `set_type`.
* Rules the SPEC states but the OpenAPI does not express are declared the natural pydantic way:
  - `webhook_url`: a field_validator raising ValueError when the URL is not absolute http(s)
    -> `value_error` "Value error, ..." (the OpenAPI keeps `type: string`, so it is not HttpUrl).
  - `timestamp_from/to` (OpenAPI anyOf[date-time, string], nullable): `Optional[str]` +
    field_validator (ISO 8601 as Python writes it, naive = UTC, or YYYY-MM-DD) -> `value_error`. (A literal
    `Union[datetime, str]` would accept any string and unix numbers; the SPEC narrows it.)
  - `WebhookSimulation.number_of_events`: `Field(1, ge=1, le=10)`.
* WebhookSimulation: the OpenAPI marks no field required and shows no default and no
  additionalProperties:false. Every field is optional (`simulation: {}` is valid, as published
  clients send it): `event_name` defaults to `prospect_changed_role`, `number_of_events` to 1,
  `event_time` to the request's time; unknown keys are ignored (pydantic default).
"""
from __future__ import annotations

import datetime as _dt
import re
from enum import Enum
from typing import Annotated, List, Optional, Set

from fastapi import FastAPI
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints,
                      UrlConstraints, field_validator)


class ProspectsEventIdentifier(str, Enum):
    prospect_changed_role = "prospect_changed_role"
    prospect_changed_company = "prospect_changed_company"
    prospect_job_start_anniversary = "prospect_job_start_anniversary"


class EntityType(str, Enum):
    business = "business"
    prospect = "prospect"


SIM_NAMES = [
    "award", "closing_office", "company_award", "cost_cutting", "decrease_in_all_departments",
    "decrease_in_customer_service_department", "decrease_in_engineering_department",
    "decrease_in_marketing_department", "decrease_in_operations_department",
    "decrease_in_sales_department", "employee_joined_company", "funding_round",
    "hiring_in_creative_department", "hiring_in_education_department",
    "hiring_in_engineering_department", "hiring_in_finance_department",
    "hiring_in_health_department", "hiring_in_human_resources_department",
    "hiring_in_legal_department", "hiring_in_marketing_department",
    "hiring_in_operations_department", "hiring_in_professional_service_department",
    "hiring_in_sales_department", "hiring_in_support_department", "hiring_in_trade_department",
    "hiring_in_unknown_department", "increase_in_all_departments",
    "increase_in_customer_service_department", "increase_in_engineering_department",
    "increase_in_marketing_department", "increase_in_operations_department",
    "increase_in_sales_department", "ipo_announcement", "lawsuits_and_legal_issues",
    "merger_and_acquisitions", "new_funding_round", "new_investment", "new_office",
    "new_partnership", "new_product", "outages_and_security_breaches",
    "prospect_changed_company", "prospect_changed_role", "prospect_job_start_anniversary",
]
WebhookSimulationEventType = Enum("WebhookSimulationEventType", {n: n for n in SIM_NAMES}, type=str)

ProspectIdStr = Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{40}$")]

# The timestamp and URL rules are written out by hand (ASCII-only, no Python-version-dependent
# parser such as datetime.fromisoformat / urlsplit) so that the Rust side can mirror them exactly.
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DT_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]+)?)?"
    r"([Zz]|[+-]([0-9]{2}):?([0-9]{2}))?"
)
TS_MSG = "timestamp must be an RFC 3339 date-time or a date in format YYYY-MM-DD"


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _date_ok(y: int, m: int, d: int) -> bool:
    return y >= 1 and 1 <= m <= 12 and 1 <= d <= _days_in_month(y, m)


def check_timestamp(v: Optional[str]) -> Optional[str]:
    """ISO 8601 as Python clients write it: YYYY-MM-DD, or a date-time with T, t or space,
    HH:MM[:SS[.fraction]] and an optional offset (Z, z, +hh:mm, +hhmm; none = naive, read as
    UTC); no leap second. Every accepted form is one pydantic's `datetime` accepts too.
    Raises ValueError -> pydantic `value_error`."""
    if v is None:
        return v
    m = _DATE_RE.fullmatch(v)
    if m and _date_ok(int(m[1]), int(m[2]), int(m[3])):
        return v
    m = _DT_RE.fullmatch(v)
    if m and _date_ok(int(m[1]), int(m[2]), int(m[3])) and int(m[4]) <= 23 and int(m[5]) <= 59 \
            and (m[6] is None or int(m[6]) <= 59) \
            and (m[9] is None or (int(m[9]) <= 23 and int(m[10]) <= 59)):
        return v
    raise ValueError(TS_MSG)


URL_MSG = "webhook_url must be an absolute http(s) URL"


def check_url(v: str) -> str:
    """Absolute http(s) URL: scheme http/https (any case) + "://" + authority with a non-empty
    host (after an optional userinfo@ and an optional :port of 1-5 digits <= 65535), no ASCII
    whitespace/control characters anywhere. Raises ValueError -> pydantic `value_error`."""
    ok = False
    if not any(ord(c) <= 0x20 or ord(c) == 0x7F for c in v):
        low = v[:8].lower()
        rest = v[8:] if low.startswith("https://") else v[7:] if low.startswith("http://") else None
        if rest is not None:
            auth = re.split(r"[/?#]", rest, maxsplit=1)[0]
            host = auth.rsplit("@", 1)[-1]
            pm = re.fullmatch(r"(.*?)(?::([0-9]{1,5}))?", host)
            h, port = pm[1], pm[2]
            ok = h != "" and not h.endswith(":") and (port is None or int(port) <= 65535)
    if not ok:
        raise ValueError(URL_MSG)
    return v


class Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProspectsEnrollmentsAddRequest(Forbid):
    request_context: Optional[dict] = None
    enrollment_key: str = Field(min_length=4)
    event_types: List[ProspectsEventIdentifier] = Field(min_length=1)
    prospect_ids: List[ProspectIdStr] = Field(min_length=1, max_length=20)


class ProspectsEnrollmentsUpdateRequest(Forbid):
    request_context: Optional[dict] = None
    enrollment_key: str = Field(min_length=4)
    event_types: List[ProspectsEventIdentifier] = Field(min_length=1)
    enrollment_id: str
    prospect_ids: List[ProspectIdStr] = Field(min_length=1, max_length=20)


class ProspectsEnrollmentsDeleteRequest(Forbid):
    request_context: Optional[dict] = None
    enrollment_id: str


class ProspectsEventsRequest(Forbid):
    request_context: Optional[dict] = None
    entity_type: EntityType = EntityType.prospect
    event_types: List[ProspectsEventIdentifier] = Field(min_length=1)
    timestamp_to: Optional[str] = None
    timestamp_from: Optional[str] = None
    prospect_ids: Set[ProspectIdStr] = Field(min_length=1, max_length=40)

    @field_validator("timestamp_to", "timestamp_from")
    @classmethod
    def _ts(cls, v: Optional[str]) -> Optional[str]:
        return check_timestamp(v)


class WebhookAddRequest(Forbid):
    request_context: Optional[dict] = None
    partner_id: str
    webhook_url: str

    @field_validator("webhook_url")
    @classmethod
    def _abs_http(cls, v: str) -> str:
        return check_url(v)


class WebhookSimulation(BaseModel):
    # No additionalProperties:false in the OpenAPI -> pydantic default extra="ignore".
    # The OpenAPI requires no field: each has a default (event_time: the request's time).
    event_name: WebhookSimulationEventType = WebhookSimulationEventType.prospect_changed_role
    number_of_events: int = Field(1, ge=1, le=10,
                                  description="Number of events to generate in simulation (between 1 and 10)")
    # OpenAPI says format date-time; declared like the timestamps of ProspectsEventsRequest
    # (str + RFC 3339 validator) rather than `datetime`, whose lax parser (unix numbers,
    # speedate messages) we do not reproduce.
    event_time: Optional[str] = None

    @field_validator("event_time")
    @classmethod
    def _et(cls, v: Optional[str]) -> Optional[str]:
        return check_timestamp(v)


class WebhookCheckConnectivityRequest(Forbid):
    request_context: Optional[dict] = None
    partner_id: str
    simulation: Optional[WebhookSimulation] = None


# --- v2 (Partner Service 0.3.29, /work/shared/reference/v2/openapi-0.3.29.v2-webhooks-events.subset.json)
# Modelling choices (see README.md, "v2 models"):
# * A field is nullable only where the schema says so (`type: null` for request_context); every
#   other optional field is `<type> = None` (pydantic v2 does not validate defaults, and emits
#   the schema's plain type), so an explicit null is a type error.
# * webhook_url: `format: uri, minLength: 1, maxLength: 65536` is exactly pydantic's HttpUrl
#   with UrlConstraints(max_length=65536) (model_json_schema() checked). Its errors are
#   pydantic-core's url_type / url_too_long (bytes) / url_parsing (rust-url's message) /
#   url_scheme.
# * headers (schema: string[]): the item rules are ours (AfterValidator -> value_error at
#   ["body", "headers", i]); the count cap is Field(max_length) -> too_long. The caps are
#   domain::defaults::WEBHOOK_MAX_HEADERS / WEBHOOK_HEADER_MAX_BYTES.

class PayloadFormat(str, Enum):
    json = "json"
    stringified_json = "stringified_json"


class WebhookStatus(str, Enum):
    active = "active"
    disabled = "disabled"


WebhookUrl = Annotated[HttpUrl, UrlConstraints(max_length=65536)]

WEBHOOK_MAX_HEADERS = 20
WEBHOOK_HEADER_MAX_BYTES = 4096
# Set by the service on every delivery (content and framing, signatures): never overridable.
RESERVED_HEADERS = [
    "content-type", "content-length", "host", "transfer-encoding", "connection", "keep-alive",
    "upgrade", "te", "trailer", "expect", "x-signature", "x-timestamp", "x-delivery-id",
    "x-event-id", "webhook-id", "webhook-timestamp", "webhook-signature",
]
TCHARS = set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def check_header(v: str) -> str:
    """A custom header line "Name: value": at most WEBHOOK_HEADER_MAX_BYTES bytes of UTF-8, no
    control character but HTAB (so no CR/LF), a ':' after a non-empty HTTP token name (RFC 9110
    tchar; no space before the colon), a name not in RESERVED_HEADERS (any case). The value is
    what follows the colon without surrounding spaces/tabs; it may be empty.
    Raises ValueError -> pydantic `value_error`."""
    if len(v.encode("utf-8", "surrogatepass")) > WEBHOOK_HEADER_MAX_BYTES:
        raise ValueError(f"header must be at most {WEBHOOK_HEADER_MAX_BYTES} bytes")
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in v):
        raise ValueError("header must not contain CR, LF or other control characters")
    name, sep, _value = v.partition(":")
    if not sep:
        raise ValueError("header must have the form 'Name: value'")
    if not name or any(c not in TCHARS for c in name):
        raise ValueError("header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)")
    if name.lower() in RESERVED_HEADERS:
        raise ValueError(f"header {name} is set by the service and cannot be sent as a custom header")
    return v


HeaderLine = Annotated[str, AfterValidator(check_header)]


class WebhookCreateRequest(Forbid):
    headers: List[HeaderLine] = Field(None, max_length=WEBHOOK_MAX_HEADERS)
    name: str
    description: str = None
    webhook_url: WebhookUrl
    payload_format: PayloadFormat = PayloadFormat.json


class WebhookPatchRequest(Forbid):
    headers: List[HeaderLine] = Field(None, max_length=WEBHOOK_MAX_HEADERS)
    name: str = None
    description: str = None
    webhook_url: WebhookUrl = None
    payload_format: PayloadFormat = None
    status: WebhookStatus = None


class WebhookConnectivityRequest(Forbid):
    simulation: WebhookSimulation = None


class V2ProspectEnrollmentCreateRequest(Forbid):
    request_context: None = None
    enrollment_key: str = Field(min_length=4)
    webhook_id: str
    event_types: List[ProspectsEventIdentifier] = Field(min_length=1, max_length=1000)
    prospect_ids: List[ProspectIdStr] = Field(min_length=1, max_length=1000)


class V2ProspectEnrollmentPatchRequest(Forbid):
    request_context: None = None
    enrollment_key: str = Field(None, min_length=4)
    webhook_id: str = None
    event_types: List[ProspectsEventIdentifier] = Field(None, min_length=1, max_length=1000)
    prospect_ids: List[ProspectIdStr] = Field(None, min_length=1, max_length=1000)


app = FastAPI()


def ok(_body) -> dict:
    return {"ok": True}


@app.post("/v1/prospects/events/enrollments")
def enroll_add(body: ProspectsEnrollmentsAddRequest):
    return ok(body)


@app.patch("/v1/prospects/events/enrollments")
def enroll_update(body: ProspectsEnrollmentsUpdateRequest):
    return ok(body)


@app.delete("/v1/prospects/events/enrollments")
def enroll_delete(body: ProspectsEnrollmentsDeleteRequest):
    return ok(body)


@app.post("/v1/prospects/events")
def events(body: ProspectsEventsRequest):
    return ok(body)


@app.post("/v1/webhooks")
def webhook_add(body: WebhookAddRequest):
    return ok(body)


@app.post("/v1/webhooks/check_connectivity")
def check_connectivity(body: WebhookCheckConnectivityRequest):
    return ok(body)


@app.post("/v2/webhooks")
def v2_webhook_create(body: WebhookCreateRequest):
    return ok(body)


@app.patch("/v2/webhooks/wh")
def v2_webhook_patch(body: WebhookPatchRequest):
    return ok(body)


@app.post("/v2/webhooks/wh/check_connectivity")
def v2_webhook_connectivity(body: WebhookConnectivityRequest):
    return ok(body)


@app.post("/v2/prospects/events/enrollments")
def v2_enrollment_create(body: V2ProspectEnrollmentCreateRequest):
    return ok(body)


@app.patch("/v2/prospects/events/enrollments/en")
def v2_enrollment_patch(body: V2ProspectEnrollmentPatchRequest):
    return ok(body)
