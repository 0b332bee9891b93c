//! Issue 3 end to end: enroll, patch, ingest snapshots through the admin endpoint (NDJSON and
//! CSV), then the events API and the outbox hold exactly the expected events and
//! (event, enrollment, key-at-queue-time) triples; re-ingestion is a no-op; invalid lines are
//! reported and never block the valid ones; the admin endpoint is admin-only.
//!
//! Dates are relative to today (UTC) because the events API's default window (3 months) and the
//! anniversaries fired at ingestion (due within 7 days) depend on the real clock.

use domain::snapshot::format_date;
use prospect_events_e2e::{TestApp, P1, P2, P3};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use time::{Date, Duration, Month, OffsetDateTime};

const ROLE: &str = "prospect_changed_role";
const COMPANY: &str = "prospect_changed_company";
const ANNIV: &str = "prospect_job_start_anniversary";
const ALL: [&str; 3] = [ROLE, COMPANY, ANNIV];

const CO_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const CO_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const CO_C: &str = "cccccccccccccccccccccccccccccccc";
const NOBODY: &str = "ffffffffffffffffffffffffffffffffffffffff";

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// today + n days, `YYYY-MM-DD`.
fn day(n: i64) -> String {
    format_date(today() + Duration::days(n))
}

/// Midnight UTC of today + n days as the API prints it.
fn midnight(n: i64) -> String {
    format!("{}T00:00:00Z", day(n))
}

/// A job start whose `years`-th anniversary is today + n days (or the next day that exists in
/// both years, to stay clear of 29 February), and that anniversary date.
fn start_with_anniversary(n: i64, years: i32) -> (String, String) {
    let mut target = today() + Duration::days(n);
    loop {
        if let Ok(start) =
            Date::from_calendar_date(target.year() - years, target.month(), target.day())
        {
            if !(target.month() == Month::February && target.day() == 29) {
                return (format_date(start), format_date(target));
            }
        }
        target += Duration::days(1);
    }
}

/// A job start whose anniversaries are about half a year away from today.
fn quiet_start() -> String {
    let d = today() + Duration::days(180);
    let d = Date::from_calendar_date(d.year() - 5, d.month(), d.day().min(28)).unwrap();
    format_date(d)
}

