//! Property tests of detection: order independence of the final state, idempotence, and
//! panic-free parsing.

use proptest::prelude::*;
use prospect_events_domain::detect::{anniversaries, detect_changes, Outcome};
use prospect_events_domain::snapshot::{Snapshot, COLUMNS};
use serde_json::json;
use time::{Date, Duration};

const PID: &str = "20ae6cbf564ee683e66685e429844a5ff8ffc30f";

/// Small value domains so that collisions (same observed_at, same company...) are frequent.
fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    (
        0i64..6, // observed_at: day offset
        0i64..3, // hour
        prop::option::of(prop::sample::select(vec!["Ann", "ann  lee"])),
        prop::option::of(prop::sample::select(vec![
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        ])),
        prop::option::of(prop::sample::select(vec!["Acme", " ACME ", "Globex"])),
        prop::option::of(prop::sample::select(vec!["Dev", "dev", "CTO"])),
        prop::option::of(0i64..3000),
    )
        .prop_map(|(day, hour, name, cid, cname, title, start)| {
            let obs = Date::from_calendar_date(2024, time::Month::January, 1)
                .unwrap()
                .midnight()
                .assume_utc()
                + Duration::days(day)
                + Duration::hours(hour);
            let start = start.map(|d| {
                let d = Date::from_calendar_date(2016, time::Month::January, 1).unwrap()
                    + Duration::days(d);
                format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
            });
            Snapshot::from_json(&json!({
                "prospect_id": PID,
                "observed_at": obs.format(&time::format_description::well_known::Rfc3339).unwrap(),
                "full_name": name, "company_id": cid, "company_name": cname,
                "job_title": title, "job_start_date": start,
            }))
            .unwrap()
        })
}

fn fold(snaps: &[Snapshot]) -> (Option<Snapshot>, usize) {
    let mut cur: Option<Snapshot> = None;
    let mut events = 0;
    for s in snaps {
        let d = detect_changes(cur.as_ref(), s);
        assert_eq!(
            d.becomes_current,
            matches!(d.outcome, Outcome::Baseline | Outcome::Changed)
        );
        if d.outcome != Outcome::Changed {
            assert!(d.events.is_empty());
        }
        events += d.events.len();
        if d.becomes_current {
            cur = Some(s.clone());
        }
    }
    (cur, events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_permutation_ends_in_the_same_state(
        (snaps, perm) in prop::collection::vec(arb_snapshot(), 1..8)
            .prop_flat_map(|v| { let n = v.len(); (Just(v), Just((0..n).collect::<Vec<_>>()).prop_shuffle()) })
    ) {
        let permuted: Vec<Snapshot> = perm.iter().map(|&i| snaps[i].clone()).collect();
        let (a, _) = fold(&snaps);
        let (b, _) = fold(&permuted);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn replaying_gives_no_new_events(snaps in prop::collection::vec(arb_snapshot(), 1..8)) {
        let (cur, _) = fold(&snaps);
        let cur = cur.unwrap();
        // the current snapshot again, and every snapshot again: no events, nothing replaces it
        for s in &snaps {
            let d = detect_changes(Some(&cur), s);
            prop_assert!(d.events.is_empty());
            prop_assert!(!d.becomes_current);
        }
        // the same snapshot twice in a row: second time Unchanged
        for s in &snaps {
            let d = detect_changes(Some(s), s);
            prop_assert_eq!(d.outcome, Outcome::Unchanged);
            prop_assert!(d.events.is_empty());
        }
    }

    #[test]
    fn detection_is_deterministic(a in arb_snapshot(), b in arb_snapshot()) {
        prop_assert_eq!(detect_changes(Some(&a), &b), detect_changes(Some(&a), &b));
    }

    #[test]
    fn anniversary_windows_compose(s in arb_snapshot(), a in 0i64..4000, m in 0i64..4000, b in 0i64..4000) {
        let base = Date::from_calendar_date(2015, time::Month::January, 1).unwrap();
        let mut xs = [a, m, b];
        xs.sort();
        let [a, m, b] = xs.map(|d| base + Duration::days(d));
        let mut split = anniversaries(&s, a, m);
        split.extend(anniversaries(&s, m, b));
        prop_assert_eq!(anniversaries(&s, a, b), split);
    }

    #[test]
    fn json_parsing_never_panics(line in ".{0,200}") {
        let _ = Snapshot::from_json_line(&line);
    }

    /// Objects of known and unknown keys (repeats allowed) with values of every kind: a line
    /// reads as the `Value` it parses to (the same snapshot or the same message).
    #[test]
    fn a_line_reads_as_its_value(
        pairs in prop::collection::vec((
            prop_oneof![prop::sample::select(COLUMNS.to_vec()).prop_map(String::from), "[a-z_]{1,3}"],
            prop_oneof![
                Just("null".to_string()),
                Just(format!("\"{PID}\"")),
                Just("\"2024-02-29\"".to_string()),
                ".{0,12}".prop_map(|s| json!(s).to_string()),
                any::<f64>().prop_map(|f| json!(f).to_string()),
                any::<bool>().prop_map(|b| b.to_string()),
                prop::collection::vec(any::<i32>(), 0..3).prop_map(|v| json!(v).to_string()),
                Just("{\"prospect_id\":[1,{}]}".to_string()),
            ],
        ), 0..10),
    ) {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
        let line = format!("{{{}}}", body.join(","));
        let via_value = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| format!("invalid JSON: {e}"))
            .and_then(|v| Snapshot::from_json(&v));
        prop_assert_eq!(Snapshot::from_json_line(&line), via_value);
    }

    #[test]
    fn json_field_parsing_never_panics(vals in prop::collection::vec(".{0,40}", 8)) {
        let obj: serde_json::Map<String, serde_json::Value> =
            COLUMNS.iter().zip(&vals).map(|(k, v)| (k.to_string(), json!(v))).collect();
        let _ = Snapshot::from_json_line(&serde_json::Value::Object(obj).to_string());
        let _ = Snapshot::from_fields(COLUMNS.iter().copied().zip(vals.iter().map(String::as_str)));
    }

    #[test]
    fn timestamps_near_the_limits_never_panic(
        date in "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        time in "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?",
        off in "(Z|z|[+-][0-9]{2}:[0-9]{2})",
        sep in "[Tt ]",
    ) {
        let line = json!({"prospect_id": PID, "observed_at": format!("{date}{sep}{time}{off}"), "job_start_date": date}).to_string();
        if let Ok(s) = Snapshot::from_json_line(&line) {
            // a parsed snapshot always serializes and reads back identically
            prop_assert_eq!(Snapshot::from_json(&s.to_json()).unwrap(), s.clone());
            let _ = anniversaries(&s, Date::MIN, Date::MAX);
        }
    }
}
