//! Table-driven tests of snapshot parsing and event detection (SPEC §3).

use prospect_events_domain::detect::{
    anniversaries, anniversary_date, detect_changes, event_id, next_anniversary, DetectedEvent,
    Outcome,
};
use prospect_events_domain::snapshot::{normalize, parse_date, Snapshot, COLUMNS};
use prospect_events_domain::{EventType, ProspectId};
use serde_json::{json, Value};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

const PID: &str = "20ae6cbf564ee683e66685e429844a5ff8ffc30f";
const CID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const CID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn pid() -> ProspectId {
    ProspectId::parse(PID).unwrap()
}

/// Snapshot from a JSON object literal; `prospect_id` defaults to PID.
fn snap(v: Value) -> Snapshot {
    let mut v = v;
    let o = v.as_object_mut().unwrap();
    o.entry("prospect_id").or_insert(json!(PID));
    Snapshot::from_json(&v).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn types(evs: &[DetectedEvent]) -> Vec<EventType> {
    evs.iter().map(|e| e.event_type).collect()
}

// ---------------------------------------------------------------- parsing

#[test]
fn normalize_examples() {
    for (a, b) in [
        ("  ACME   Corp ", "acme corp"),
        ("acme corp", "acme corp"),
        ("\tAcme\n\nCORP\u{a0}", "acme corp"),
        ("ÉCOLE Ñ", "école ñ"),
        // A word is lowercased whole: a capital sigma at a word's end becomes a final sigma.
        ("ΟΔΟΣ  VP", "οδος vp"),
        ("Head of ΣΟΦΙΑΣ Sales", "head of σοφιας sales"),
        ("", ""),
        ("   ", ""),
    ] {
        assert_eq!(normalize(a), b, "{a:?}");
    }
}

#[test]
fn parse_errors() {
    let ok_obs = "2024-01-01";
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "invalid JSON: "),
        ("[1,2]".into(), "expected a JSON object"),
        ("{}".into(), "prospect_id: required"),
        (json!({"observed_at": ok_obs}).to_string(), "prospect_id: required"),
        (json!({"prospect_id": "", "observed_at": ok_obs}).to_string(), "prospect_id: required"),
        (json!({"prospect_id": null, "observed_at": ok_obs}).to_string(), "prospect_id: required"),
        (json!({"prospect_id": "abc", "observed_at": ok_obs}).to_string(), "prospect_id: must be 40 lowercase hex characters"),
        (json!({"prospect_id": PID.to_uppercase(), "observed_at": ok_obs}).to_string(), "prospect_id: must be 40 lowercase hex characters"),
        (json!({"prospect_id": 12, "observed_at": ok_obs}).to_string(), "prospect_id: must be a string"),
        (json!({"prospect_id": PID}).to_string(), "observed_at: required"),
        (json!({"prospect_id": PID, "observed_at": ""}).to_string(), "observed_at: required"),
        (json!({"prospect_id": PID, "observed_at": "2024-13-01"}).to_string(), "observed_at: must be"),
        (json!({"prospect_id": PID, "observed_at": "2023-02-29"}).to_string(), "observed_at: must be"),
        (json!({"prospect_id": PID, "observed_at": "2024-1-01"}).to_string(), "observed_at: must be"),
        (json!({"prospect_id": PID, "observed_at": "2024-01-01T00:00:00"}).to_string(), "observed_at: must be"),
        (json!({"prospect_id": PID, "observed_at": "yesterday"}).to_string(), "observed_at: must be"),
        (json!({"prospect_id": PID, "observed_at": 1700000000}).to_string(), "observed_at: must be a string"),
        (json!({"prospect_id": PID, "observed_at": ok_obs, "company_id": "xyz"}).to_string(), "company_id: must be 32 hex characters"),
        (json!({"prospect_id": PID, "observed_at": ok_obs, "company_id": format!("{CID_A}0")}).to_string(), "company_id: must be 32 hex characters"),
        (json!({"prospect_id": PID, "observed_at": ok_obs, "company_id": "g".repeat(32)}).to_string(), "company_id: must be 32 hex characters"),
        (json!({"prospect_id": PID, "observed_at": ok_obs, "job_start_date": "2024-02-30"}).to_string(), "job_start_date: must be a YYYY-MM-DD date"),
        (json!({"prospect_id": PID, "observed_at": ok_obs, "job_start_date": "2024-01-01T00:00:00Z"}).to_string(), "job_start_date: must be a YYYY-MM-DD date"),
        (json!({"prospect_id": PID, "observed_at": ok_obs, "job_title": ["x"]}).to_string(), "job_title: must be a string"),
        (json!({"prospect_id": PID, "observed_at": ok_obs, "full_name": true}).to_string(), "full_name: must be a string"),
    ];
    for (line, want) in cases {
        let err = Snapshot::from_json_line(&line).expect_err(&line);
        assert!(
            err.starts_with(want),
            "{line}: got {err:?}, want prefix {want:?}"
        );
    }
}

