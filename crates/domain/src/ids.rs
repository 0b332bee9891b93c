//! Identifier newtypes. Once a value has one of these types it is valid; nothing downstream
//! re-checks it.

use std::fmt;

/// A prospect id: 40 lowercase hex characters on the wire, 20 bytes in storage.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProspectId(pub [u8; 20]);

impl ProspectId {
    /// Parses the wire form (`^[a-f0-9]{40}$`). Uppercase hex is rejected, as the reference does.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 40 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(b, &mut out).ok()?;
        Some(Self(out))
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        Some(Self(b.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The wire form (40 lowercase hex digits) without allocating.
    pub fn hex(&self) -> [u8; 40] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 40];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
        }
        out
    }
}

impl fmt::Display for ProspectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ProspectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProspectId({self})")
    }
}

/// Server-generated enrollment id: `en_` followed by 24 lowercase hex characters.
/// Ids received from clients are kept as opaque strings (the reference accepts any string and
/// answers 404 when it does not exist), so this type does not enforce the shape on parse.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct EnrollmentId(pub String);

impl EnrollmentId {
    pub const PREFIX: &'static str = "en_";

    /// Builds an id from 12 random bytes supplied by the caller (a CSPRNG in production).
    pub fn from_random(bytes: [u8; 12]) -> Self {
        Self(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnrollmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tenant id, e.g. `con_…`. Chosen by the operator when creating keys.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TenantId(pub String);

/// Partner id owned by a tenant. Chosen by the operator when creating keys.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PartnerId(pub String);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `ProspectsEventIdentifier` of the reference.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum EventType {
    ChangedRole,
    ChangedCompany,
    JobStartAnniversary,
}

impl EventType {
    /// Reference order (the order of the enum in the OpenAPI and in pydantic's messages).
    pub const ALL: [EventType; 3] = [
        EventType::ChangedRole,
        EventType::ChangedCompany,
        EventType::JobStartAnniversary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ChangedRole => "prospect_changed_role",
            EventType::ChangedCompany => "prospect_changed_company",
            EventType::JobStartAnniversary => "prospect_job_start_anniversary",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Inverse of [`EventType::bit`] (how stores keep the type).
    pub fn from_bit(bit: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|t| i64::from(t.bit()) == bit)
    }

    /// Bit used in the stored event-type mask.
    pub fn bit(self) -> u8 {
        match self {
            EventType::ChangedRole => 1,
            EventType::ChangedCompany => 2,
            EventType::JobStartAnniversary => 4,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Folds event types into a bit mask (used for the fan-out query).
pub fn event_mask(types: &[EventType]) -> u8 {
    types.iter().fold(0, |m, t| m | t.bit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prospect_id_round_trips_and_rejects_uppercase() {
        let s = "20ae6cbf564ee683e66685e429844a5ff8ffc30f";
        assert_eq!(ProspectId::parse(s).unwrap().to_string(), s);
        assert!(ProspectId::parse(&s.to_uppercase()).is_none());
        assert!(ProspectId::parse(&s[1..]).is_none());
        assert!(ProspectId::parse("g0ae6cbf564ee683e66685e429844a5ff8ffc30f").is_none());
    }

    #[test]
    fn event_type_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("prospect_changed"), None);
        assert_eq!(event_mask(&EventType::ALL), 7);
    }
}
