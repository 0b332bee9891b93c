//! The notification a receiver verifies: one JSON shape for every path that sends one (an event
//! to an enrollment, the connectivity check, a simulation), and the delivery ids naming each
//! send. Randomness and time are passed in: nothing here reads the clock or an RNG.

use crate::detect::DetectedEvent;
use crate::ids::{EnrollmentId, PartnerId, TenantId};
use crate::snapshot::format_timestamp;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// `event_name` (and `data.event_name`) of the connectivity check.
pub const CONNECTIVITY_CHECK: &str = "webhook_connectivity_check";
/// `enrollment_key` of the connectivity check.
pub const CONNECTIVITY_CHECK_KEY: &str = "connectivity_check";
/// `enrollment_key` of simulated notifications.
pub const SIMULATION_KEY: &str = "simulation";

/// One notification body, as POSTed to a partner's webhook (SPEC §4). Its fields are private:
/// a value comes from one of the constructors, so every sender path sends the same shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    tenant: TenantId,
    partner: PartnerId,
    event_id: String,
    event_name: String,
    event_time: OffsetDateTime,
    entity_id: Option<String>,
    entity_type: &'static str,
    enrollment_key: String,
    enrollment_id: Option<EnrollmentId>,
    simulated: bool,
    data: Value,
}

impl Notification {
    /// A detected event, for one enrollment covering its prospect.
    pub fn event(
        event: &DetectedEvent,
        tenant: &TenantId,
        partner: &PartnerId,
        enrollment_id: &EnrollmentId,
        enrollment_key: &str,
    ) -> Self {
        Self {
            tenant: tenant.clone(),
            partner: partner.clone(),
            event_id: event.event_id.clone(),
            event_name: event.event_type.as_str().to_string(),
            event_time: event.event_time,
            entity_id: Some(event.prospect_id.to_string()),
            entity_type: "prospect",
            enrollment_key: enrollment_key.to_string(),
            enrollment_id: Some(enrollment_id.clone()),
            simulated: false,
            data: event.data.clone(),
        }
    }

    /// The signed test notification of a connectivity check, sent at `now` with a fresh
    /// random `event_id`.
    pub fn connectivity_check(
        tenant: &TenantId,
        partner: &PartnerId,
        event_id: [u8; 16],
        now: OffsetDateTime,
    ) -> Self {
        let mut data = Map::new();
        data.insert("event_name".into(), CONNECTIVITY_CHECK.into());
        Self {
            tenant: tenant.clone(),
            partner: partner.clone(),
            event_id: hex::encode(event_id),
            event_name: CONNECTIVITY_CHECK.to_string(),
            event_time: now,
            entity_id: None,
            entity_type: "prospect",
            enrollment_key: CONNECTIVITY_CHECK_KEY.to_string(),
            enrollment_id: None,
            simulated: false,
            data: Value::Object(data),
        }
    }

    /// A simulated event (`"simulated": true`) about `entity_id`: a prospect for `prospect_*`
    /// event names, a business otherwise.
    pub fn simulation(
        tenant: &TenantId,
        partner: &PartnerId,
        event_id: [u8; 16],
        event_name: &str,
        event_time: OffsetDateTime,
        entity_id: String,
        data: Value,
    ) -> Self {
        Self {
            tenant: tenant.clone(),
            partner: partner.clone(),
            event_id: hex::encode(event_id),
            event_name: event_name.to_string(),
            event_time,
            entity_id: Some(entity_id),
            entity_type: simulated_entity_type(event_name),
            enrollment_key: SIMULATION_KEY.to_string(),
            enrollment_id: None,
            simulated: true,
            data,
        }
    }

    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    pub fn event_name(&self) -> &str {
        &self.event_name
    }

    pub fn event_time(&self) -> OffsetDateTime {
        self.event_time
    }

    pub fn enrollment_key(&self) -> &str {
        &self.enrollment_key
    }

