//! Plain data crossing the store boundary.

use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use time::OffsetDateTime;

/// The (tenant, partner) every partner-owned row belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub tenant: TenantId,
    pub partner: PartnerId,
}

/// Who an API key belongs to.
#[derive(Clone, Debug)]
pub struct Principal {
    pub tenant: TenantId,
    pub default_partner: PartnerId,
    pub admin: bool,
    /// Every partner id the tenant owns.
    pub partners: Vec<PartnerId>,
}

#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub key_hash: [u8; 32],
    /// Leading characters of the key, kept in clear to list and revoke it.
    pub prefix: String,
    pub tenant: TenantId,
    pub partner: PartnerId,
    pub admin: bool,
    pub created_at: OffsetDateTime,
}

impl NewApiKey {
    /// Issues a new key from the OS-seeded CSPRNG: the key itself (shown once, never stored)
    /// and the record to store (its hash and display prefix).
    pub fn issue(
        tenant: TenantId,
        partner: PartnerId,
        admin: bool,
        created_at: OffsetDateTime,
    ) -> (String, NewApiKey) {
        let key = domain::keys::format_key(rand::random());
        let record = NewApiKey {
            key_hash: domain::keys::hash_key(key.as_bytes()),
            prefix: domain::keys::display_prefix(&key),
            tenant,
            partner,
            admin,
            created_at,
        };
        (key, record)
    }
}

#[derive(Clone, Debug)]
pub struct ApiKeyInfo {
    pub prefix: String,
    pub tenant: TenantId,
    pub partner: PartnerId,
    pub admin: bool,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What a client sets on an enrollment (POST and PATCH), already validated and de-duplicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentSpec {
    pub enrollment_key: String,
    pub event_types: Vec<EventType>,
    pub prospect_ids: Vec<ProspectId>,
}

#[derive(Clone, Debug)]
pub struct NewEnrollment {
    pub enrollment_id: EnrollmentId,
    pub spec: EnrollmentSpec,
    /// Where its notifications go: [`LEGACY_WEBHOOK_ID`] (v1) or a v2 webhook of the scope,
    /// which must exist (`NotFound`) and be active ([`WEBHOOK_NOT_ACTIVE`]).
    pub webhook_id: String,
    pub now: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    pub enrollment_id: EnrollmentId,
    pub spec: EnrollmentSpec,
    /// [`LEGACY_WEBHOOK_ID`] for enrollments made through v1.
    pub webhook_id: String,
    /// Paused enrollments (their webhook was force-deleted) queue no notifications.
    pub paused: bool,
}

/// A v2 PATCH of an enrollment: the fields given replace the stored ones; a `webhook_id`
/// re-points the enrollment and makes it active again (the webhook must be active).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnrollmentPatch {
    pub enrollment_key: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub prospect_ids: Option<Vec<ProspectId>>,
    pub webhook_id: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct EnrollmentQuery {
    pub enrollment_key: Option<String>,
    pub prospect_id: Option<ProspectId>,
    /// `None` returns everything (the reference behaviour).
    pub limit: Option<u32>,
    /// Opaque position returned as `next_cursor` by a previous page.
    pub cursor: Option<Cursor>,
}

/// Position in the creation order of a partner's enrollments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    pub fn encode(self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("e1:{}", self.0))
    }

    pub fn decode(s: &str) -> Option<Self> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = std::str::from_utf8(&raw).ok()?;
        let n: i64 = text.strip_prefix("e1:")?.parse().ok()?;
        (n >= 0).then_some(Cursor(n))
    }
}

#[derive(Clone, Debug, Default)]
pub struct EnrollmentPage {
    pub enrollments: Vec<Enrollment>,
    /// Set when a limit was given and more rows may follow.
    pub next_cursor: Option<Cursor>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoveringEnrollment {
    pub tenant: TenantId,
    pub partner: PartnerId,
    pub enrollment_id: EnrollmentId,
    pub enrollment_key: String,
    /// The webhook its notifications go to (decided here, at queueing).
    pub webhook_id: String,
}

/// Encodes event types for storage: reference names, comma-separated, in client order.
pub(crate) fn encode_event_types(types: &[EventType]) -> String {
    let mut s = String::with_capacity(types.len() * 32);
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(t.as_str());
    }
    s
}

