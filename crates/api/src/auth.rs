//! Authentication: `api_key` header → principal (cached briefly) → partner scope.
//! A `Caller` argument in a handler means the request is authenticated and scoped.

use crate::context::{KeyHash, RequestCtx, API_KEY};
use crate::error::{ApiError, PARTNER_INVALID};
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use domain::PartnerId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Principal, Scope};

/// The authenticated caller and the (tenant, partner) the request acts for.
#[derive(Clone, Debug)]
pub struct Caller {
    pub scope: Scope,
    pub admin: bool,
    pub principal: Arc<Principal>,
}

impl Caller {
    /// The scope of another partner of the caller's tenant, if the tenant owns it.
    pub fn owned_scope(&self, partner: &str) -> Option<Scope> {
        self.principal
            .partners
            .iter()
            .any(|p| p.0 == partner)
            .then(|| Scope {
                tenant: self.scope.tenant.clone(),
                partner: PartnerId(partner.to_string()),
            })
    }
}

const PARTNER_HEADERS: [&str; 3] = ["x-context-partner-id", "partner-id", "partner_id"];

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let hash = match parts.extensions.get::<KeyHash>() {
            Some(h) => h.0,
            None => match parts.headers.get(&API_KEY) {
                Some(v) => domain::keys::hash_key(v.as_bytes()),
                None => return Err(ApiError::Unauthorized("Not authenticated")),
            },
        };
        let principal = state
            .keys
            .resolve(&hash, &state.store)
            .await?
            .ok_or(ApiError::Unauthorized("Invalid API key"))?;
        let caller = scope_for(&principal, &parts.headers)?;
        if let Some(ctx) = parts.extensions.get::<RequestCtx>() {
            // Only the first set wins; a second extraction in one request sees the same value.
            let _ = ctx.partner.set(caller.scope.partner.0.clone());
        }
        Ok(caller)
    }
}

/// Resolves the partner from the first present partner header, else the key's default, and
/// checks the optional `tenant` header. An empty `tenant` header names no tenant, so it is
/// ignored like an absent one (clients send `tenant: ` when their tenant setting is unset).
fn scope_for(p: &Arc<Principal>, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if let Some(t) = headers.get("tenant").filter(|t| !t.is_empty()) {
        if t.as_bytes() != p.tenant.0.as_bytes() {
            return Err(ApiError::Unauthorized(
                "Tenant is invalid for this API key.",
            ));
        }
    }
    let named = PARTNER_HEADERS.iter().find_map(|h| headers.get(*h));
    let partner = match named {
        None => p.default_partner.clone(),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::Unauthorized(PARTNER_INVALID))?;
            p.partners
                .iter()
                .find(|owned| owned.0 == v)
                .cloned()
                .ok_or(ApiError::Unauthorized(PARTNER_INVALID))?
        }
    };
    Ok(Caller {
        scope: Scope {
            tenant: p.tenant.clone(),
            partner: PartnerId(partner.0),
        },
        admin: p.admin,
        principal: p.clone(),
    })
}

/// When a key was resolved, and to whom (None: unknown or revoked).
type CacheEntry = (Instant, Option<Arc<Principal>>);

/// Short-lived cache of key hash → principal, so a request costs no database read for auth.
pub(crate) struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], CacheEntry>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub async fn resolve(
        &self,
        hash: &[u8; 32],
        store: &store::DynStore,
    ) -> Result<Option<Arc<Principal>>, ApiError> {
        if !self.ttl.is_zero() {
            let map = self.entries.lock().map_err(|_| lock_poisoned())?;
            if let Some((at, p)) = map.get(hash) {
                if at.elapsed() < self.ttl {
                    return Ok(p.clone());
                }
            }
        }
        let found = store.principal(hash).await?.map(Arc::new);
        if !self.ttl.is_zero() {
            let mut map = self.entries.lock().map_err(|_| lock_poisoned())?;
            if map.len() > 100_000 {
                // Bounded: unknown keys must not grow memory without limit.
                let ttl = self.ttl;
                map.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            map.insert(*hash, (Instant::now(), found.clone()));
        }
        Ok(found)
    }
}

fn lock_poisoned() -> ApiError {
    ApiError::Internal("key cache lock poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::TenantId;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal {
            tenant: TenantId("con_a".into()),
            default_partner: PartnerId("p1".into()),
            admin: false,
            partners: vec![PartnerId("p1".into()), PartnerId("p2".into())],
        })
    }

    #[test]
    fn partner_headers_are_tried_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(scope_for(&principal(), &h).unwrap().scope.partner.0, "p1");
        h.insert("partner_id", "p2".parse().unwrap());
        assert_eq!(scope_for(&principal(), &h).unwrap().scope.partner.0, "p2");
        h.insert("x-context-partner-id", "p1".parse().unwrap());
        assert_eq!(scope_for(&principal(), &h).unwrap().scope.partner.0, "p1");
        h.insert("x-context-partner-id", "nope".parse().unwrap());
        assert!(matches!(
            scope_for(&principal(), &h),
            Err(ApiError::Unauthorized(m)) if m == PARTNER_INVALID
        ));
    }

    #[test]
    fn contradicting_tenant_header_is_rejected() {
        let mut h = HeaderMap::new();
        h.insert("tenant", "con_a".parse().unwrap());
        assert!(scope_for(&principal(), &h).is_ok());
        h.insert("tenant", "con_b".parse().unwrap());
        assert!(scope_for(&principal(), &h).is_err());
    }

    #[test]
    fn empty_tenant_header_is_ignored() {
        let mut h = HeaderMap::new();
        h.insert("tenant", "".parse().unwrap());
        assert!(scope_for(&principal(), &h).is_ok());
    }
}