    /// The JSON body, keys in the order receivers have always seen.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("tenant_id".into(), self.tenant.0.clone().into());
        m.insert("partner_id".into(), self.partner.0.clone().into());
        m.insert("event_id".into(), self.event_id.clone().into());
        m.insert("event_name".into(), self.event_name.clone().into());
        m.insert(
            "event_time".into(),
            format_timestamp(self.event_time).into(),
        );
        m.insert("entity_id".into(), self.entity_id.clone().into());
        m.insert("entity_type".into(), self.entity_type.into());
        m.insert("enrollment_key".into(), self.enrollment_key.clone().into());
        let enrollment_id = self.enrollment_id.as_ref().map(|e| e.0.clone());
        m.insert("enrollment_id".into(), enrollment_id.into());
        if self.simulated {
            m.insert("simulated".into(), true.into());
        }
        m.insert("data".into(), self.data.clone());
        Value::Object(m)
    }

    /// The v2 body delivered through webhook `webhook_id`, keys in the order of the reference's
    /// v2 webhooks guide: `webhook_id`, `tenant_id`, `partner_id`, `event_id`, `event_name`,
    /// `enrollment_key`, `enrollment_id`, `entity_type`, the entity's id (`prospect_id`, or
    /// `business_id` for a simulated business event), `event_time`, then `simulated: true`
    /// for a simulation (as in v1) and `data`. The connectivity check has no entity and no
    /// enrollment: those ids are null.
    pub fn to_json_v2(&self, webhook_id: &str) -> Value {
        let mut m = Map::new();
        m.insert("webhook_id".into(), webhook_id.into());
        m.insert("tenant_id".into(), self.tenant.0.clone().into());
        m.insert("partner_id".into(), self.partner.0.clone().into());
        m.insert("event_id".into(), self.event_id.clone().into());
        m.insert("event_name".into(), self.event_name.clone().into());
        m.insert("enrollment_key".into(), self.enrollment_key.clone().into());
        let enrollment_id = self.enrollment_id.as_ref().map(|e| e.0.clone());
        m.insert("enrollment_id".into(), enrollment_id.into());
        m.insert("entity_type".into(), self.entity_type.into());
        m.insert(
            format!("{}_id", self.entity_type),
            self.entity_id.clone().into(),
        );
        m.insert(
            "event_time".into(),
            format_timestamp(self.event_time).into(),
        );
        if self.simulated {
            m.insert("simulated".into(), true.into());
        }
        m.insert("data".into(), self.data.clone());
        Value::Object(m)
    }
}

/// How a v2 webhook's deliveries carry the notification (`payload_format`): the JSON object
/// itself (`json`, the default), or `{"text": "<that JSON as a string>"}` (`stringified_json`)
/// for destinations that read one text field. Both are sent as `application/json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    #[default]
    Json,
    StringifiedJson,
}

impl PayloadFormat {
    pub const ALL: [PayloadFormat; 2] = [PayloadFormat::Json, PayloadFormat::StringifiedJson];

    /// The wire and storage name: `json` or `stringified_json`.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::StringifiedJson => "stringified_json",
        }
    }

    /// The format named `s` (exact, as the reference's enum), or None.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The delivery body for `payload`. `json`: its compact serialisation. `stringified_json`:
    /// `{"text": …}` whose string is exactly the bytes `json` would send, so a receiver parses
    /// the same object either way.
    pub fn render(self, payload: &Value) -> Vec<u8> {
        let json = payload.to_string();
        match self {
            PayloadFormat::Json => json.into_bytes(),
            PayloadFormat::StringifiedJson => {
                let mut m = Map::new();
                m.insert("text".into(), Value::String(json));
                Value::Object(m).to_string().into_bytes()
            }
        }
    }
}

/// Simulated `prospect_*` events are about a prospect, every other one about a business.
pub fn simulated_entity_type(event_name: &str) -> &'static str {
    if event_name.starts_with("prospect_") {
        "prospect"
    } else {
        "business"
    }
}

/// The delivery id of the notification of `event_id` to `enrollment_id`: deterministic, so
/// re-queueing the same pair is idempotent.
pub fn delivery_id_for(event_id: &str, enrollment_id: &str) -> String {
    let h = Sha256::digest(format!("{event_id}/{enrollment_id}").as_bytes());
    format!("dl_{}", hex::encode(&h[..12]))
}