pub(crate) fn decode_event_types(s: &str) -> Vec<EventType> {
    s.split(',').filter_map(EventType::parse).collect()
}

/// Encodes prospect ids for the denormalised list column: 40-hex ids concatenated.
pub(crate) fn encode_prospect_ids(ids: &[ProspectId]) -> String {
    let mut s = Vec::with_capacity(ids.len() * 40);
    for id in ids {
        s.extend_from_slice(&id.hex());
    }
    // Hex digits are ASCII; the fallback is never taken.
    String::from_utf8(s).unwrap_or_default()
}

/// Inverse of [`encode_prospect_ids`] (the column holds only what that function wrote).
pub(crate) fn decode_prospect_ids(s: &str) -> Vec<ProspectId> {
    s.as_bytes()
        .chunks_exact(40)
        .filter_map(|c| {
            let mut id = [0u8; 20];
            hex::decode_to_slice(c, &mut id).ok()?;
            Some(ProspectId(id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor(42);
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
    }

    #[test]
    fn list_columns_round_trip() {
        let ids = vec![
            ProspectId::parse("20ae6cbf564ee683e66685e429844a5ff8ffc30f").unwrap(),
            ProspectId::parse("4c485f009d59e319dc039cdf3e935b85014e6a33").unwrap(),
        ];
        assert_eq!(decode_prospect_ids(&encode_prospect_ids(&ids)), ids);
        let types = vec![EventType::JobStartAnniversary, EventType::ChangedRole];
        assert_eq!(decode_event_types(&encode_event_types(&types)), types);
    }
}

// --- Events -----------------------------------------------------------------------------------

/// How events are made, at ingestion and by the anniversary scanner: what "now" is (for the
/// anniversaries due), and which events are kept at all.
#[derive(Clone, Copy, Debug)]
pub struct IngestOptions {
    pub now: time::OffsetDateTime,
    pub anniversary_lead_days: u32,
    /// Events whose `event_time` is before `now` minus this are neither stored nor notified
    /// (counted as `events_beyond_retention`): retention ([`crate::Store::prune_events`] with
    /// [`retention_cutoff`]) deletes exactly those, so storing them would only announce what
    /// the next prune removes. `None` keeps every event.
    pub event_retention: Option<std::time::Duration>,
}

/// The instant before which events are not kept: `now - retention` (`None` when that is
/// before any representable time, i.e. everything is kept).
pub fn retention_cutoff(
    now: time::OffsetDateTime,
    retention: std::time::Duration,
) -> Option<time::OffsetDateTime> {
    time::Duration::try_from(retention)
        .ok()
        .and_then(|r| now.checked_sub(r))
}

impl IngestOptions {
    /// Removes the events retention would delete (see [`Self::event_retention`]); returns
    /// how many. The one place both backends apply the rule, at ingestion and in the scanner.
    pub(crate) fn drop_beyond_retention(
        &self,
        events: &mut Vec<domain::detect::DetectedEvent>,
    ) -> u64 {
        let Some(cutoff) = self
            .event_retention
            .and_then(|r| retention_cutoff(self.now, r))
        else {
            return 0;
        };
        let before = events.len();
        events.retain(|e| e.event_time >= cutoff);
        (before - events.len()) as u64
    }
}

/// Counts of one ingestion (a batch, or a whole file when added up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// First snapshot of a prospect.
    pub baselines: u64,
    /// Older than or identical to the current state, or newer without any event.
    pub unchanged: u64,
    /// Became the current state and produced at least one event.
    pub changed: u64,
    /// Events stored (re-detected events with a known id are not counted).
    pub events_created: u64,
    pub notifications_queued: u64,
    /// Events detected but older than the retention: neither stored nor notified.
    pub events_beyond_retention: u64,
}

impl std::ops::AddAssign for IngestCounts {
    fn add_assign(&mut self, o: Self) {
        self.baselines += o.baselines;
        self.unchanged += o.unchanged;
        self.changed += o.changed;
        self.events_created += o.events_created;
        self.notifications_queued += o.notifications_queued;
        self.events_beyond_retention += o.events_beyond_retention;
    }
}

/// A stored event as the events API returns it.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub event_id: String,
    pub event_type: domain::EventType,
    pub event_time: time::OffsetDateTime,
    pub prospect_id: ProspectId,
    /// The event's `data` object exactly as stored (passed through to responses unparsed).
    pub data: Box<serde_json::value::RawValue>,
}

impl PartialEq for StoredEvent {
    fn eq(&self, o: &Self) -> bool {
        (
            self.event_id.as_str(),
            self.event_type,
            self.event_time,
            self.prospect_id,
        ) == (
            o.event_id.as_str(),
            o.event_type,
            o.event_time,
            o.prospect_id,
        ) && self.data.get() == o.data.get()
    }
}

impl StoredEvent {
    /// `data` parsed (for tests and tools; responses pass the stored text through).
    pub fn data_value(&self) -> serde_json::Value {
        serde_json::from_str(self.data.get()).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone, Debug)]
pub struct EventQuery {
    pub prospect_ids: Vec<ProspectId>,
    pub event_types: Vec<domain::EventType>,
    /// Inclusive bounds.
    pub from: time::OffsetDateTime,
    pub to: Option<time::OffsetDateTime>,
}

impl EventQuery {
    /// The wanted types as one mask of their bits (`event_type & mask != 0` in SQL).
    pub(crate) fn type_mask(&self) -> i32 {
        i32::from(domain::event_mask(&self.event_types))
    }

    /// The inclusive bounds in unix seconds (no upper bound: `i64::MAX`).
    pub(crate) fn unix_bounds(&self) -> (i64, i64) {
        let to = self.to.map_or(i64::MAX, |t| t.unix_timestamp());
        (self.from.unix_timestamp(), to)
    }
}

/// What one anniversary scan did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// The window scanned: anniversaries with after < date <= until.
    pub after: Option<time::Date>,
    pub until: Option<time::Date>,
    pub candidates: u64,
    pub events_created: u64,
    pub notifications_queued: u64,
}

