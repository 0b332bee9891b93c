//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), sent beside `X-Signature`.
//!
//! * `webhook-id`: the message id, the same on every attempt of one message.
//! * `webhook-timestamp`: the attempt's time, integer Unix seconds.
//! * `webhook-signature`: space-separated `v1,<sig>`, one per signing secret, where `<sig>` is
//!   the **standard** base64 (with padding) of HMAC-SHA256 over `"{id}.{timestamp}.{body}"`,
//!   keyed with the secret's decoded bytes.
//!
//! Secrets are accepted in two spellings: ours (URL-safe base64, as [`super::generate_secret`]
//! issues them) and the Standard Webhooks one (`whsec_` + standard base64). Both name the same
//! key bytes; [`receiver_key`] turns ours into the `whsec_` form a Standard Webhooks library
//! takes, so a receiver verifies both schemes with the one secret we returned.
//!
//! Pure: the caller supplies the message id and the time.

use super::{SigningError, SECRET_DECODER};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's Unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<signature>` list.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Prefix of a secret in the Standard Webhooks spelling.
pub const SECRET_PREFIX: &str = "whsec_";
/// Version tag of the only signature scheme the spec defines (HMAC-SHA256, symmetric).
const V1: &str = "v1,";

/// Decoder for `whsec_` secrets and `v1` signatures: standard alphabet, padding optional.
const STANDARD_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The key bytes of `secret`: `whsec_` + standard base64, or our URL-safe base64.
fn key_bytes(secret: &str) -> Result<Vec<u8>, SigningError> {
    let secret = secret.trim();
    let key = match secret.strip_prefix(SECRET_PREFIX) {
        Some(b64) => STANDARD_DECODER.decode(b64),
        None => SECRET_DECODER.decode(secret),
    }
    .map_err(|_| SigningError::InvalidSecret)?;
    if key.is_empty() {
        return Err(SigningError::InvalidSecret);
    }
    Ok(key)
}

/// The `webhook-timestamp` value of an attempt made at `t` (whole Unix seconds).
pub fn timestamp_header(t: OffsetDateTime) -> String {
    t.unix_timestamp().to_string()
}

fn mac(key: &[u8], msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value for `body` sent as message `msg_id` at `timestamp`: one
/// `v1,<sig>` per secret, in the order given, separated by single spaces. At least one secret
/// is needed; any secret that is not valid base64 fails the whole header.
pub fn sign(
    msg_id: &str,
    timestamp: OffsetDateTime,
    body: &[u8],
    secrets: &[&str],
) -> Result<String, SigningError> {
    if secrets.is_empty() {
        return Err(SigningError::NoSecret);
    }
    let ts = timestamp_header(timestamp);
    let signatures = secrets
        .iter()
        .map(|s| {
            let key = key_bytes(s)?;
            let sig = mac(&key, msg_id, &ts, body).finalize().into_bytes();
            Ok(format!("{V1}{}", STANDARD.encode(sig)))
        })
        .collect::<Result<Vec<_>, SigningError>>()?;
    Ok(signatures.join(" "))
}

/// Receiver-side check as the spec's libraries do it: the timestamp header is an integer
/// within `tolerance` of `now` (either direction), and at least one `v1,` entry of the
/// signature header matches `secret` (constant-time); entries of other versions are ignored.
/// Any malformed input → false.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> bool {
    let ts = timestamp_header.trim();
    let Ok(unix) = ts.parse::<i64>() else {
        return false;
    };
    let skew = unix.abs_diff(now.unix_timestamp());
    if skew > tolerance.as_secs() {
        return false;
    }
    let Ok(key) = key_bytes(secret) else {
        return false;
    };
    signature_header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix(V1))
        .filter_map(|b64| STANDARD_DECODER.decode(b64).ok())
        .any(|given| mac(&key, msg_id, ts, body).verify_slice(&given).is_ok())
}