async fn enroll(app: &TestApp, key: &str, ids: &[&str], types: &[&str]) -> String {
    let resp = app
        .req(Method::POST, "/v1/prospects/events/enrollments")
        .json(&json!({"enrollment_key": key, "prospect_ids": ids, "event_types": types}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["enrollment_id"].as_str().unwrap().to_string()
}

async fn patch(app: &TestApp, id: &str, key: &str, ids: &[&str], types: &[&str]) {
    let resp = app
        .req(Method::PATCH, "/v1/prospects/events/enrollments")
        .json(&json!({"enrollment_id": id, "enrollment_key": key, "prospect_ids": ids, "event_types": types}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap());
}

async fn delete(app: &TestApp, id: &str) {
    let resp = app
        .req(Method::DELETE, "/v1/prospects/events/enrollments")
        .json(&json!({"enrollment_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The SPEC's summary keys of an ingestion answer, in a comparable form.
fn summary(v: &Value) -> [u64; 7] {
    let s = &v["summary"];
    [
        "lines",
        "accepted",
        "rejected",
        "baselines",
        "unchanged",
        "events_created",
        "notifications_queued",
    ]
    .map(|k| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("summary.{k} missing in {v}"))
    })
}

/// Error lines of an ingestion answer as (line, error) pairs.
fn errors(v: &Value) -> Vec<(u64, String)> {
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["error"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Events of an events-API answer as (prospect, name, time, data), in response order.
fn events_of(v: &Value) -> Vec<(String, String, String, Value)> {
    v["output_events"]
        .as_array()
        .unwrap_or_else(|| panic!("no output_events in {v}"))
        .iter()
        .map(|e| {
            let id = e["event_id"].as_str().unwrap();
            assert!(
                id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "event_id {id}"
            );
            assert_eq!(e["data"]["event_name"], e["event_name"]);
            let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                [
                    "event_name",
                    "event_time",
                    "event_id",
                    "data",
                    "prospect_id"
                ]
            );
            (
                e["prospect_id"].as_str().unwrap().to_string(),
                e["event_name"].as_str().unwrap().to_string(),
                e["event_time"].as_str().unwrap().to_string(),
                e["data"].clone(),
            )
        })
        .collect()
}

type Ev = (String, String, String, Value);

/// Asserts the answer lists exactly `expected`, newest first (ties in any order).
fn assert_events(v: &Value, expected: &[Ev]) {
    let got = events_of(v);
    let times: Vec<OffsetDateTime> = got
        .iter()
        .map(|e| {
            OffsetDateTime::parse(&e.2, &time::format_description::well_known::Rfc3339).unwrap()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {got:#?}"
    );
    let key = |e: &Ev| (e.2.clone(), e.0.clone(), e.1.clone());
    let mut g = got.clone();
    let mut x = expected.to_vec();
    g.sort_by_key(key);
    x.sort_by_key(key);
    assert_eq!(g, x, "events differ; answer: {v:#}");
    let status = if expected.is_empty() {
        "miss"
    } else {
        "success"
    };
    assert_eq!(v["response_context"]["request_status"], status);
}

fn ev(p: &str, name: &str, time: String, data: Value) -> Ev {
    (p.to_string(), name.to_string(), time, data)
}

#[allow(clippy::too_many_arguments)]
fn change(
    name: &str,
    cur_name: Option<&str>,
    cur_id: Option<&str>,
    cur_title: Option<&str>,
    prev_name: Option<&str>,
    prev_id: Option<&str>,
    prev_title: Option<&str>,
) -> Value {
    json!({
        "event_name": name,
        "current_company_name": cur_name,
        "current_company_id": cur_id,
        "current_job_title": cur_title,
        "previous_company_name": prev_name,
        "previous_company_id": prev_id,
        "previous_job_title": prev_title,
    })
}

fn csv_row(fields: [&str; 8]) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn all_events(app: &TestApp) -> Vec<Value> {
    let (st, v) = app
        .events(&json!({"event_types": ALL, "prospect_ids": [P1, P2, P3], "timestamp_from": day(-2000)}))
        .await;
    assert_eq!(st, 200);
    v["output_events"].as_array().unwrap().clone()
}

/// (prospect, name, event_time) → event_id of every stored event of P1..P3.
async fn event_ids(app: &TestApp) -> BTreeMap<(String, String, String), String> {
    all_events(app)
        .await
        .iter()
        .map(|e| {
            (
                (
                    e["prospect_id"].as_str().unwrap().to_string(),
                    e["event_name"].as_str().unwrap().to_string(),
                    e["event_time"].as_str().unwrap().to_string(),
                ),
                e["event_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The outbox as sorted (event_id, enrollment_id, enrollment_key) triples; checks each payload.
async fn outbox(app: &TestApp) -> Vec<(String, String, String)> {
    let rows = app.store.outbox(None, 1000).await.unwrap();
    let mut out: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let eid = r.enrollment_id.clone().expect("enrollment id");
            assert_eq!(r.tenant.0, "con_test");
            assert_eq!(r.partner.0, "partner_a");
            assert_eq!(r.payload["event_id"], r.event_id.as_str());
            assert_eq!(r.payload["event_name"], r.event_name.as_str());
            assert_eq!(r.payload["enrollment_id"], eid.as_str());
            assert_eq!(r.payload["enrollment_key"], r.enrollment_key.as_str());
            assert_eq!(r.payload["entity_type"], "prospect");
            assert_eq!(r.payload["data"]["event_name"], r.event_name.as_str());
            (r.event_id.clone(), eid, r.enrollment_key.clone())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn enroll_patch_ingest_then_events_and_outbox() {
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "partner_a", true).await;

    // E1 covers P1, P2 for role and company; E2 covers P1 for company and anniversaries.
    let e1 = enroll(&app, "keyone", &[P1, P2], &[ROLE, COMPANY]).await;
    let e2 = enroll(&app, "keytwo", &[P1], &[COMPANY, ANNIV]).await;

    // --- Phase 1 (NDJSON, before the PATCH) ---------------------------------------------
    let p1_start = quiet_start();
    let t300 = format!("{}T09:15:00Z", day(-300));
    // 12:00+02:00 is 10:00Z.
    let t40_local = format!("{}T12:00:00+02:00", day(-40));
    let phase1 = [
        json!({"prospect_id": P1, "observed_at": day(-400), "full_name": "Ann Lee",
               "linkedin_url": "https://www.linkedin.com/in/annlee", "company_id": CO_A,
               "company_name": "Acme", "job_title": "Engineer", "job_start_date": p1_start})
        .to_string(),
        json!({"prospect_id": P2, "observed_at": day(-60), "company_name": "Initech",
               "job_title": "Analyst"})
        .to_string(),
        r#"{"prospect_id": "20ae6cbf564ee683e66685e429844a5ff8ffc30f", "observed_at": 5}"#
            .to_string(),
        String::new(),
        "not json".to_string(),
        json!({"prospect_id": P1, "observed_at": t300, "full_name": "Ann Lee",
               "company_id": CO_A, "company_name": "ACME", "job_title": "Senior Engineer",
               "unknown_column": 1})
        .to_string(),
        json!({"prospect_id": P2, "observed_at": t40_local, "company_name": "  HOOLI   inc",
               "job_title": "analyst ", "company_id": null, "job_start_date": ""})
        .to_string(),
    ]
    .join("\n")
        + "\n";
    let (st, v) = app
        .ingest_snapshots(&admin, Some("application/x-ndjson"), phase1.clone())
        .await;
    assert_eq!(st, 200, "{v}");
    // 6 non-blank lines, 2 rejected; P1, P2 baselines; P1 role, P2 company events, both to E1.
    assert_eq!(summary(&v), [6, 4, 2, 2, 0, 2, 2], "{v:#}");
    let errs = errors(&v);
    assert_eq!(
        errs.iter().map(|e| e.0).collect::<Vec<_>>(),
        [3, 5],
        "{v:#}"
    );
    assert!(errs[0].1.starts_with("observed_at"), "{errs:?}");
    assert!(errs[1].1.starts_with("invalid JSON"), "{errs:?}");
    assert_eq!(v["errors_truncated"], false);
    assert_eq!(v["response_context"]["request_status"], "success");

    // --- PATCH: E1 becomes keyone_b, P1 only, role only --------------------------------------
    patch(&app, &e1, "keyone_b", &[P1], &[ROLE]).await;

    // --- Phase 2 (CSV) ---------------------------------------------------------------------
    let (p1_anniv_start, p1_anniv) = start_with_anniversary(2, 1);
    let (p3_anniv_start, p3_anniv) = start_with_anniversary(3, 2);
    let t5 = format!("{}T08:30:00Z", day(-5));
    let s3 = csv_row([
        P1,
        &day(-20),
        "Ann Lee",
        "https://www.linkedin.com/in/annlee",
        CO_B,
        "Globex, Inc.",
        "CTO",
        &day(-25),
    ]);
    let phase2 = [
        "prospect_id,observed_at,full_name,linkedin_url,company_id,company_name,job_title,job_start_date"
            .to_string(),
        s3.clone(),
        // Older than the current state: nothing.
        csv_row([P1, &day(-350), "Ann Lee", "", CO_C, "Other", "Intern", ""]),
        csv_row(["XYZ", &day(-3), "", "", "", "", "", ""]),
        // Identical to the current state: nothing.
        s3.clone(),
        // Same company (by id) and title, new job start: the first anniversary is due in 2 days.
        csv_row([
            P1,
            &day(-2),
            "Ann Lee",
            "https://www.linkedin.com/in/annlee",
            &CO_B.to_uppercase(),
            "GLOBEX,  inc.",
            " cto ",
            &p1_anniv_start,
        ]),
        // P2 is no longer enrolled: its events are stored, nothing is queued.
        csv_row([P2, &day(-10), "", "", "", "hooli Inc", "Manager", ""]),
        // P3 was never enrolled; its baseline makes an anniversary due in 3 days.
        csv_row([
            P3,
            &day(-30),
            "Bo Chen",
            "",
            "",
            "Umbrella",
            "VP Sales",
            &p3_anniv_start,
        ]),
        csv_row([P3, "yesterday", "", "", "", "", "", ""]),
        csv_row([
            P3,
            &t5,
            "Bo Chen",
            "",
            "",
            "Umbrella",
            "Chief Revenue Officer",
            &p3_anniv_start,
        ]),
    ]
    // LF line ends: with CRLF the reported line numbers are off by one (see
    // crates/ingest/tests/csv.rs, `crlf_line_numbers`).
    .join("\n")
        + "\n";
    let (st, v) = app
        .ingest_snapshots(&admin, Some("text/csv; charset=utf-8"), phase2.clone())
        .await;
    assert_eq!(st, 200, "{v}");
    // 9 records, 2 rejected, 1 baseline (P3), 2 unchanged; events: P1 role+company, P1
    // anniversary, P2 role, P3 anniversary, P3 role = 6; queued: P1 role→E1, company→E2,
    // anniversary→E2 = 3.
    assert_eq!(summary(&v), [9, 7, 2, 1, 2, 6, 3], "{v:#}");
    let errs = errors(&v);
    assert_eq!(
        errs.iter().map(|e| e.0).collect::<Vec<_>>(),
        [4, 9],
        "{v:#}"
    );
    assert!(errs[0].1.starts_with("prospect_id"), "{errs:?}");
    assert!(errs[1].1.starts_with("observed_at"), "{errs:?}");

    // --- The events API ------------------------------------------------------------------
    let p1_role_old = ev(
        P1,
        ROLE,
        t300.clone(),
        change(
            ROLE,
            Some("ACME"),
            Some(CO_A),
            Some("Senior Engineer"),
            Some("Acme"),
            Some(CO_A),
            Some("Engineer"),
        ),
    );
    let p2_company = ev(
        P2,
        COMPANY,
        format!("{}T10:00:00Z", day(-40)),
        change(
            COMPANY,
            Some("  HOOLI   inc"),
            None,
            Some("analyst "),
            Some("Initech"),
            None,
            Some("Analyst"),
        ),
    );
    let p1_move = |name| {
        ev(
            P1,
            name,
            midnight(-25),
            change(
                name,
                Some("Globex, Inc."),
                Some(CO_B),
                Some("CTO"),
                Some("ACME"),
                Some(CO_A),
                Some("Senior Engineer"),
            ),
        )
    };
    let (p1_role, p1_company) = (p1_move(ROLE), p1_move(COMPANY));
    let p1_anniversary = ev(
        P1,
        ANNIV,
        format!("{p1_anniv}T00:00:00Z"),
        json!({"event_name": ANNIV, "full_name": "Ann Lee", "company_name": "GLOBEX,  inc.",
               "years_at_company": 1, "job_title": " cto ", "job_anniversary_date": p1_anniv,
               "linkedin_url": "https://www.linkedin.com/in/annlee"}),
    );
    let p2_role = ev(
        P2,
        ROLE,
        midnight(-10),
        change(
            ROLE,
            Some("hooli Inc"),
            None,
            Some("Manager"),
            Some("  HOOLI   inc"),
            None,
            Some("analyst "),
        ),
    );
    let p3_anniversary = ev(
        P3,
        ANNIV,
        format!("{p3_anniv}T00:00:00Z"),
        json!({"event_name": ANNIV, "full_name": "Bo Chen", "company_name": "Umbrella",
               "years_at_company": 2, "job_title": "VP Sales", "job_anniversary_date": p3_anniv,
               "linkedin_url": null}),
    );
    let p3_role = ev(
        P3,
        ROLE,
        t5.clone(),
        change(
            ROLE,
            Some("Umbrella"),
            None,
            Some("Chief Revenue Officer"),
            Some("Umbrella"),
            None,
            Some("VP Sales"),
        ),
    );

    // Default window: the last 3 months (the P1 role change 300 days ago is outside), newest
    // first, future anniversaries included.
    let (st, v) = app
        .events(
            &json!({"request_context": {"source": "e2e"}, "entity_type": "prospect",
                        "event_types": ALL, "prospect_ids": [P1, P2, P3]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_events(
        &v,
        &[
            p3_anniversary.clone(),
            p1_anniversary.clone(),
            p3_role.clone(),
            p2_role.clone(),
            p1_role.clone(),
            p1_company.clone(),
            p2_company.clone(),
        ],
    );
    // Strictly newer events come first, exactly.
    let order: Vec<(String, String)> = events_of(&v)
        .into_iter()
        .map(|e| (e.0, e.1))
        .filter(|(p, n)| !(p == P1 && (n == ROLE || n == COMPANY)))
        .collect();
    assert_eq!(
        order,
        [
            (P3, ANNIV),
            (P1, ANNIV),
            (P3, ROLE),
            (P2, ROLE),
            (P2, COMPANY)
        ]
        .map(|(p, n)| (p.to_string(), n.to_string()))
    );

    // timestamp_from as a date, timestamp_to as RFC 3339 (inclusive).
    let (st, v) = app
        .events(&json!({"event_types": ALL, "prospect_ids": [P1, P2, P3],
                        "timestamp_from": day(-365), "timestamp_to": midnight(-20)}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_events(
        &v,
        &[
            p1_role.clone(),
            p1_company.clone(),
            p2_company.clone(),
            p1_role_old.clone(),
        ],
    );

    // Both bounds on the exact event time, one with an offset, one as a date.
    let (st, v) = app
        .events(&json!({"event_types": ALL, "prospect_ids": [P1],
                        "timestamp_from": format!("{}T02:00:00+02:00", day(-25)),
                        "timestamp_to": day(-25)}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_events(&v, &[p1_role.clone(), p1_company.clone()]);

    // Filter by type.
    let (st, v) = app
        .events(&json!({"event_types": [ANNIV], "prospect_ids": [P1, P2, P3]}))
        .await;
    assert_eq!(st, 200);
    assert_events(&v, &[p3_anniversary.clone(), p1_anniversary.clone()]);

    // Prospects no longer enrolled (P2) and never enrolled (P3) work alike.
    let (st, v) = app
        .events(&json!({"event_types": ALL, "prospect_ids": [P2], "timestamp_from": day(-365)}))
        .await;
    assert_eq!(st, 200);
    assert_events(&v, &[p2_role.clone(), p2_company.clone()]);
    let (st, v) = app
        .events(&json!({"event_types": [ROLE, ANNIV], "prospect_ids": [P3]}))
        .await;
    assert_eq!(st, 200);
    assert_events(&v, &[p3_anniversary.clone(), p3_role.clone()]);

    // miss: an unknown prospect, an empty window, a type without events.
    for body in [
        json!({"event_types": ALL, "prospect_ids": [NOBODY]}),
        json!({"event_types": ALL, "prospect_ids": [P1, P2, P3],
               "timestamp_from": day(-1000), "timestamp_to": day(-900)}),
        json!({"event_types": [COMPANY], "prospect_ids": [P3], "timestamp_from": day(-1000)}),
    ] {
        let (st, v) = app.events(&body).await;
        assert_eq!(st, 200);
        assert_events(&v, &[]);
        assert_eq!(v["output_events"], json!([]));
    }

    // --- The outbox: (event, enrollment, key at queue time) ------------------------------
    let ids = event_ids(&app).await;
    assert_eq!(ids.len(), 8, "{ids:#?}");
    let id_of = |e: &Ev| ids[&(e.0.clone(), e.1.clone(), e.2.clone())].clone();
    let mut expected = vec![
        (id_of(&p1_role_old), e1.clone(), "keyone".to_string()),
        (id_of(&p2_company), e1.clone(), "keyone".to_string()),
        (id_of(&p1_role), e1.clone(), "keyone_b".to_string()),
        (id_of(&p1_company), e2.clone(), "keytwo".to_string()),
        (id_of(&p1_anniversary), e2.clone(), "keytwo".to_string()),
    ];
    expected.sort();
    assert_eq!(outbox(&app).await, expected);

    // --- Re-ingesting the same bodies creates nothing ------------------------------------
    let (st, v) = app
        .ingest_snapshots(&admin, Some("application/x-ndjson"), phase1.clone())
        .await;
    assert_eq!(st, 200);
    assert_eq!(summary(&v), [6, 4, 2, 0, 4, 0, 0], "{v:#}");
    let (st, v) = app
        .ingest_snapshots(&admin, Some("text/csv"), phase2.clone())
        .await;
    assert_eq!(st, 200);
    assert_eq!(summary(&v), [9, 7, 2, 0, 7, 0, 0], "{v:#}");
    assert_eq!(errors(&v).iter().map(|e| e.0).collect::<Vec<_>>(), [4, 9]);
    assert_eq!(event_ids(&app).await, ids);
    assert_eq!(outbox(&app).await, expected);

    // --- After DELETE (E2) and another PATCH (E1 → keyone_c), new events follow the new state;
    // rows already queued keep the key they were queued with.
    delete(&app, &e2).await;
    patch(&app, &e1, "keyone_c", &[P1], &[ROLE, COMPANY]).await;
    let line = json!({"prospect_id": P1, "observed_at": day(-1), "company_id": CO_C,
                      "company_name": "Initech", "job_title": "CEO"})
    .to_string();
    // No content type at all: NDJSON.
    let (st, v) = app.ingest_snapshots(&admin, None, line).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(summary(&v), [1, 1, 0, 0, 0, 2, 2], "{v:#}");
    let ids2 = event_ids(&app).await;
    assert_eq!(ids2.len(), 10);
    for name in [ROLE, COMPANY] {
        let id = ids2[&(P1.to_string(), name.to_string(), midnight(-1))].clone();
        expected.push((id, e1.clone(), "keyone_c".to_string()));
    }
    expected.sort();
    assert_eq!(outbox(&app).await, expected);
}

#[tokio::test]
async fn snapshots_endpoint_is_admin_only_and_checks_the_media_type() {
    let app = TestApp::spawn().await;
    let line =
        json!({"prospect_id": P1, "observed_at": "2024-01-01", "job_title": "Dev"}).to_string();
    // The default key of the harness is not an admin key.
    let (st, v) = app
        .ingest_snapshots(&app.key, Some("application/x-ndjson"), line.clone())
        .await;
    assert_eq!(st, 403, "{v}");
    assert!(v["detail"].is_string(), "{v}");
    // Nothing was applied: a later admin ingestion sees a first snapshot (a baseline).
    let admin = app.new_key("con_test", "partner_a", true).await;
    let (st, v) = app
        .ingest_snapshots(&admin, Some("application/xml"), line.clone())
        .await;
    assert_eq!(st, 415, "{v}");
    let (st, v) = app
        .ingest_snapshots(&admin, Some("application/x-ndjson"), line)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(summary(&v), [1, 1, 0, 1, 0, 0, 0]);
    // No key at all.
    let resp = app
        .client
        .post(app.url("/v1/admin/prospects/snapshots"))
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn csv_header_problems_and_bad_rows() {
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "partner_a", true).await;
    // Columns in any order, unknown columns ignored, a short row rejected, a BOM tolerated.
    let body = format!(
        "\u{feff}job_title,extra,prospect_id,observed_at\nDev,x,{P1},2024-01-01\nCTO,y,{P1}\nCTO,z,{P1},2024-02-01\n"
    );
    let (st, v) = app.ingest_snapshots(&admin, Some("text/csv"), body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(summary(&v), [3, 2, 1, 1, 0, 1, 0], "{v:#}");
    assert_eq!(errors(&v).iter().map(|e| e.0).collect::<Vec<_>>(), [3]);
    let (st, v) = app
        .events(
            &json!({"event_types": [ROLE], "prospect_ids": [P1], "timestamp_from": "2024-01-01"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_events(
        &v,
        &[ev(
            P1,
            ROLE,
            "2024-02-01T00:00:00Z".into(),
            change(ROLE, None, None, Some("CTO"), None, None, Some("Dev")),
        )],
    );
    // A header without prospect_id cannot be ingested at all.
    let (st, v) = app
        .ingest_snapshots(&admin, Some("text/csv"), "a,b\n1,2\n")
        .await;
    assert!(st == 400 || st == 422, "{st} {v}");
}

#[tokio::test]
async fn events_api_rejects_invalid_bodies() {
    let app = TestApp::spawn().await;
    let ids41: Vec<String> = (0..41).map(|i| format!("{i:040x}")).collect();
    for body in [
        json!({"event_types": [], "prospect_ids": [P1]}),
        json!({"event_types": [ROLE], "prospect_ids": []}),
        json!({"event_types": [ROLE], "prospect_ids": ids41}),
        json!({"event_types": ["prospect_was_promoted"], "prospect_ids": [P1]}),
        json!({"event_types": [ROLE], "prospect_ids": [P1], "timestamp_from": "last week"}),
        json!({"prospect_ids": [P1]}),
    ] {
        let (st, v) = app.events(&body).await;
        assert_eq!(st, 422, "{body} → {v}");
        assert!(
            v["detail"].as_array().is_some_and(|d| !d.is_empty()),
            "{body} → {v}"
        );
    }
    // Duplicated ids are accepted, as by the reference (its golden fixtures answer 200).
    let (st, v) = app
        .events(&json!({"event_types": [ROLE], "prospect_ids": [P1, P1]}))
        .await;
    assert_eq!(st, 200, "{v}");
    // And a valid one for an unknown prospect is a miss, not an error.
    let (st, v) = app
        .events(&json!({"event_types": [ROLE], "prospect_ids": [P1],
                        "timestamp_from": "2024-01-01T00:00:00Z", "timestamp_to": "2024-12-31"}))
        .await;
    assert_eq!(st, 200);
    assert_events(&v, &[]);
}

/// Every ISO 8601 form a Python client sends is a bound (naive = UTC, space, minutes, fraction,
/// `%z` offsets) on the events API and the replay window; what stays invalid keeps its 422.
#[tokio::test]
async fn timestamps_in_every_form_python_clients_send() {
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "partner_a", true).await;
    let body = format!(
        "prospect_id,observed_at,job_title\n{P1},2024-02-01T12:00:00Z,Dev\n{P1},2024-03-01T12:00:00Z,CTO\n"
    );
    let (st, v) = app.ingest_snapshots(&admin, Some("text/csv"), body).await;
    assert_eq!(st, 200, "{v}");
    let count = |v: &Value| v["output_events"].as_array().map(Vec::len);
    // The one event is at 2024-03-01T12:00:00Z; `timestamp_from` and `timestamp_to` are inclusive.
    for (from, to, n) in [
        ("2024-03-01T12:00:00", None, 1),
        ("2024-03-01T12:00:01", None, 0),
        ("2024-03-01 12:00:00", None, 1),
        ("2024-03-01 12:00:00.000001", None, 0),
        ("2024-03-01T12:00", None, 1),
        ("2024-03-01T12:01", None, 0),
        ("2024-03-01T14:00:00+0200", None, 1),
        ("2024-03-01T14:00:00.5+02:00", None, 0),
        ("2024-03-01T06:30-0530", None, 1),
        ("2024-03-01", Some("2024-03-01T11:59:59.999999"), 0),
        ("2024-03-01", Some("2024-03-01 12:00:00"), 1),
        ("2024-03-01", Some("2024-03-01t12:00z"), 1),
    ] {
        let mut body = json!({"event_types": [ROLE], "prospect_ids": [P1], "timestamp_from": from});
        if let Some(to) = to {
            body["timestamp_to"] = json!(to);
        }
        let (st, v) = app.events(&body).await;
        assert_eq!((st, count(&v)), (200, Some(n)), "{body} → {v}");
    }
    // Still invalid: the reference's 422, unchanged.
    let (st, v) = app
        .events(&json!({"event_types": [ROLE], "prospect_ids": [P1],
                        "timestamp_from": "2024-03-01T12:00:00+02"}))
        .await;
    assert_eq!(st, 422);
    assert_eq!(
        v["detail"],
        json!([{"type": "value_error", "loc": ["body", "timestamp_from"],
                "msg": "Value error, timestamp must be an RFC 3339 date-time or a date in format YYYY-MM-DD",
                "input": "2024-03-01T12:00:00+02", "ctx": {"error": {}}}])
    );
    // The replay window takes the same forms.
    let resp = app
        .req(Method::POST, "/v1/webhooks/partner_a/replay")
        .json(&json!({"timestamp_from": "2024-03-01T12:00:00",
                      "timestamp_to": "2024-03-01 12:00:00.5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}