/// One outbox row, for inspection (tests, CLI) and the delivery log.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub delivery_id: String,
    pub event_id: String,
    pub event_name: String,
    pub tenant: TenantId,
    pub partner: PartnerId,
    pub enrollment_id: Option<String>,
    pub enrollment_key: String,
    pub webhook_id: String,
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn code(self) -> i64 {
        match self {
            DeliveryStatus::Pending => 0,
            DeliveryStatus::Delivered => 1,
            DeliveryStatus::Failed => 2,
        }
    }

    pub fn from_code(c: i64) -> Self {
        match c {
            1 => DeliveryStatus::Delivered,
            2 => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// `next_attempt_at` of notifications that wait for their webhook (none registered, disabled or
/// deleted): out of the claim index's due range until a registration moves them back to now.
pub const PARKED: i64 = i64::MAX;

pub use domain::notification::delivery_id_for;

/// The JSON body POSTed to the partner's webhook for one (event, enrollment): the
/// [`domain::notification::Notification`] of the event, addressed to `to`.
/// The v1 body for the legacy webhook, the v2 body (with `webhook_id`) for a v2 one.
pub fn notification_payload(
    event: &domain::detect::DetectedEvent,
    to: &CoveringEnrollment,
) -> serde_json::Value {
    let n = domain::notification::Notification::event(
        event,
        &to.tenant,
        &to.partner,
        &to.enrollment_id,
        &to.enrollment_key,
    );
    if to.webhook_id == LEGACY_WEBHOOK_ID {
        n.to_json()
    } else {
        n.to_json_v2(&to.webhook_id)
    }
}

// --- Webhooks and delivery ------------------------------------------------------------------

/// A webhook of a scope: the partner's v1 registration (`webhook_id` = [`LEGACY_WEBHOOK_ID`])
/// or one of its v2 webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub webhook_id: String,
    /// None for the legacy row.
    pub name: Option<String>,
    pub description: Option<String>,
    /// `"Name: value"` lines sent with every delivery (validated by the API).
    pub headers: Vec<String>,
    pub payload_format: PayloadFormat,
    /// The secret replaced by the last rotation, still signing `webhook-signature` until
    /// `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<time::OffsetDateTime>,
    pub webhook_url: String,
    pub secret: String,
    pub generation: i64,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// When the webhook was disabled (unix milliseconds); None while enabled, and for webhooks
    /// disabled before the time was recorded.
    pub disabled_at: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_modified_time: i64,
}

impl Webhook {
    /// The partner's v1 webhook, read-only through v2.
    pub fn is_legacy(&self) -> bool {
        self.webhook_id == LEGACY_WEBHOOK_ID
    }

    /// The previous secret if a send at `now` still signs `webhook-signature` with it.
    pub fn previous_secret_at(&self, now: time::OffsetDateTime) -> Option<&str> {
        self.previous_secret
            .as_deref()
            .filter(|_| rotation_grace_lasts(self.previous_secret_until, now))
    }

    /// The JSON body of `n` as this webhook receives it (v1's for the legacy webhook).
    pub fn body_json(&self, n: &domain::notification::Notification) -> serde_json::Value {
        if self.is_legacy() {
            n.to_json()
        } else {
            n.to_json_v2(&self.webhook_id)
        }
    }
}

/// The id of every scope's v1 webhook (`legacy: true` in v2); enrollments and notifications
/// with it go to the partner's v1 registration, whichever it is when they are sent. v2
/// webhooks get [`new_webhook_id`]s, so the two never meet.
pub const LEGACY_WEBHOOK_ID: &str = "wh_legacy";
/// At most this many v2 webhooks per scope (the legacy row is not counted).
pub const MAX_WEBHOOKS: usize = domain::defaults::MAX_WEBHOOKS_PER_TENANT;
/// `StoreError::Conflict` texts of the webhook rules (the API answers each differently).
pub const WEBHOOK_CAP_REACHED: &str = "webhook limit reached";
pub const WEBHOOK_NAME_TAKEN: &str = "webhook name already used";
pub const WEBHOOK_NOT_ACTIVE: &str = "webhook is not active";
pub const WEBHOOK_READ_ONLY: &str = "the legacy webhook is read-only";

/// The rotation grace rule, once: a replaced secret still signs `webhook-signature` at `now`
/// while `now` is before the end of its grace (`until`).
pub fn rotation_grace_lasts(
    until: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> bool {
    until.is_some_and(|u| u > now)
}

/// A fresh v2 webhook id: `wh_` and 16 hex digits from the CSPRNG.
pub fn new_webhook_id() -> String {
    format!("wh_{}", hex::encode(rand::random::<[u8; 8]>()))
}

pub use domain::notification::PayloadFormat;

/// One webhook of one scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WebhookKey {
    pub scope: Scope,
    pub webhook_id: String,
}

impl WebhookKey {
    pub fn new(scope: &Scope, webhook_id: &str) -> Self {
        Self {
            scope: scope.clone(),
            webhook_id: webhook_id.to_string(),
        }
    }

    /// The partner's v1 webhook.
    pub fn legacy(scope: &Scope) -> Self {
        Self::new(scope, LEGACY_WEBHOOK_ID)
    }
}

/// A v2 webhook to create.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub webhook_id: String,
    pub name: String,
    pub description: Option<String>,
    pub headers: Vec<String>,
    pub payload_format: PayloadFormat,
    pub webhook_url: String,
    pub secret: String,
}