#[test]
fn parse_accepts_and_normalizes() {
    // observed_at forms
    for (raw, want) in [
        ("2024-03-05", datetime!(2024-03-05 00:00 UTC)),
        ("2024-03-05T10:00:00Z", datetime!(2024-03-05 10:00 UTC)),
        ("2024-03-05T01:00:00+02:00", datetime!(2024-03-04 23:00 UTC)),
        (
            "2024-03-05T10:00:00.123456-01:30",
            datetime!(2024-03-05 11:30:00.123456 UTC),
        ),
        (" 2024-03-05 ", datetime!(2024-03-05 00:00 UTC)),
    ] {
        let s = snap(json!({"observed_at": raw}));
        assert_eq!(s.observed_at, want, "{raw}");
        assert!(s.observed_at.offset().is_utc());
    }
    // nulls: absent, null, "", whitespace-only text; unknown fields ignored; company_id lowercased
    let s = snap(json!({
        "observed_at": "2024-01-01", "full_name": null, "linkedin_url": "", "company_name": "   ",
        "job_title": " Engineer ", "company_id": CID_A.to_uppercase(), "extra": {"x": 1},
    }));
    assert_eq!(s.full_name, None);
    assert_eq!(s.linkedin_url, None);
    assert_eq!(s.company_name, None);
    assert_eq!(
        s.job_title.as_deref(),
        Some(" Engineer "),
        "text is kept raw"
    );
    assert_eq!(s.company_id.as_deref(), Some(CID_A));
    assert_eq!(s.job_start_date, None);
}

#[test]
fn csv_fields() {
    let rec = [PID, "2024-01-02", "", "", "", "Acme", "", "2020-02-29"];
    let s = Snapshot::from_fields(COLUMNS.iter().copied().zip(rec)).unwrap();
    assert_eq!(s.prospect_id, pid());
    assert_eq!(s.observed_at, datetime!(2024-01-02 00:00 UTC));
    assert_eq!(
        (&s.full_name, &s.linkedin_url, &s.company_id, &s.job_title),
        (&None, &None, &None, &None)
    );
    assert_eq!(s.company_name.as_deref(), Some("Acme"));
    assert_eq!(s.job_start_date, Some(date!(2020 - 02 - 29)));

    // unknown columns ignored, missing columns null, any column order
    let s2 = Snapshot::from_fields([
        ("vendor_score", "99"),
        ("company_name", "Acme"),
        ("job_start_date", "2020-02-29"),
        ("observed_at", "2024-01-02"),
        ("prospect_id", PID),
    ])
    .unwrap();
    assert_eq!(s2, s);

    // errors
    for (fields, want) in [
        (
            vec![("prospect_id", PID), ("observed_at", "")],
            "observed_at: required",
        ),
        (
            vec![("prospect_id", ""), ("observed_at", "2024-01-01")],
            "prospect_id: required",
        ),
        (vec![("observed_at", "2024-01-01")], "prospect_id: required"),
        (
            vec![
                ("prospect_id", PID),
                ("observed_at", "2024-01-01"),
                ("company_id", "12"),
            ],
            "company_id:",
        ),
        (
            vec![
                ("prospect_id", PID),
                ("observed_at", "2024-01-01"),
                ("job_start_date", "01/02/2020"),
            ],
            "job_start_date:",
        ),
        (
            vec![
                ("prospect_id", PID),
                ("prospect_id", PID),
                ("observed_at", "2024-01-01"),
            ],
            "duplicate column: prospect_id",
        ),
    ] {
        let err = Snapshot::from_fields(fields.clone()).unwrap_err();
        assert!(err.starts_with(want), "{fields:?}: {err}");
    }
}

