//! Idempotency keys: the rule deciding what a request carrying a key may do, and the fence that
//! ties a request's writes to its reservation. Backends hold only the SQL (their
//! `idempotency.rs`); nothing here touches a database.
//!
//! A request reserves its key (a row with a random `token` and a lease), executes, then stores
//! its answer. Every store write the request makes while [`fenced`] checks, in the write's own
//! transaction, that the reservation still carries its token, and marks it `executed`. So the
//! write commits at most once per key (a reservation taken over after its lease makes the old
//! holder's writes fail), and a reservation whose answer was never stored (a crash or an outage
//! between the write and the answer) tells whether the write committed: re-executed only when it
//! did not (docs/decisions.md D41).

use crate::Scope;
use std::time::Duration;

/// How long a stored answer is replayed (and a key cannot be reused for another request).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a reservation without an answer keeps concurrent duplicates out; after it a retry
/// takes the key over (re-executing only if nothing was written).
pub const IDEMPOTENCY_LEASE: Duration = Duration::from_secs(60);
/// The same spans in the backends' column unit (unix milliseconds).
pub(crate) const IDEMPOTENCY_TTL_MS: i64 = IDEMPOTENCY_TTL.as_millis() as i64;
pub(crate) const IDEMPOTENCY_LEASE_MS: i64 = IDEMPOTENCY_LEASE.as_millis() as i64;
/// Longest accepted key.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// A stored answer: status code and body bytes as first sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdemAnswer {
    pub status: u16,
    /// True when `body` is an error detail the API renders (with the retry's correlation id),
    /// false when it is the response body itself.
    pub detail: bool,
    pub body: Vec<u8>,
}

/// A held reservation: the request's writes are fenced with it (see [`fenced`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdemFence {
    pub scope: Scope,
    pub key: String,
    pub token: i64,
}

/// What a request carrying an idempotency key may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemBegin {
    /// The key is reserved for this request: execute it, then store or release the answer.
    Execute(IdemFence),
    /// The same request was answered before: send this answer again.
    Replay(IdemAnswer),
    /// The key was used for a different request (method, path or body).
    Mismatch,
    /// The same request is being executed right now (its reservation's lease runs).
    InProgress,
    /// The same request was executed (its write committed) but its answer was never stored; it
    /// will not be executed again.
    ExecutedWithoutAnswer,
}

/// A stored key row as the rule needs it.
#[derive(Clone, Debug)]
pub struct IdemRow {
    pub fingerprint: Vec<u8>,
    pub created_at: i64,
    pub lease_until: i64,
    pub executed: bool,
    pub answer: Option<IdemAnswer>,
}

/// What the backend must do with a key, given its stored row (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemStep {
    /// Write a fresh reservation (replacing an expired row, if any) and execute.
    Reserve,
    /// Take over an abandoned reservation (new token and lease; nothing was written) and execute.
    TakeOver,
    /// Answer without executing.
    Answer(IdemBegin),
}

/// The rule, once for both backends (`now_ms` and the row's times in unix milliseconds, the
/// backends' column unit).
pub fn decide(row: Option<IdemRow>, fingerprint: &[u8], now_ms: i64) -> IdemStep {
    let Some(row) = row.filter(|r| r.created_at > now_ms - IDEMPOTENCY_TTL_MS) else {
        return IdemStep::Reserve;
    };
    if row.fingerprint != fingerprint {
        return IdemStep::Answer(IdemBegin::Mismatch);
    }
    if let Some(answer) = row.answer {
        return IdemStep::Answer(IdemBegin::Replay(answer));
    }
    if row.lease_until > now_ms {
        return IdemStep::Answer(IdemBegin::InProgress);
    }
    if row.executed {
        return IdemStep::Answer(IdemBegin::ExecutedWithoutAnswer);
    }
    IdemStep::TakeOver
}

/// A fresh random fencing token.
pub fn new_token() -> i64 {
    rand::random::<i64>()
}

tokio::task_local! {
    static FENCE: IdemFence;
}

/// Runs `f` (a request's handler) with its store writes fenced by `fence`.
pub async fn fenced<F: std::future::Future>(fence: IdemFence, f: F) -> F::Output {
    FENCE.scope(fence, f).await
}

/// The fence of the request running on this task, if it carries an idempotency key.
pub(crate) fn current_fence() -> Option<IdemFence> {
    FENCE.try_with(|f| f.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lease_until: i64, executed: bool, answer: Option<IdemAnswer>) -> IdemRow {
        IdemRow {
            fingerprint: vec![1],
            created_at: 1_000,
            lease_until,
            executed,
            answer,
        }
    }

    #[test]
    fn the_rule() {
        let now = 2_000;
        let answer = IdemAnswer {
            status: 200,
            detail: false,
            body: b"{}".to_vec(),
        };
        assert_eq!(decide(None, &[1], now), IdemStep::Reserve);
        let expired = IdemRow {
            created_at: now - IDEMPOTENCY_TTL_MS,
            ..row(0, true, Some(answer.clone()))
        };
        assert_eq!(decide(Some(expired), &[2], now), IdemStep::Reserve);
        assert_eq!(
            decide(Some(row(0, true, Some(answer.clone()))), &[2], now),
            IdemStep::Answer(IdemBegin::Mismatch)
        );
        assert_eq!(
            decide(Some(row(0, true, Some(answer.clone()))), &[1], now),
            IdemStep::Answer(IdemBegin::Replay(answer))
        );
        assert_eq!(
            decide(Some(row(now + 1, true, None)), &[1], now),
            IdemStep::Answer(IdemBegin::InProgress)
        );
        assert_eq!(
            decide(Some(row(now, true, None)), &[1], now),
            IdemStep::Answer(IdemBegin::ExecutedWithoutAnswer)
        );
        assert_eq!(
            decide(Some(row(now, false, None)), &[1], now),
            IdemStep::TakeOver
        );
    }
}
