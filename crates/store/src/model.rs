//! Plain data crossing the store boundary.

use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};

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
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct ApiKeyInfo {
    pub prefix: String,
    pub tenant: TenantId,
    pub partner: PartnerId,
    pub admin: bool,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
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
    pub now: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    pub enrollment_id: EnrollmentId,
    pub spec: EnrollmentSpec,
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
    let mut s = String::with_capacity(ids.len() * 40);
    for id in ids {
        s.push_str(&id.to_string());
    }
    s
}

pub(crate) fn decode_prospect_ids(s: &str) -> Vec<ProspectId> {
    s.as_bytes()
        .chunks(40)
        .filter_map(|c| std::str::from_utf8(c).ok().and_then(ProspectId::parse))
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