/// A snapshot with every field set (observed at 10:30:00.5 UTC, given with a +02:00 offset).
fn ann_lee() -> Snapshot {
    snap(json!({
        "observed_at": "2024-05-01T12:30:00.5+02:00", "full_name": "Ann Lee",
        "linkedin_url": "https://linkedin.com/in/ann", "company_id": CID_A, "company_name": "Acme",
        "job_title": "CTO", "job_start_date": "2021-06-01",
    }))
}

#[test]
fn json_round_trip_and_fingerprint() {
    let s = ann_lee();
    let v = s.to_json();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        COLUMNS.iter().collect::<Vec<_>>()
    );
    assert_eq!(v["observed_at"], "2024-05-01T10:30:00.5Z");
    assert_eq!(v["job_start_date"], "2021-06-01");
    assert_eq!(Snapshot::from_json(&v).unwrap(), s);
    assert_eq!(
        Snapshot::from_json_line(&v.to_string())
            .unwrap()
            .fingerprint(),
        s.fingerprint()
    );

    // same instant in another offset: same fingerprint; any field change: different fingerprint
    let same = snap(json!({
        "observed_at": "2024-05-01T10:30:00.500Z", "full_name": "Ann Lee",
        "linkedin_url": "https://linkedin.com/in/ann", "company_id": CID_A.to_uppercase(), "company_name": "Acme",
        "job_title": "CTO", "job_start_date": "2021-06-01",
    }));
    assert_eq!(same.fingerprint(), s.fingerprint());
    let mut fps = vec![s.fingerprint()];
    for (k, val) in [
        ("full_name", json!("Ann  Lee")),
        ("full_name", Value::Null),
        ("linkedin_url", Value::Null),
        ("company_id", Value::Null),
        ("company_name", json!("acme")),
        ("job_title", Value::Null),
        ("job_start_date", json!("2021-06-02")),
        ("observed_at", json!("2024-05-01T10:30:00.6Z")),
        // moving a value between fields must change the fingerprint
        ("full_name", Value::Null),
    ] {
        let mut v2 = s.to_json();
        v2[k] = val;
        if fps.len() == 9 {
            v2["linkedin_url"] = json!("Ann Lee");
        }
        fps.push(Snapshot::from_json(&v2).unwrap().fingerprint());
    }
    let mut dedup = fps.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), fps.len(), "all fingerprints distinct");
}

#[test]
fn content_hash_ignores_only_the_observation_time() {
    let s = ann_lee();
    let mut later = s.to_json();
    later["observed_at"] = json!("2025-01-01");
    let later = Snapshot::from_json(&later).unwrap();
    assert_eq!(later.content_hash(), s.content_hash());
    assert!(later.same_content(&s));
    let mut hashes = vec![s.content_hash()];
    for (k, val) in [
        ("full_name", json!("Ann  Lee")),
        ("full_name", Value::Null),
        ("linkedin_url", Value::Null),
        ("company_id", Value::Null),
        ("company_id", json!(CID_B)),
        ("company_name", json!("acme")),
        ("job_title", json!("CTO ")),
        ("job_title", Value::Null),
        ("job_start_date", json!("2021-06-02")),
        ("job_start_date", Value::Null),
    ] {
        let mut v2 = s.to_json();
        v2[k] = val;
        let changed = Snapshot::from_json(&v2).unwrap();
        assert!(!changed.same_content(&s), "{k}");
        hashes.push(changed.content_hash());
    }
    // a value moved to the neighbouring field
    let mut moved = s.to_json();
    moved["full_name"] = Value::Null;
    moved["linkedin_url"] = json!("Ann Lee");
    hashes.push(Snapshot::from_json(&moved).unwrap().content_hash());
    let mut dedup = hashes.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(
        dedup.len(),
        hashes.len(),
        "every field change changes the hash"
    );
}

// ---------------------------------------------------------------- change detection

#[test]
fn outcomes() {
    let a = snap(json!({"observed_at": "2024-01-01", "company_name": "Acme", "job_title": "Dev"}));
    let later_same =
        snap(json!({"observed_at": "2024-02-01", "company_name": "Acme", "job_title": "Dev"}));
    let older =
        snap(json!({"observed_at": "2023-12-01", "company_name": "Globex", "job_title": "CEO"}));

    let d = detect_changes(None, &a);
    assert_eq!(
        (d.outcome, d.becomes_current, d.events.len()),
        (Outcome::Baseline, true, 0)
    );

    let d = detect_changes(Some(&a), &a.clone());
    assert_eq!(
        (d.outcome, d.becomes_current, d.events.len()),
        (Outcome::Unchanged, false, 0)
    );

    let d = detect_changes(Some(&a), &older);
    assert_eq!(
        (d.outcome, d.becomes_current, d.events.len()),
        (Outcome::Older, false, 0)
    );

    // same content, later observation: advances the state, no event
    let d = detect_changes(Some(&a), &later_same);
    assert_eq!(
        (d.outcome, d.becomes_current, d.events.len()),
        (Outcome::Changed, true, 0)
    );
}