/// A v2 PATCH of a webhook: the fields given replace the stored ones; `enabled` is the v2
/// `status` (enabling makes its waiting notifications due, disabling parks them).
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub headers: Option<Vec<String>>,
    pub payload_format: Option<PayloadFormat>,
    pub webhook_url: Option<String>,
    pub enabled: Option<bool>,
}

/// What deleting a v2 webhook did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookRemoval {
    /// Not deleted: these active enrollments use it (and `force` was not given).
    Blocked(Vec<EnrollmentId>),
    /// Deleted; these enrollments used it and are now paused.
    Removed(Vec<EnrollmentId>),
}

/// How many more notifications a claim may lease per webhook: `per_scope` for every webhook
/// not listed in `scopes`, the listed number for those (0 skips the webhook).
#[derive(Clone, Debug)]
pub struct ClaimRoom {
    pub per_scope: u32,
    pub scopes: Vec<(WebhookKey, u32)>,
}

impl ClaimRoom {
    /// No per-webhook bound.
    pub fn any() -> Self {
        Self {
            per_scope: u32::MAX,
            scopes: Vec::new(),
        }
    }

    /// No per-webhook bound, except that `skip` get nothing.
    pub fn excluding(skip: &[WebhookKey]) -> Self {
        Self {
            per_scope: u32::MAX,
            scopes: skip.iter().map(|s| (s.clone(), 0)).collect(),
        }
    }
}