/// The `whsec_` form of `secret` that a Standard Webhooks library takes (e.g.
/// `standardwebhooks.Webhook(receiver_key(secret))`). Ours is URL-safe base64 of the key; the
/// library wants standard base64 with padding, so this maps the alphabet (`-`→`+`, `_`→`/`)
/// and restores padding. A secret already in the `whsec_` form is returned as it is. Text
/// only: a secret that is not valid base64 gives a key the library rejects, as [`sign`] does.
pub fn receiver_key(secret: &str) -> String {
    let secret = secret.trim();
    if secret.starts_with(SECRET_PREFIX) {
        return secret.to_string();
    }
    let mut b64: String = secret
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('=');
    }
    format!("{SECRET_PREFIX}{b64}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the spec's reference libraries (standard-webhooks/libraries).
    const VEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VEC_TS: i64 = 1_614_265_330;
    const VEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    const FIVE_MIN: Duration = Duration::from_secs(300);

    #[test]
    fn the_reference_libraries_test_vector() {
        assert_eq!(
            sign(VEC_ID, at(VEC_TS), VEC_BODY, &[VEC_SECRET]).unwrap(),
            VEC_SIG
        );
        assert!(verify(
            VEC_SECRET,
            VEC_ID,
            "1614265330",
            VEC_SIG,
            VEC_BODY,
            at(VEC_TS),
            FIVE_MIN
        ));
    }

    /// The vector's key in our spelling signs identically, and `receiver_key` maps it back.
    #[test]
    fn our_secrets_and_their_receiver_key() {
        let key = STANDARD_DECODER
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let ours = base64::engine::general_purpose::URL_SAFE.encode(&key);
        assert!(!ours.starts_with(SECRET_PREFIX));
        assert_eq!(
            sign(VEC_ID, at(VEC_TS), VEC_BODY, &[&ours]).unwrap(),
            VEC_SIG
        );
        assert_eq!(receiver_key(&ours), VEC_SECRET);
        assert_eq!(receiver_key(VEC_SECRET), VEC_SECRET);
        // A secret that uses both URL-safe characters, padded and unpadded.
        let ours = super::super::generate_secret([0xfb; 32]);
        assert!(ours.contains('-') && ours.contains('_') && ours.ends_with('='));
        let theirs = receiver_key(&ours);
        assert_eq!(theirs, receiver_key(ours.trim_end_matches('=')));
        assert_eq!(
            STANDARD.decode(&theirs[SECRET_PREFIX.len()..]).unwrap(),
            [0xfb; 32]
        );
        let sig = sign("m", at(1), b"b", &[&ours]).unwrap();
        assert_eq!(sign("m", at(1), b"b", &[&theirs]).unwrap(), sig);
        assert!(verify(&theirs, "m", "1", &sig, b"b", at(1), FIVE_MIN));
    }

    /// A known answer from the `standardwebhooks` Python package (1.1.0), given our secret in
    /// its `receiver_key` form: `Webhook("whsec_+/v7…/s=").sign("msg_1", 1614265330, '{"a":1}')`.
    #[test]
    fn the_python_library_agrees_on_our_secrets() {
        let ours = super::super::generate_secret([0xfb; 32]);
        assert_eq!(
            receiver_key(&ours),
            "whsec_+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s="
        );
        assert_eq!(
            sign("msg_1", at(VEC_TS), br#"{"a":1}"#, &[&ours]).unwrap(),
            "v1,doMZ7oQrYJ33h5r0SJRUPnDaEMmWwWB14RsFd77cCyM="
        );
    }

    /// One `v1,` entry per secret; a receiver holding either secret accepts the header.
    #[test]
    fn several_secrets_for_rotation() {
        let new = super::super::generate_secret([1; 32]);
        let old = super::super::generate_secret([2; 32]);
        let header = sign("msg_1", at(100), b"{}", &[&new, &old]).unwrap();
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0], sign("msg_1", at(100), b"{}", &[&new]).unwrap());
        assert_eq!(entries[1], sign("msg_1", at(100), b"{}", &[&old]).unwrap());
        for s in [&new, &old] {
            assert!(verify(s, "msg_1", "100", &header, b"{}", at(100), FIVE_MIN));
        }
        let other = super::super::generate_secret([3; 32]);
        assert!(!verify(
            &other,
            "msg_1",
            "100",
            &header,
            b"{}",
            at(100),
            FIVE_MIN
        ));
    }

    #[test]
    fn verify_rejects_what_the_libraries_reject() {
        let ok = |secret: &str, id: &str, ts: &str, sig: &str, body: &[u8], now: i64| {
            verify(secret, id, ts, sig, body, at(now), FIVE_MIN)
        };
        let ts = "1614265330";
        assert!(ok(VEC_SECRET, VEC_ID, ts, VEC_SIG, VEC_BODY, VEC_TS + 300));
        assert!(ok(VEC_SECRET, VEC_ID, ts, VEC_SIG, VEC_BODY, VEC_TS - 300));
        assert!(!ok(VEC_SECRET, VEC_ID, ts, VEC_SIG, VEC_BODY, VEC_TS + 301));
        assert!(!ok(VEC_SECRET, VEC_ID, ts, VEC_SIG, VEC_BODY, VEC_TS - 301));
        assert!(!ok(VEC_SECRET, "msg_other", ts, VEC_SIG, VEC_BODY, VEC_TS));
        assert!(!ok(
            VEC_SECRET,
            VEC_ID,
            "1614265331",
            VEC_SIG,
            VEC_BODY,
            VEC_TS
        ));
        assert!(!ok(
            VEC_SECRET,
            VEC_ID,
            ts,
            VEC_SIG,
            b"{\"test\": 1}",
            VEC_TS
        ));
        assert!(!ok(VEC_SECRET, VEC_ID, "soon", VEC_SIG, VEC_BODY, VEC_TS));
        assert!(!ok("whsec_!!", VEC_ID, ts, VEC_SIG, VEC_BODY, VEC_TS));
        // Other versions are ignored; a matching v1 among them still counts.
        let v2_only = VEC_SIG.replacen("v1,", "v2,", 1);
        assert!(!ok(VEC_SECRET, VEC_ID, ts, &v2_only, VEC_BODY, VEC_TS));
        let mixed = format!("v1a,abc {v2_only} {VEC_SIG}");
        assert!(ok(VEC_SECRET, VEC_ID, ts, &mixed, VEC_BODY, VEC_TS));
        assert!(!ok(VEC_SECRET, VEC_ID, ts, "v1,", VEC_BODY, VEC_TS));
        assert!(!ok(VEC_SECRET, VEC_ID, ts, "", VEC_BODY, VEC_TS));
    }

    #[test]
    fn sign_needs_valid_secrets() {
        assert_eq!(sign("m", at(1), b"", &[]), Err(SigningError::NoSecret));
        assert_eq!(
            sign("m", at(1), b"", &[VEC_SECRET, "not base64!!"]),
            Err(SigningError::InvalidSecret)
        );
        assert_eq!(
            sign("m", at(1), b"", &["whsec_"]),
            Err(SigningError::InvalidSecret)
        );
        assert_eq!(timestamp_header(at(VEC_TS)), "1614265330");
        // Sub-second parts are dropped, never rounded up.
        let t = at(VEC_TS) + time::Duration::milliseconds(999);
        assert_eq!(timestamp_header(t), "1614265330");
    }
}