/// (previous fields, new fields, expected event types)
#[test]
fn change_rules_table() {
    let cases: Vec<(&str, Value, Value, Vec<EventType>)> = vec![
        (
            "name normalization",
            json!({"company_name": "  ACME   Corp "}),
            json!({"company_name": "acme corp"}),
            vec![],
        ),
        (
            "name change",
            json!({"company_name": "Acme"}),
            json!({"company_name": "Globex"}),
            vec![EventType::ChangedCompany],
        ),
        (
            "id precedence: same id, names differ",
            json!({"company_id": CID_A, "company_name": "Acme"}),
            json!({"company_id": CID_A, "company_name": "Acme Inc (renamed)"}),
            vec![],
        ),
        (
            "id precedence: ids differ, names equal",
            json!({"company_id": CID_A, "company_name": "Acme"}),
            json!({"company_id": CID_B, "company_name": "Acme"}),
            vec![EventType::ChangedCompany],
        ),
        (
            "id case-insensitive",
            json!({"company_id": CID_A.to_uppercase()}),
            json!({"company_id": CID_A}),
            vec![],
        ),
        (
            "one side without id: by name, equal",
            json!({"company_id": CID_A, "company_name": "Acme"}),
            json!({"company_name": "ACME"}),
            vec![],
        ),
        (
            "one side without id: by name, differ",
            json!({"company_name": "Acme"}),
            json!({"company_id": CID_B, "company_name": "Globex"}),
            vec![EventType::ChangedCompany],
        ),
        (
            "id vs name only: unknown",
            json!({"company_id": CID_A}),
            json!({"company_name": "Globex"}),
            vec![],
        ),
        (
            "previous company unknown",
            json!({}),
            json!({"company_name": "Globex", "company_id": CID_B}),
            vec![],
        ),
        (
            "new company unknown",
            json!({"company_name": "Acme", "company_id": CID_A}),
            json!({}),
            vec![],
        ),
        (
            "role change",
            json!({"job_title": "Engineer"}),
            json!({"job_title": "Senior Engineer"}),
            vec![EventType::ChangedRole],
        ),
        (
            "role normalization",
            json!({"job_title": " VP  of Sales"}),
            json!({"job_title": "vp of sales "}),
            vec![],
        ),
        (
            "role previous null",
            json!({}),
            json!({"job_title": "CTO"}),
            vec![],
        ),
        (
            "role new null",
            json!({"job_title": "CTO"}),
            json!({}),
            vec![],
        ),
        (
            "move fires both",
            json!({"company_name": "Acme", "job_title": "Dev"}),
            json!({"company_name": "Globex", "job_title": "CTO"}),
            vec![EventType::ChangedRole, EventType::ChangedCompany],
        ),
        (
            "same title at new company",
            json!({"company_id": CID_A, "job_title": "Dev"}),
            json!({"company_id": CID_B, "job_title": "dev"}),
            vec![EventType::ChangedCompany],
        ),
        (
            "only other fields change",
            json!({"full_name": "Ann", "company_name": "Acme", "job_title": "Dev"}),
            json!({"full_name": "Ann Lee", "linkedin_url": "x", "company_name": "Acme", "job_title": "Dev"}),
            vec![],
        ),
    ];
    for (name, mut prev, mut new, want) in cases {
        prev["observed_at"] = json!("2024-01-01");
        new["observed_at"] = json!("2024-02-01");
        let (p, n) = (snap(prev), snap(new));
        let d = detect_changes(Some(&p), &n);
        assert_eq!(d.outcome, Outcome::Changed, "{name}");
        assert!(d.becomes_current, "{name}");
        assert_eq!(types(&d.events), want, "{name}");
    }
}

