//! API keys, tenants and partners for SQLite: SQL and row mapping only.

use super::internal;
use crate::model::*;
use crate::rules::{from_unix_seconds, unix_seconds};
use crate::StoreResult;
use domain::{PartnerId, TenantId};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn create_key(c: &Connection, key: NewApiKey) -> StoreResult<()> {
    let created_at = unix_seconds(key.created_at);
    ensure_partner(c, &key.tenant, &key.partner, created_at)?;
    c.prepare_cached(
        "INSERT INTO api_keys (key_hash, prefix, tenant_id, partner_id, is_admin, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            &key.key_hash[..],
            key.prefix,
            key.tenant.0,
            key.partner.0,
            key.admin,
            created_at
        ])
    })
    .map_err(internal)?;
    Ok(())
}

pub(super) fn list_keys(c: &Connection) -> StoreResult<Vec<ApiKeyInfo>> {
    let mut s = c
        .prepare_cached(
            "SELECT prefix, tenant_id, partner_id, is_admin, created_at, revoked_at
             FROM api_keys ORDER BY id",
        )
        .map_err(internal)?;
    let rows = s
        .query_map([], |r| {
            Ok(ApiKeyInfo {
                prefix: r.get(0)?,
                tenant: TenantId(r.get(1)?),
                partner: PartnerId(r.get(2)?),
                admin: r.get(3)?,
                created_at: from_unix_seconds(r.get(4)?),
                revoked_at: r.get::<_, Option<i64>>(5)?.map(from_unix_seconds),
            })
        })
        .map_err(internal)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(internal)
}

pub(super) fn revoke_keys(
    c: &Connection,
    prefix: &str,
    now: time::OffsetDateTime,
) -> StoreResult<u64> {
    // Prefix match without LIKE wildcards: compare the leading substring.
    let n = c
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = ?2
             WHERE revoked_at IS NULL AND substr(prefix, 1, length(?1)) = ?1",
        )
        .and_then(|mut s| s.execute(params![prefix, unix_seconds(now)]))
        .map_err(internal)?;
    Ok(n as u64)
}

pub(super) fn principal(c: &Connection, key_hash: &[u8; 32]) -> StoreResult<Option<Principal>> {
    let row = c
        .prepare_cached(
            "SELECT tenant_id, partner_id, is_admin FROM api_keys
             WHERE key_hash = ?1 AND revoked_at IS NULL",
        )
        .and_then(|mut s| {
            s.query_row(params![&key_hash[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .optional()
        })
        .map_err(internal)?;
    let Some((tenant, partner, admin)) = row else {
        return Ok(None);
    };
    let mut s = c
        .prepare_cached("SELECT partner_id FROM partners WHERE tenant_id = ?1")
        .map_err(internal)?;
    let partners = s
        .query_map(params![tenant], |r| r.get::<_, String>(0).map(PartnerId))
        .map_err(internal)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)?;
    Ok(Some(Principal {
        tenant: TenantId(tenant),
        default_partner: PartnerId(partner),
        admin,
        partners,
    }))
}

fn ensure_partner(
    c: &Connection,
    tenant: &TenantId,
    partner: &PartnerId,
    now: i64,
) -> StoreResult<()> {
    c.prepare_cached("INSERT OR IGNORE INTO tenants (tenant_id, created_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![tenant.0, now]))
        .map_err(internal)?;
    c.prepare_cached(
        "INSERT OR IGNORE INTO partners (tenant_id, partner_id, created_at) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![tenant.0, partner.0, now]))
    .map_err(internal)?;
    Ok(())
}
