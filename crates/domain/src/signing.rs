//! Webhook secrets and notification signatures (SPEC §4).
//!
//! * The secret is 32 random bytes, URL-safe base64 **with** padding.
//! * `X-Signature` = URL-safe base64 (with padding) of HMAC-SHA256, keyed with the
//!   URL-safe-base64-*decoded* secret, over `"{X-Timestamp}.{raw body}"`.
//! * Receivers reject timestamps more than a tolerance (300 s) off.
//!
//! Pure: the caller supplies the random bytes and the current time.
//!
//! [`standard`] signs the same notifications the Standard Webhooks way, with the same secrets.

pub mod standard;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Default tolerance receivers apply to `X-Timestamp` (seconds).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Decoder for secrets: URL-safe alphabet, padding optional (we always emit it).
const SECRET_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("webhook secret is not valid base64 (URL-safe, or standard after `whsec_`)")]
    InvalidSecret,
    /// A Standard Webhooks signature was asked for with no secret to sign with.
    #[error("no webhook secret to sign with")]
    NoSecret,
}

/// Encodes 32 CSPRNG bytes as a webhook secret (URL-safe base64 with padding, 44 chars).
pub fn generate_secret(random: [u8; 32]) -> String {
    URL_SAFE.encode(random)
}

fn mac_for(secret_b64: &str, timestamp: &str, body: &[u8]) -> Result<HmacSha256, SigningError> {
    let key = SECRET_DECODER
        .decode(secret_b64.trim())
        .map_err(|_| SigningError::InvalidSecret)?;
    if key.is_empty() {
        return Err(SigningError::InvalidSecret);
    }
    let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| SigningError::InvalidSecret)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `X-Signature` value for `body` sent with `X-Timestamp: {timestamp}`.
pub fn sign(secret_b64: &str, timestamp: i64, body: &[u8]) -> Result<String, SigningError> {
    let mac = mac_for(secret_b64, &timestamp.to_string(), body)?;
    Ok(URL_SAFE.encode(mac.finalize().into_bytes()))
}

/// Receiver-side check: the timestamp header is an integer within `tolerance_secs` of `now`,
/// and the signature header matches (constant-time comparison). Any malformed input → false.
pub fn verify(
    secret_b64: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> bool {
    let ts_str = timestamp_header.trim();
    let Ok(ts) = ts_str.parse::<i64>() else {
        return false;
    };
    if now
        .checked_sub(ts)
        .is_none_or(|d| d.unsigned_abs() > tolerance_secs.max(0) as u64)
    {
        return false;
    }
    let Ok(given) = SECRET_DECODER.decode(signature_header.trim()) else {
        return false;
    };
    // Sign over the header text exactly as received (it is what the sender signed).
    let Ok(mac) = mac_for(secret_b64, ts_str, body) else {
        return false;
    };
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors computed independently with Python:
    //   raw = bytes(range(32)); sec = base64.urlsafe_b64encode(raw)
    //   base64.urlsafe_b64encode(hmac.new(base64.urlsafe_b64decode(sec),
    //       b"1700000000." + body, hashlib.sha256).digest())
    const KAT_SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KAT_TS: i64 = 1_700_000_000;
    const KAT_BODY: &[u8] = br#"{"event_id":"e1","data":{"x":1}}"#;
    const KAT_SIG: &str = "Kp3E18zR8FcoFgGTcktIS75RwGKdAAbVSp9usmSq3bM=";
    // raw = b"\xff" * 32 exercises the URL-safe alphabet ('_'); body empty, ts 1.
    const KAT2_SECRET: &str = "__________________________________________8=";
    const KAT2_SIG: &str = "Lm4xhyU0xuWzRkNX7krkzlDRR_NtgXmV77XjnXevTjQ=";

    fn raw0() -> [u8; 32] {
        let mut r = [0u8; 32];
        for (i, b) in r.iter_mut().enumerate() {
            *b = i as u8;
        }
        r
    }

    #[test]
    fn secret_encoding() {
        assert_eq!(generate_secret(raw0()), KAT_SECRET);
        assert_eq!(generate_secret([0xff; 32]), KAT2_SECRET);
        assert_eq!(generate_secret([7; 32]).len(), 44);
        assert!(generate_secret([0xfb; 32]).ends_with('='));
    }

    #[test]
    fn known_answer() {
        assert_eq!(sign(KAT_SECRET, KAT_TS, KAT_BODY).unwrap(), KAT_SIG);
        assert_eq!(sign(KAT2_SECRET, 1, b"").unwrap(), KAT2_SIG);
        // Unpadded secret decodes the same.
        assert_eq!(
            sign(KAT_SECRET.trim_end_matches('='), KAT_TS, KAT_BODY).unwrap(),
            KAT_SIG
        );
    }

    #[test]
    fn invalid_secret() {
        assert_eq!(
            sign("not base64!!", 1, b""),
            Err(SigningError::InvalidSecret)
        );
        assert_eq!(sign("", 1, b""), Err(SigningError::InvalidSecret));
        // Standard (non-URL-safe) alphabet characters are rejected.
        assert_eq!(sign("+/+/", 1, b""), Err(SigningError::InvalidSecret));
    }

    #[test]
    fn verify_roundtrip_and_rejections() {
        let ts = KAT_TS.to_string();
        assert!(verify(KAT_SECRET, &ts, KAT_SIG, KAT_BODY, KAT_TS, 300));
        assert!(verify(
            KAT_SECRET,
            &ts,
            KAT_SIG,
            KAT_BODY,
            KAT_TS + 300,
            300
        ));
        assert!(verify(
            KAT_SECRET,
            &ts,
            KAT_SIG,
            KAT_BODY,
            KAT_TS - 300,
            300
        ));
        assert!(!verify(
            KAT_SECRET,
            &ts,
            KAT_SIG,
            KAT_BODY,
            KAT_TS + 301,
            300
        ));
        assert!(!verify(
            KAT_SECRET,
            &ts,
            KAT_SIG,
            KAT_BODY,
            KAT_TS - 301,
            300
        ));
        // Tampered body, timestamp, signature, wrong secret.
        assert!(!verify(KAT_SECRET, &ts, KAT_SIG, b"{}", KAT_TS, 300));
        assert!(!verify(
            KAT_SECRET,
            "1700000001",
            KAT_SIG,
            KAT_BODY,
            KAT_TS,
            300
        ));
        assert!(!verify(KAT_SECRET, &ts, KAT2_SIG, KAT_BODY, KAT_TS, 300));
        assert!(!verify(KAT2_SECRET, &ts, KAT_SIG, KAT_BODY, KAT_TS, 300));
        assert!(!verify(KAT_SECRET, &ts, "garbage", KAT_BODY, KAT_TS, 300));
        assert!(!verify(KAT_SECRET, "abc", KAT_SIG, KAT_BODY, KAT_TS, 300));
        assert!(!verify(
            KAT_SECRET,
            &ts,
            &KAT_SIG[..20],
            KAT_BODY,
            KAT_TS,
            300
        ));
        assert!(!verify(KAT_SECRET, &ts, KAT_SIG, KAT_BODY, i64::MIN, 300));
    }
}