#[test]
fn change_event_data_and_ids() {
    let prev = snap(
        json!({"observed_at": "2024-01-01", "company_name": "Acme", "job_title": "Dev", "company_id": CID_A}),
    );
    let new = snap(
        json!({"observed_at": "2024-02-01T08:00:00Z", "company_name": "Globex", "job_title": "CTO"}),
    );
    let d = detect_changes(Some(&prev), &new);
    assert_eq!(
        types(&d.events),
        vec![EventType::ChangedRole, EventType::ChangedCompany]
    );
    for e in &d.events {
        assert_eq!(e.prospect_id, pid());
        assert_eq!(e.event_id.len(), 32);
        assert!(e
            .event_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            e.data,
            json!({
                "event_name": e.event_type.as_str(),
                "current_company_name": "Globex",
                "current_company_id": null,
                "current_job_title": "CTO",
                "previous_company_name": "Acme",
                "previous_company_id": CID_A,
                "previous_job_title": "Dev",
            })
        );
        let keys: Vec<_> = e.data.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "event_name",
                "current_company_name",
                "current_company_id",
                "current_job_title",
                "previous_company_name",
                "previous_company_id",
                "previous_job_title",
            ]
        );
        assert_eq!(e.event_time, datetime!(2024-02-01 08:00 UTC));
    }
    assert_ne!(d.events[0].event_id, d.events[1].event_id);
    // deterministic
    assert_eq!(detect_changes(Some(&prev), &new), d);
    // a different observation of the same move gets different ids
    let mut later = new.clone();
    later.observed_at = datetime!(2024-02-02 00:00 UTC);
    let d2 = detect_changes(Some(&prev), &later);
    assert_ne!(d2.events[0].event_id, d.events[0].event_id);
}

#[test]
fn change_event_time_branches() {
    // (previous observed_at, new observed_at, new job_start_date, expected event_time)
    let cases: Vec<(&str, &str, Option<&str>, OffsetDateTime)> = vec![
        (
            "2024-01-01T12:00:00Z",
            "2024-03-01T09:00:00Z",
            None,
            datetime!(2024-03-01 09:00 UTC),
        ),
        (
            "2024-01-01T12:00:00Z",
            "2024-03-01T09:00:00Z",
            Some("2024-02-15"),
            datetime!(2024-02-15 00:00 UTC),
        ),
        // start date before the previous observation: the job is not new information -> observed_at
        (
            "2024-01-01T12:00:00Z",
            "2024-03-01T09:00:00Z",
            Some("2023-12-31"),
            datetime!(2024-03-01 09:00 UTC),
        ),
        // same day as the previous observation counts as "not before" (date comparison)
        (
            "2024-01-01T12:00:00Z",
            "2024-03-01T09:00:00Z",
            Some("2024-01-01"),
            datetime!(2024-01-01 00:00 UTC),
        ),
        // future start date is kept
        (
            "2024-01-01T12:00:00Z",
            "2024-03-01T09:00:00Z",
            Some("2024-04-01"),
            datetime!(2024-04-01 00:00 UTC),
        ),
    ];
    for (po, no, jsd, want) in cases {
        let prev = snap(json!({"observed_at": po, "job_title": "Dev"}));
        let new = snap(json!({"observed_at": no, "job_title": "CTO", "job_start_date": jsd}));
        let d = detect_changes(Some(&prev), &new);
        assert_eq!(d.events.len(), 1);
        assert_eq!(d.events[0].event_time, want, "{po} {no} {jsd:?}");
    }
}

#[test]
fn same_observed_at_tie_break() {
    let base = snap(json!({"observed_at": "2024-01-01", "company_name": "Acme"}));
    let x = snap(json!({"observed_at": "2024-02-01", "company_name": "Globex"}));
    let y = snap(json!({"observed_at": "2024-02-01", "company_name": "Initech"}));
    let (win, lose) = if x.fingerprint() > y.fingerprint() {
        (x, y)
    } else {
        (y, x)
    };

    // winner first, loser second: loser is Older
    let d1 = detect_changes(Some(&base), &win);
    assert_eq!((d1.outcome, d1.events.len()), (Outcome::Changed, 1));
    let d2 = detect_changes(Some(&win), &lose);
    assert_eq!(
        (d2.outcome, d2.becomes_current, d2.events.len()),
        (Outcome::Older, false, 0)
    );

    // loser first, winner second: winner replaces it with events against the loser
    let d1 = detect_changes(Some(&base), &lose);
    assert_eq!(d1.outcome, Outcome::Changed);
    let d2 = detect_changes(Some(&lose), &win);
    assert_eq!(
        (d2.outcome, d2.becomes_current, d2.events.len()),
        (Outcome::Changed, true, 1)
    );
    assert_eq!(
        d2.events[0].data["previous_company_name"],
        lose.company_name.clone().unwrap()
    );
}