/// The delivery id of a one-off send (connectivity check, simulation), from fresh random bytes.
pub fn random_delivery_id(random: [u8; 12]) -> String {
    format!("dl_{}", hex::encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventType, ProspectId};
    use serde_json::json;

    fn ids() -> (TenantId, PartnerId) {
        (TenantId("t1".into()), PartnerId("p1".into()))
    }

    fn at() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    /// The bytes receivers verify are exactly those sent before the type existed.
    #[test]
    fn event_body_keeps_its_bytes() {
        let (t, p) = ids();
        let ev = DetectedEvent {
            event_id: "e".repeat(32),
            event_type: EventType::parse("prospect_changed_role").unwrap(),
            event_time: at(),
            prospect_id: ProspectId::parse(&"a".repeat(40)).unwrap(),
            data: json!({"event_name": "prospect_changed_role"}),
        };
        let n = Notification::event(&ev, &t, &p, &EnrollmentId("en1".into()), "k1");
        assert_eq!(
            n.to_json().to_string(),
            format!(
                "{{\"tenant_id\":\"t1\",\"partner_id\":\"p1\",\"event_id\":\"{}\",\
                 \"event_name\":\"prospect_changed_role\",\"event_time\":\"2023-11-14T22:13:20Z\",\
                 \"entity_id\":\"{}\",\"entity_type\":\"prospect\",\"enrollment_key\":\"k1\",\
                 \"enrollment_id\":\"en1\",\"data\":{{\"event_name\":\"prospect_changed_role\"}}}}",
                "e".repeat(32),
                "a".repeat(40)
            )
        );
    }

    #[test]
    fn connectivity_check_and_simulation_bodies() {
        let (t, p) = ids();
        let c = Notification::connectivity_check(&t, &p, [0xab; 16], at());
        assert_eq!(
            c.to_json().to_string(),
            format!(
                "{{\"tenant_id\":\"t1\",\"partner_id\":\"p1\",\"event_id\":\"{}\",\
                 \"event_name\":\"webhook_connectivity_check\",\"event_time\":\"2023-11-14T22:13:20Z\",\
                 \"entity_id\":null,\"entity_type\":\"prospect\",\"enrollment_key\":\"connectivity_check\",\
                 \"enrollment_id\":null,\"data\":{{\"event_name\":\"webhook_connectivity_check\"}}}}",
                "ab".repeat(16)
            )
        );
        let s = Notification::simulation(
            &t,
            &p,
            [1; 16],
            "ipo_announcement",
            at(),
            "b".into(),
            json!({}),
        );
        let v = s.to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys[keys.len() - 2..], ["simulated", "data"]);
        assert_eq!(v["entity_type"], "business");
        assert_eq!(v["enrollment_key"], "simulation");
    }

    /// The v2 body: the guide's key order, the entity key named after the entity type.
    #[test]
    fn v2_bodies() {
        let (t, p) = ids();
        let ev = DetectedEvent {
            event_id: "e".repeat(32),
            event_type: EventType::parse("prospect_changed_role").unwrap(),
            event_time: at(),
            prospect_id: ProspectId::parse(&"a".repeat(40)).unwrap(),
            data: json!({"event_name": "prospect_changed_role"}),
        };
        let n = Notification::event(&ev, &t, &p, &EnrollmentId("en1".into()), "k1");
        assert_eq!(
            n.to_json_v2("wh_1").to_string(),
            format!(
                "{{\"webhook_id\":\"wh_1\",\"tenant_id\":\"t1\",\"partner_id\":\"p1\",\
                 \"event_id\":\"{}\",\"event_name\":\"prospect_changed_role\",\
                 \"enrollment_key\":\"k1\",\"enrollment_id\":\"en1\",\"entity_type\":\"prospect\",\
                 \"prospect_id\":\"{}\",\"event_time\":\"2023-11-14T22:13:20Z\",\
                 \"data\":{{\"event_name\":\"prospect_changed_role\"}}}}",
                "e".repeat(32),
                "a".repeat(40)
            )
        );
        // v1's body is untouched by the v2 one.
        assert!(n.to_json().get("webhook_id").is_none());

        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let c = Notification::connectivity_check(&t, &p, [0xab; 16], at()).to_json_v2("wh_2");
        assert_eq!(c["prospect_id"], Value::Null);
        assert_eq!(c["enrollment_id"], Value::Null);
        assert_eq!(c["webhook_id"], "wh_2");
        let s = Notification::simulation(
            &t,
            &p,
            [1; 16],
            "ipo_announcement",
            at(),
            "b".into(),
            json!({}),
        )
        .to_json_v2("wh_3");
        assert_eq!(
            keys(&s),
            [
                "webhook_id",
                "tenant_id",
                "partner_id",
                "event_id",
                "event_name",
                "enrollment_key",
                "enrollment_id",
                "entity_type",
                "business_id",
                "event_time",
                "simulated",
                "data"
            ]
        );
        assert_eq!(s["business_id"], "b");
    }

    #[test]
    fn payload_formats() {
        assert_eq!(PayloadFormat::default(), PayloadFormat::Json);
        for f in PayloadFormat::ALL {
            assert_eq!(PayloadFormat::parse(f.as_str()), Some(f));
        }
        assert_eq!(
            PayloadFormat::parse("stringified_json"),
            Some(PayloadFormat::StringifiedJson)
        );
        assert_eq!(PayloadFormat::parse("JSON"), None);
        assert_eq!(PayloadFormat::parse("text"), None);

        let payload = json!({"event_name": "x", "data": {"q": "a\"b\né"}});
        let json = PayloadFormat::Json.render(&payload);
        assert_eq!(
            json,
            r#"{"event_name":"x","data":{"q":"a\"b\né"}}"#.as_bytes()
        );
        let text = PayloadFormat::StringifiedJson.render(&payload);
        let outer: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(outer.as_object().unwrap().len(), 1);
        assert_eq!(outer["text"].as_str().unwrap().as_bytes(), json.as_slice());
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"text":"{\"event_name\":\"x\",\"data\":{\"q\":\"a\\\"b\\né\"}}"}"#
        );
    }

    #[test]
    fn delivery_ids() {
        assert_eq!(delivery_id_for("e", "n"), delivery_id_for("e", "n"));
        assert_ne!(delivery_id_for("e", "n"), delivery_id_for("e", "m"));
        assert_eq!(delivery_id_for("e", "n").len(), 27);
        assert_eq!(
            random_delivery_id([0; 12]),
            format!("dl_{}", "00".repeat(12))
        );
    }
}
