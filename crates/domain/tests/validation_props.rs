//! Property tests: the validators never panic, and valid bodies are accepted and round-trip.

use proptest::prelude::*;
use prospect_events_domain::validation::{
    parse_body, CheckConnectivity, EnrollmentAdd, EnrollmentDelete, EnrollmentUpdate,
    EventsRequest, WebhookAdd, SIMULATION_EVENT_TYPES,
};
use prospect_events_domain::EventType;
use serde_json::{json, Value};

fn all_validators(v: &Value) {
    let _ = EnrollmentAdd::from_json(v);
    let _ = EnrollmentUpdate::from_json(v);
    let _ = EnrollmentDelete::from_json(v);
    let _ = EventsRequest::from_json(v);
    let _ = WebhookAdd::from_json(v);
    let _ = CheckConnectivity::from_json(v);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        "[a-f0-9]{40}".prop_map(Value::String),
        prop::sample::select(vec![
            "prospect_changed_role",
            "award",
            "prospect",
            "2024-01-01",
            "https://x.io"
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let keys = prop::sample::select(vec![
            "request_context",
            "enrollment_key",
            "event_types",
            "prospect_ids",
            "enrollment_id",
            "entity_type",
            "timestamp_from",
            "timestamp_to",
            "partner_id",
            "webhook_url",
            "simulation",
            "event_name",
            "number_of_events",
            "event_time",
            "ttl_days",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..25).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..8).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn pid() -> impl Strategy<Value = String> {
    "[a-f0-9]{40}"
}

fn event_type() -> impl Strategy<Value = EventType> {
    prop::sample::select(EventType::ALL.to_vec())
}

fn first_occurrence<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(v) = parse_body(&bytes) {
            all_validators(&v);
        }
    }

    #[test]
    fn never_panics_on_jsonish_text(s in r#"[\[\]{}":,0-9a-z\\ \-+.eE\n\té日]{0,60}"#) {
        if let Ok(v) = parse_body(s.as_bytes()) {
            all_validators(&v);
        }
    }

    #[test]
    fn never_panics_on_values(v in arb_json()) {
        all_validators(&v);
        // And our decoder reads serde_json's output back to the same value.
        let text = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(parse_body(text.as_bytes()).unwrap(), v);
    }

    #[test]
    fn valid_enrollment_bodies_round_trip(
        key in "\\PC{4,30}",
        types in prop::collection::vec(event_type(), 1..6),
        ids in prop::collection::vec(pid(), 1..=20),
        enrollment_id in ".{0,30}",
        with_ctx in any::<bool>(),
    ) {
        let type_strs: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let mut body = json!({"enrollment_key": key, "event_types": type_strs, "prospect_ids": ids});
        if with_ctx {
            body["request_context"] = json!({"a": [1, 2]});
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let add = EnrollmentAdd::from_json(&parse_body(&bytes).unwrap()).unwrap();
        prop_assert_eq!(&add.enrollment_key, &key);
        prop_assert_eq!(&add.event_types, &first_occurrence(&types));
        prop_assert_eq!(add.prospect_ids.iter().map(|p| p.to_string()).collect::<Vec<_>>(), first_occurrence(&ids));

        body["enrollment_id"] = json!(enrollment_id);
        let upd = EnrollmentUpdate::from_json(&body).unwrap();
        prop_assert_eq!(&upd.enrollment_id, &enrollment_id);
        prop_assert_eq!(upd.prospect_ids, add.prospect_ids);
        let del = EnrollmentDelete::from_json(&json!({"enrollment_id": enrollment_id})).unwrap();
        prop_assert_eq!(del.enrollment_id, enrollment_id);
    }

    #[test]
    fn valid_events_bodies_round_trip(
        types in prop::collection::vec(event_type(), 1..4),
        ids in prop::collection::vec(pid(), 1..=40),
        from in prop::option::of((1970i32..2100, 1u8..=12, 1u8..=28)),
        business in any::<bool>(),
    ) {
        let type_strs: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let mut body = json!({"event_types": type_strs, "prospect_ids": ids,
                              "entity_type": if business { "business" } else { "prospect" }});
        if let Some((y, m, d)) = from {
            body["timestamp_from"] = json!(format!("{y:04}-{m:02}-{d:02}"));
            body["timestamp_to"] = json!(format!("{y:04}-{m:02}-{d:02}T12:00:00Z"));
        }
        let r = EventsRequest::from_json(&body).unwrap();
        prop_assert_eq!(r.event_types, first_occurrence(&types));
        prop_assert_eq!(r.prospect_ids.iter().map(|p| p.to_string()).collect::<Vec<_>>(), first_occurrence(&ids));
        if let (Some((y, m, d)), Some(f), Some(t)) = (from, r.timestamp_from, r.timestamp_to) {
            prop_assert_eq!((f.year(), u8::from(f.month()), f.day()), (y, m, d));
            prop_assert_eq!(t - f, time::Duration::hours(12));
        } else {
            prop_assert!(from.is_none() && r.timestamp_from.is_none());
        }
    }

    #[test]
    fn valid_webhook_bodies_round_trip(
        partner in ".{0,20}",
        host in "[a-z0-9.-]{1,20}",
        path in "(/[a-zA-Z0-9._~%-]{0,10}){0,3}",
        name in prop::sample::select(SIMULATION_EVENT_TYPES.to_vec()),
        n in 1u32..=10,
    ) {
        let url = format!("https://{host}{path}");
        let w = WebhookAdd::from_json(&json!({"partner_id": partner, "webhook_url": url})).unwrap();
        prop_assert_eq!(w.webhook_url, url);
        prop_assert_eq!(&w.partner_id, &partner);
        let c = CheckConnectivity::from_json(&json!({"partner_id": partner,
            "simulation": {"event_name": name, "number_of_events": n}})).unwrap();
        let s = c.simulation.unwrap();
        prop_assert_eq!((s.event_name.as_str(), s.number_of_events), (name, n));
    }
}