// ---------------------------------------------------------------- anniversaries

fn ann_dates(start: &str, after: Date, until: Date) -> Vec<(String, i64)> {
    let s = snap(json!({"observed_at": "2020-01-01", "job_start_date": start}));
    anniversaries(&s, after, until)
        .into_iter()
        .map(|e| {
            assert_eq!(e.event_type, EventType::JobStartAnniversary);
            assert_eq!(
                e.event_time.date(),
                parse_date(e.data["job_anniversary_date"].as_str().unwrap()).unwrap()
            );
            assert!(e.event_time.offset().is_utc());
            assert_eq!(e.event_time.time(), time::Time::MIDNIGHT);
            (
                e.data["job_anniversary_date"].as_str().unwrap().to_owned(),
                e.data["years_at_company"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn anniversary_table() {
    let v = |xs: &[(&str, i64)]| {
        xs.iter()
            .map(|(d, n)| (d.to_string(), *n))
            .collect::<Vec<_>>()
    };
    type Case = (&'static str, &'static str, Date, Date, Vec<(String, i64)>);
    let cases: Vec<Case> = vec![
        (
            "simple",
            "2020-06-15",
            date!(2021 - 06 - 01),
            date!(2021 - 06 - 30),
            v(&[("2021-06-15", 1)]),
        ),
        (
            "after is exclusive",
            "2020-06-15",
            date!(2021 - 06 - 15),
            date!(2021 - 06 - 30),
            v(&[]),
        ),
        (
            "until is inclusive",
            "2020-06-15",
            date!(2021 - 06 - 14),
            date!(2021 - 06 - 15),
            v(&[("2021-06-15", 1)]),
        ),
        (
            "just before",
            "2020-06-15",
            date!(2021 - 06 - 01),
            date!(2021 - 06 - 14),
            v(&[]),
        ),
        (
            "no anniversary in the start year",
            "2020-06-15",
            date!(2020 - 01 - 01),
            date!(2020 - 12 - 31),
            v(&[]),
        ),
        (
            "start day itself is not an anniversary",
            "2020-06-15",
            date!(2020 - 06 - 14),
            date!(2021 - 06 - 14),
            v(&[]),
        ),
        (
            "leap start, non-leap year -> 28 Feb",
            "2020-02-29",
            date!(2021 - 02 - 01),
            date!(2021 - 03 - 31),
            v(&[("2021-02-28", 1)]),
        ),
        (
            "leap start, 28 Feb bound exclusive",
            "2020-02-29",
            date!(2021 - 02 - 28),
            date!(2021 - 03 - 31),
            v(&[]),
        ),
        (
            "leap start, leap year -> 29 Feb",
            "2020-02-29",
            date!(2024 - 02 - 28),
            date!(2024 - 03 - 01),
            v(&[("2024-02-29", 4)]),
        ),
        (
            "multi-year window (service down)",
            "2020-02-29",
            date!(2021 - 01 - 01),
            date!(2024 - 12 - 31),
            v(&[
                ("2021-02-28", 1),
                ("2022-02-28", 2),
                ("2023-02-28", 3),
                ("2024-02-29", 4),
            ]),
        ),
        (
            "window entirely before start",
            "2020-06-15",
            date!(2010 - 01 - 01),
            date!(2019 - 12 - 31),
            v(&[]),
        ),
        (
            "window straddles start",
            "2020-06-15",
            date!(2019 - 01 - 01),
            date!(2022 - 06 - 15),
            v(&[("2021-06-15", 1), ("2022-06-15", 2)]),
        ),
        (
            "empty window",
            "2020-06-15",
            date!(2021 - 06 - 15),
            date!(2021 - 06 - 15),
            v(&[]),
        ),
        (
            "inverted window",
            "2020-06-15",
            date!(2021 - 07 - 01),
            date!(2021 - 06 - 01),
            v(&[]),
        ),
        (
            "31 Dec across year end",
            "2020-12-31",
            date!(2021 - 12 - 30),
            date!(2022 - 01 - 06),
            v(&[("2021-12-31", 1)]),
        ),
    ];
    for (name, start, after, until, want) in cases {
        assert_eq!(ann_dates(start, after, until), want, "{name}");
    }
}

#[test]
fn anniversary_splitting_the_window_fires_each_once() {
    // Scanning [a, b] in one go equals scanning it in daily steps (no loss, no duplicates).
    let s = snap(
        json!({"observed_at": "2020-01-01", "job_start_date": "2016-02-29", "full_name": "Ann"}),
    );
    let (a, b) = (date!(2016 - 01 - 01), date!(2025 - 12 - 31));
    let whole = anniversaries(&s, a, b);
    let mut steps = Vec::new();
    let mut d = a;
    while d < b {
        let next = d.next_day().unwrap();
        steps.extend(anniversaries(&s, d, next));
        d = next;
    }
    assert_eq!(whole, steps);
    assert_eq!(whole.len(), 9);
    let ids: std::collections::HashSet<_> = whole.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids.len(), 9);
}

#[test]
fn anniversary_data_and_id() {
    let s = snap(json!({
        "observed_at": "2024-01-01", "full_name": "Ann Lee", "company_name": "Acme", "company_id": CID_A,
        "job_title": "CTO", "job_start_date": "2019-03-10", "linkedin_url": "https://linkedin.com/in/ann",
    }));
    let evs = anniversaries(&s, date!(2024 - 03 - 01), date!(2024 - 03 - 17));
    assert_eq!(evs.len(), 1);
    let e = &evs[0];
    assert_eq!(e.event_time, datetime!(2024-03-10 00:00 UTC));
    assert_eq!(e.prospect_id, pid());
    assert_eq!(
        e.data,
        json!({
            "event_name": "prospect_job_start_anniversary", "full_name": "Ann Lee",
            "company_name": "Acme", "years_at_company": 5, "job_title": "CTO",
            "job_anniversary_date": "2024-03-10", "linkedin_url": "https://linkedin.com/in/ann",
        })
    );
    let keys: Vec<_> = e.data.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "event_name",
            "full_name",
            "company_name",
            "years_at_company",
            "job_title",
            "job_anniversary_date",
            "linkedin_url"
        ]
    );
    // id depends on (prospect, start date, year) only: a later snapshot with other fields keeps it
    let mut s2 = s.clone();
    s2.job_title = Some("CEO".into());
    s2.observed_at = datetime!(2024-03-05 00:00 UTC);
    let e2 = &anniversaries(&s2, date!(2024 - 03 - 05), date!(2024 - 03 - 12))[0];
    assert_eq!(e2.event_id, e.event_id);
    assert_eq!(
        e.event_id,
        event_id(
            &pid(),
            EventType::JobStartAnniversary,
            &["2019-03-10", "2024"]
        )
    );
    // null fields are null
    let bare = snap(json!({"observed_at": "2024-01-01", "job_start_date": "2019-03-10"}));
    let e3 = &anniversaries(&bare, date!(2024 - 03 - 01), date!(2024 - 03 - 17))[0];
    for k in ["full_name", "company_name", "job_title", "linkedin_url"] {
        assert_eq!(e3.data[k], Value::Null, "{k}");
    }
    // no job_start_date: nothing
    let none = snap(json!({"observed_at": "2024-01-01"}));
    assert!(anniversaries(&none, date!(2000 - 01 - 01), date!(2030 - 01 - 01)).is_empty());
}

#[test]
fn anniversary_helpers() {
    assert_eq!(
        anniversary_date(date!(2020 - 02 - 29), 1),
        Some(date!(2021 - 02 - 28))
    );
    assert_eq!(
        anniversary_date(date!(2020 - 02 - 29), 4),
        Some(date!(2024 - 02 - 29))
    );
    assert_eq!(anniversary_date(date!(9999 - 01 - 01), 1), None);
    assert_eq!(
        next_anniversary(date!(2020 - 06 - 15), date!(2020 - 06 - 15)),
        Some(date!(2021 - 06 - 15))
    );
    assert_eq!(
        next_anniversary(date!(2020 - 06 - 15), date!(2010 - 01 - 01)),
        Some(date!(2021 - 06 - 15))
    );
    assert_eq!(
        next_anniversary(date!(2020 - 06 - 15), date!(2023 - 06 - 14)),
        Some(date!(2023 - 06 - 15))
    );
    assert_eq!(
        next_anniversary(date!(2020 - 06 - 15), date!(2023 - 06 - 15)),
        Some(date!(2024 - 06 - 15))
    );
    assert_eq!(
        next_anniversary(date!(2020 - 02 - 29), date!(2021 - 02 - 28)),
        Some(date!(2022 - 02 - 28))
    );
}

#[test]
fn event_id_is_unambiguous() {
    let p = pid();
    let a = event_id(&p, EventType::ChangedRole, &["ab", "c"]);
    let b = event_id(&p, EventType::ChangedRole, &["a", "bc"]);
    let c = event_id(&p, EventType::ChangedRole, &["abc"]);
    let d = event_id(&p, EventType::ChangedCompany, &["ab", "c"]);
    let set: std::collections::HashSet<_> = [&a, &b, &c, &d].into_iter().collect();
    assert_eq!(set.len(), 4);
    assert_eq!(a, event_id(&p, EventType::ChangedRole, &["ab", "c"]));
    assert_eq!(a.len(), 32);
}

// ---------------------------------------------------------------- windows and apply

mod windows {
    use super::*;
    use prospect_events_domain::detect::{
        apply, month_day, AnniversaryWindow, MonthDayFilter, Tally,
    };

    #[test]
    fn ingestion_and_scan_windows() {
        let now = datetime!(2025-03-10 15:00 UTC);
        let w = AnniversaryWindow::at_ingestion(now, 7);
        assert_eq!(
            (w.after, w.until),
            (date!(2025 - 03 - 09), date!(2025 - 03 - 17))
        );
        assert_eq!(AnniversaryWindow::since(None, now, 7), w);
        let s = AnniversaryWindow::since(Some(date!(2024 - 12 - 30)), now, 7);
        assert_eq!(
            (s.after, s.until),
            (date!(2024 - 12 - 30), date!(2025 - 03 - 17))
        );
        assert!(AnniversaryWindow::since(Some(date!(2025 - 03 - 17)), now, 7).is_empty());
    }

    #[test]
    fn month_day_filters() {
        let w = |a, u| AnniversaryWindow { after: a, until: u }.month_days();
        assert_eq!(month_day(date!(2024 - 02 - 29)), 229);
        assert_eq!(
            w(date!(2025 - 03 - 09), date!(2025 - 03 - 17)),
            MonthDayFilter::Between { from: 310, to: 317 }
        );
        assert_eq!(
            w(date!(2024 - 12 - 30), date!(2025 - 01 - 05)),
            MonthDayFilter::Wrapping {
                from: 1231,
                to: 105
            }
        );
        // `after` is exclusive: a window ending a year's last day does not wrap.
        assert_eq!(
            w(date!(2024 - 12 - 30), date!(2024 - 12 - 31)),
            MonthDayFilter::Between {
                from: 1231,
                to: 1231
            }
        );
        assert_eq!(
            w(date!(2020 - 01 - 01), date!(2025 - 01 - 05)),
            MonthDayFilter::Any
        );
    }

    #[test]
    fn apply_adds_anniversaries_only_when_the_start_date_changes() {
        let now = datetime!(2025-03-10 00:00 UTC);
        let w = AnniversaryWindow::at_ingestion(now, 7);
        let first = snap(
            json!({"observed_at": "2025-03-01T00:00:00Z", "job_title": "A",
            "job_start_date": "2020-03-12"}),
        );
        let a = apply(None, &first, w);
        assert_eq!((a.outcome, a.tally), (Outcome::Baseline, Tally::Baseline));
        assert_eq!(types(&a.events), vec![EventType::JobStartAnniversary]);
        // Same start date, newer observation: no anniversary again, nothing to count.
        let later = snap(
            json!({"observed_at": "2025-03-02T00:00:00Z", "job_title": "A",
            "job_start_date": "2020-03-12"}),
        );
        let b = apply(Some(&first), &later, w);
        assert_eq!((b.outcome, b.tally), (Outcome::Changed, Tally::Unchanged));
        assert!(b.becomes_current && b.events.is_empty());
        let older = apply(Some(&later), &first, w);
        assert_eq!(
            (older.outcome, older.tally),
            (Outcome::Older, Tally::Unchanged)
        );
        let moved = snap(
            json!({"observed_at": "2025-03-03T00:00:00Z", "job_title": "B",
            "job_start_date": "2021-03-15"}),
        );
        let c = apply(Some(&later), &moved, w);
        assert_eq!(c.tally, Tally::Changed);
        assert_eq!(
            types(&c.events),
            vec![EventType::ChangedRole, EventType::JobStartAnniversary]
        );
    }
}