/// A notification claimed for delivery, with everything needed to send it.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// Internal row id (the lease is checked against it when recording).
    pub row: i64,
    pub delivery_id: String,
    pub event_id: String,
    pub payload: String,
    /// Attempts made in the current retry cycle before this one.
    pub cycle_attempts: u32,
    /// The lease this claim holds (whole milliseconds, as stored: its identity, compared for
    /// equality); recording checks it is still ours.
    pub lease_until: time::OffsetDateTime,
    pub scope: Scope,
    pub webhook_id: String,
    pub webhook_url: String,
    pub secret: String,
    /// The secret before the last rotation while its grace lasts (for `webhook-signature`).
    pub previous_secret: Option<String>,
    pub headers: Vec<String>,
    pub payload_format: PayloadFormat,
    pub generation: i64,
}

impl Claimed {
    pub fn webhook(&self) -> WebhookKey {
        WebhookKey::new(&self.scope, &self.webhook_id)
    }

    /// Takes `w`'s current delivery settings (URL, secrets as a send at `now` signs with them,
    /// headers, payload format, generation): for a claim that waited while its webhook changed.
    pub fn refresh(&mut self, w: &Webhook, now: time::OffsetDateTime) {
        self.webhook_url.clone_from(&w.webhook_url);
        self.secret.clone_from(&w.secret);
        self.previous_secret = w.previous_secret_at(now).map(str::to_string);
        self.headers.clone_from(&w.headers);
        self.payload_format = w.payload_format;
        self.generation = w.generation;
    }
}

/// One change to a claim's lease ([`crate::Store::change_leases`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseChange {
    /// The notification's row ([`Claimed::row`]).
    pub row: i64,
    /// The lease the claim holds: the change applies only while the row still has it.
    pub expected: time::OffsetDateTime,
    /// The new lease end (a renewal), or None to hand the claim back (due again at once).
    pub until: Option<time::OffsetDateTime>,
}

/// What to do with a notification after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at this time (unix ms).
    RetryAt(i64),
    /// The retry schedule is exhausted: state `failed`.
    GiveUp,
    /// The receiver answered 410: disable the webhook; the notification waits.
    Gone,
}

/// One recorded delivery attempt.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub row: i64,
    /// The lease the attempt was made under ([`Claimed::lease_until`] or its renewal).
    pub lease_until: time::OffsetDateTime,
    pub scope: Scope,
    pub webhook_id: String,
    pub generation: i64,
    pub attempted_at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub response_body: String,
    pub outcome: AttemptOutcome,
    /// Disable the webhook when it has failed continuously for this long (ms).
    pub disable_after_ms: i64,
}

/// A notification queued directly (webhook simulations).
#[derive(Clone, Debug)]
pub struct DirectNotification {
    pub delivery_id: String,
    pub event_id: String,
    pub event_name: String,
    pub event_time: i64,
    pub enrollment_key: String,
    pub payload: serde_json::Value,
}

#[derive(Clone, Debug, Default)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    pub event_name: Option<String>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// A delivery as the delivery log shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryInfo {
    pub delivery_id: String,
    pub event_id: String,
    pub event_name: String,
    pub enrollment_id: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_attempt_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryInfo>,
    pub next_cursor: Option<Cursor>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttemptInfo {
    pub attempted_at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub response_body: Option<String>,
}

/// Which notifications a replay re-queues.
#[derive(Clone, Debug)]
pub struct ReplayQuery {
    /// Inclusive bounds on event_time (unix seconds).
    pub from: i64,
    pub to: Option<i64>,
    pub event_names: Option<Vec<String>>,
}

/// Delivery health of one webhook (`Store::webhook_stats`): attempts since a point in time,
/// their latency, and the backlog still waiting now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Attempts made since the window start.
    pub attempts: u64,
    /// Of those, the ones answered with a 2xx (the notification was delivered).
    pub succeeded: u64,
    /// Nearest-rank median and 99th percentile of those attempts' latency.
    pub latency_p50: Option<std::time::Duration>,
    pub latency_p99: Option<std::time::Duration>,
    /// Notifications pending now (due, waiting for a retry, or parked without a webhook).
    pub pending: u64,
    /// When the oldest pending notification was queued.
    pub oldest_pending_at: Option<time::OffsetDateTime>,
}

/// Notifications of one event type queued for a webhook on one UTC day
/// (`Store::daily_notifications`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyCount {
    pub day: time::Date,
    pub event_name: String,
    pub count: u64,
}
