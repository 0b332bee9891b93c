//! Simulated notifications for the connectivity check's `simulation` option: realistic fake
//! data for any event type, as [`Notification::simulation`]s queued like real ones. Pure apart
//! from the random ids it draws.

use domain::notification::{random_delivery_id, simulated_entity_type, Notification};
use domain::snapshot::format_timestamp;
use domain::validation::Simulation;
use serde_json::{json, Value};
use store::{DirectNotification, WebhookKey, LEGACY_WEBHOOK_ID};
use time::OffsetDateTime;

/// `sim.number_of_events` realistic notifications of one event type, at `sim.event_time` or
/// `now`, each with fresh random ids.
pub(crate) fn notifications(
    webhook: &WebhookKey,
    sim: &Simulation,
    now: OffsetDateTime,
) -> Vec<DirectNotification> {
    let time = sim.event_time.unwrap_or(now);
    let scope = &webhook.scope;
    (0..sim.number_of_events)
        .map(|i| {
            let entity_id = match simulated_entity_type(&sim.event_name) {
                "prospect" => hex::encode(rand::random::<[u8; 20]>()),
                _ => hex::encode(rand::random::<[u8; 16]>()),
            };
            let notification = Notification::simulation(
                &scope.tenant,
                &scope.partner,
                rand::random(),
                &sim.event_name,
                time,
                entity_id,
                fake_data(&sim.event_name, i, now),
            );
            DirectNotification {
                delivery_id: random_delivery_id(rand::random()),
                event_id: notification.event_id().to_string(),
                event_name: notification.event_name().to_string(),
                event_time: notification.event_time().unix_timestamp(),
                enrollment_key: notification.enrollment_key().to_string(),
                payload: if webhook.webhook_id == LEGACY_WEBHOOK_ID {
                    notification.to_json()
                } else {
                    notification.to_json_v2(&webhook.webhook_id)
                },
            }
        })
        .collect()
}

/// The `data` of the `i`-th simulated `event_name`, shaped like the real event's.
fn fake_data(event_name: &str, i: u32, now: OffsetDateTime) -> Value {
    const COMPANIES: [&str; 4] = ["Acme Corp", "Globex", "Initech", "Umbrella Group"];
    const TITLES: [&str; 4] = [
        "VP Sales",
        "Head of Engineering",
        "CFO",
        "Director of Marketing",
    ];
    const NAMES: [&str; 4] = [
        "Ada Lovelace",
        "Grace Hopper",
        "Alan Turing",
        "Edsger Dijkstra",
    ];
    const ROUNDS: [&str; 4] = ["Seed", "Series A", "Series B", "Series C"];
    let c = |k: u32| COMPANIES[((i + k) % 4) as usize];
    let t = |k: u32| TITLES[((i + k) % 4) as usize];
    match event_name {
        "prospect_changed_role" | "prospect_changed_company" => json!({
            "event_name": event_name,
            "current_company_name": c(if event_name == "prospect_changed_company" { 1 } else { 0 }),
            "current_company_id": hex::encode(rand::random::<[u8; 16]>()),
            "current_job_title": t(1),
            "previous_company_name": c(0),
            "previous_company_id": hex::encode(rand::random::<[u8; 16]>()),
            "previous_job_title": t(0),
        }),
        "prospect_job_start_anniversary" => json!({
            "event_name": event_name,
            "full_name": NAMES[(i % 4) as usize],
            "company_name": c(0),
            "years_at_company": 1 + i % 10,
            "job_title": t(0),
            "job_anniversary_date": format_timestamp(now)[..10].to_string(),
            "linkedin_url": "https://www.linkedin.com/in/example",
        }),
        other
            if other.contains("funding")
                || other.contains("investment")
                || other == "ipo_announcement" =>
        {
            json!({
                "event_name": other,
                "company_name": c(0),
                "amount_usd": 5_000_000 * (1 + i as u64),
                "round": ROUNDS[(i % 4) as usize],
                "investors": ["Example Ventures", "Sample Capital"],
            })
        }
        other
            if other.starts_with("hiring_in_")
                || other.starts_with("increase_in_")
                || other.starts_with("decrease_in_") =>
        {
            json!({
                "event_name": other,
                "company_name": c(0),
                "department": other.split("_in_").nth(1).unwrap_or("all_departments"),
                "change_percentage": 5 + (i % 20),
                "job_count": 3 + i,
            })
        }
        other => json!({
            "event_name": other,
            "company_name": c(0),
            "summary": format!("{} at {}", other.replace('_', " "), c(0)),
            "link": "https://news.example.com/article",
        }),
    }
}
