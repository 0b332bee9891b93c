//! API keys: format, display prefix and the hash stored at rest. Keys carry 192 bits from a
//! CSPRNG (supplied by the caller), so a plain SHA-256 is the right at-rest protection: there is
//! nothing to brute-force, and lookups stay one indexed equality.

use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "pe_";
/// Characters of a key kept in clear (for `keys list` and `keys revoke`).
pub const DISPLAY_PREFIX_LEN: usize = 11;

/// Formats a new key from 24 random bytes.
pub fn format_key(random: [u8; 24]) -> String {
    format!("{KEY_PREFIX}{}", hex::encode(random))
}

/// The hash under which a key (exactly as sent in the `api_key` header) is stored.
pub fn hash_key(raw: &[u8]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

/// The leading characters shown in listings.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_expected_shape() {
        let k = format_key([0xab; 24]);
        assert_eq!(k.len(), 3 + 48);
        assert!(k.starts_with("pe_abab"));
        assert_eq!(display_prefix(&k), "pe_abababab");
        assert_ne!(hash_key(k.as_bytes()), hash_key(b"pe_other"));
    }
}
