//! The console in a real browser (headless Chromium through chromedriver): sign in, register a
//! webhook, enrollments (a 422 next to its field, create, edit), a delivered notification and
//! its retry, connectivity, secret rotation, the overview and a prospect's timeline; and a
//! second tenant's key seeing none of it. Screenshots of each page go to
//! `target/console-screenshots/`. Skips only when chromedriver is absent and
//! `PROSPECT_EVENTS_REQUIRE_BROWSER` is unset (CI sets it).

use crate::webhooks::{enroll, one_event_each, register};
use prospect_events_e2e::receiver::{Receiver, Reply};
use prospect_events_e2e::webdriver::Browser;
use prospect_events_e2e::{test_delivery, TestApp, P1};
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const LAPTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);
const WAIT: Duration = Duration::from_secs(15);

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/console-screenshots")
        .join(format!("{name}.png"))
}

async fn sign_in(b: &Browser, app: &TestApp, key: &str) {
    b.goto(&app.url("/console")).await;
    let field = b.find("#sign-in:not([hidden]) #api-key").await;
    b.type_into(&field, key).await;
    b.click(&b.find("#sign-in-form button[type=submit]").await)
        .await;
    b.find("nav a[aria-current=page]").await;
}

/// Opens a page and waits for it; then checks every visible control has an accessible name
/// (a label, or a button's or link's text) and the page heading has the focus.
async fn open(b: &Browser, app: &TestApp, page: &str, heading: &str) {
    b.goto(&app.url(&format!("/console#/{page}"))).await;
    b.find(&format!("//h1[normalize-space()='{heading}']"))
        .await;
    b.find("#view:not([aria-busy])").await;
    let unnamed = b
        .execute(
            "return [...document.querySelectorAll('input, select, textarea, button, a[href]')] \
               .filter((e) => e.getClientRects().length > 0) \
               .filter((e) => { \
                 const label = e.labels ? [...e.labels].map((l) => l.textContent).join(' ') : ''; \
                 const own = ['BUTTON', 'A'].includes(e.tagName) ? e.textContent : ''; \
                 return !(label + own + (e.getAttribute('aria-label') || '')).trim(); }) \
               .map((e) => e.outerHTML.slice(0, 120));",
            vec![],
        )
        .await;
    assert_eq!(
        unnamed,
        serde_json::json!([]),
        "{page}: controls without a name"
    );
    let focused = b.active().await;
    assert_eq!(
        b.text(&focused).await,
        heading,
        "{page}: focus on the heading"
    );
}

async fn secret_of(app: &TestApp, partner: &str) -> String {
    let v: Value = app
        .req(Method::GET, &format!("/v1/webhooks/{partner}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["webhook_secret"].as_str().unwrap().to_string()
}

/// The page is no wider than the window (no sideways scrolling); names the elements that stick
/// out when it is.
async fn assert_fits_the_width(b: &Browser, page: &str) {
    let out = b
        .execute(
            "const w = document.documentElement.clientWidth; \
             if (document.documentElement.scrollWidth <= w) return []; \
             const clipped = (e) => { if (getComputedStyle(e).position === 'absolute') return false; \
               for (let x = e.parentElement; x; x = x.parentElement) { \
                 if (getComputedStyle(x).overflowX !== 'visible') return true; } return false; }; \
             return [...document.querySelectorAll('body *')] \
               .filter((e) => e.getBoundingClientRect().right > w + 1 && !clipped(e)) \
               .slice(0, 8).map((e) => e.tagName + '.' + e.className + '#' + e.id + ' ' + \
                 Math.round(e.getBoundingClientRect().right)).concat(['scrollWidth ' + \
                 document.documentElement.scrollWidth]);",
            vec![],
        )
        .await;
    assert_eq!(
        out,
        serde_json::json!([]),
        "{page} is wider than the window"
    );
}

#[tokio::test]
async fn console_flows_in_a_real_browser() {
    let Some(b) = Browser::start(LAPTOP.0, LAPTOP.1).await else {
        return;
    };
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(200)).await;

    // Sign-in: a wrong key is refused next to the field, the right one opens the Overview.
    b.goto(&app.url("/console")).await;
    let field = b.find("#sign-in:not([hidden]) #api-key").await;
    let label = b.find("label[for=api-key]").await;
    assert_eq!(b.text(&label).await, "API key");
    b.type_into(&field, "not-a-key").await;
    b.keys(&field, "\u{E007}").await; // Enter submits the form
    b.wait_for_text("This API key is not valid.", WAIT).await;
    b.screenshot(&shot("01-sign-in")).await;
    // Without a mouse: the key field has the focus, Tab reaches the button, Enter signs in.
    let focused = b.active().await;
    assert_eq!(b.property(&focused, "id").await, "api-key");
    b.type_into(&focused, &app.key).await;
    b.keys(&focused, "\u{E004}").await; // Tab
    let button = b.active().await;
    assert_eq!(b.text(&button).await, "Sign in");
    b.keys(&button, "\u{E007}").await; // Enter
    b.find("nav a[aria-current=page]").await;
    for name in [
        "Overview",
        "Webhooks",
        "Deliveries",
        "Enrollments",
        "Prospects",
    ] {
        b.find(&format!("//nav//a[normalize-space()='{name}']"))
            .await;
    }

    // Register a webhook: the secret is shown once and is the one the API holds.
    open(&b, &app, "webhooks", "Webhooks").await;
    let url = b.find("#create-webhook input[name=webhook_url]").await;
    b.type_into(&url, &rx.url).await;
    b.click(&b.find("#create-webhook button[type=submit]").await)
        .await;
    let first_secret = b.text(&b.find("#new-secret").await).await;
    assert_eq!(first_secret, secret_of(&app, "partner_a").await);

    // Enrollments: a bad prospect id is a 422 shown next to its field; then create and edit.
    open(&b, &app, "enrollments", "Enrollments").await;
    let key = b.find("#enrollment-form input[name=enrollment_key]").await;
    b.type_into(&key, "console_watch").await;
    let ids = b.find("#enrollment-form textarea[name=prospect_ids]").await;
    b.type_into(&ids, "not-a-prospect-id").await;
    b.click(&b.find("#enrollment-form button[type=submit]").await)
        .await;
    let error = b
        .find("#enrollment-form .field-error[data-for=prospect_ids]:not(:empty)")
        .await;
    assert!(
        b.text(&error).await.contains("String should match pattern"),
        "{}",
        b.text(&error).await
    );
    let invalid = b.property(&ids, "ariaInvalid").await;
    assert_eq!(invalid, "true");
    b.screenshot(&shot("02-enrollment-422")).await;
    b.type_into(&ids, P1).await;
    b.click(&b.find("#enrollment-form button[type=submit]").await)
        .await;
    b.wait_for_text("console_watch", WAIT).await;
    b.click(
        &b.find("//tr[td[normalize-space()='console_watch']]//button[contains(., 'Edit')]")
            .await,
    )
    .await;
    let key = b
        .find("//h2[contains(., 'Edit enrollment')]/following::input[@name='enrollment_key']")
        .await;
    b.type_into(&key, "console_watch_v2").await;
    b.click(&b.find("//button[normalize-space()='Save changes']").await)
        .await;
    b.find("//td[normalize-space()='console_watch_v2']").await;
    b.screenshot(&shot("03-enrollments")).await;
    let listed: Value = app
        .req(Method::GET, "/v1/prospects/events/enrollments")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["enrollments"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    assert_eq!(
        listed["enrollments"][0]["enrollment_key"],
        "console_watch_v2"
    );

    // A notification is delivered; the log shows it, and a retry shows a second attempt.
    one_event_each(&app, &admin, &[P1], 0).await;
    rx.wait_for(1, WAIT).await;
    open(&b, &app, "deliveries", "Deliveries").await;
    b.find("//td[contains(@class,'status')][normalize-space()='delivered']")
        .await;
    b.click(&b.find("//button[contains(., 'Attempts')]").await)
        .await;
    b.find("table.attempts tbody tr").await;
    assert_eq!(b.all("table.attempts tbody tr").await.len(), 1);
    b.click(
        &b.find("//button[starts-with(normalize-space(), 'Retry')]")
            .await,
    )
    .await;
    rx.wait_for(2, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while b.all("table.attempts tbody tr").await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no second attempt shown"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_for_text("HTTP 200", WAIT).await;
    b.find("//td[contains(@class,'attempts')][normalize-space()='2']")
        .await;
    b.full_screenshot(&shot("04-deliveries"), LAPTOP.0).await;
    b.set_size(LAPTOP.0, LAPTOP.1).await;

    // Replay a window that holds the event (2026-01-02): it is sent a third time.
    let from = b.find("#replay-form input[name=timestamp_from]").await;
    b.execute(
        "arguments[0].value = '2025-12-01T00:00';",
        vec![Browser::arg(&from)],
    )
    .await;
    b.click(&b.find("#replay-form button[type=submit]").await)
        .await;
    b.wait_for_text("Requeued 1 notification(s).", WAIT).await;
    rx.wait_for(3, WAIT).await;

    // Connectivity: the receiver's answer is shown.
    open(&b, &app, "webhooks", "Webhooks").await;
    b.click(
        &b.find("//button[starts-with(normalize-space(), 'Check connectivity')]")
            .await,
    )
    .await;
    let result = b.find("#connectivity-result").await;
    assert!(
        b.text(&result).await.contains("reachable"),
        "{}",
        b.text(&result).await
    );
    b.wait_for_text("Status code", WAIT).await;
    b.screenshot(&shot("05-webhooks-connectivity")).await;

    // Rotate the secret: a new one is shown once, and it is the one the API now holds.
    b.click(
        &b.find("//button[starts-with(normalize-space(), 'Rotate secret')]")
            .await,
    )
    .await;
    b.click(&b.find("//button[normalize-space()='Rotate now']").await)
        .await;
    let shown = b.find("#new-secret").await;
    let rotated = b.text(&shown).await;
    assert_ne!(rotated, first_secret);
    assert_eq!(rotated, secret_of(&app, "partner_a").await);
    b.screenshot(&shot("06-webhooks-rotated")).await;

    // Edit the URL to a port nobody listens on: the secret stays, and the connectivity check
    // shows the connection error instead of an answer.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    b.click(
        &b.find("//button[starts-with(normalize-space(), 'Edit')]")
            .await,
    )
    .await;
    let url = b.find("#edit-webhook input[name=webhook_url]").await;
    b.type_into(&url, &dead_url).await;
    b.click(&b.find("#edit-webhook button[type=submit]").await)
        .await;
    b.find(&format!("//td//span[normalize-space()='{dead_url}']"))
        .await;
    assert_eq!(secret_of(&app, "partner_a").await, rotated);
    b.click(
        &b.find("//button[starts-with(normalize-space(), 'Check connectivity')]")
            .await,
    )
    .await;
    let result = b.find("#connectivity-result").await;
    assert!(
        b.text(&result).await.contains("failed"),
        "{}",
        b.text(&result).await
    );
    b.wait_for_text("Error: ", WAIT).await;
    b.screenshot(&shot("06b-webhooks-connection-error")).await;

    // Overview: the webhook's health and the chart.
    open(&b, &app, "overview", "Overview").await;
    b.find("svg.chart").await;
    let page = b.wait_for_text("100.0 %", WAIT).await;
    assert!(page.contains("active"), "{page}");
    b.full_screenshot(&shot("07-overview"), LAPTOP.0).await;

    // Prospects: the timeline and the covering enrollment.
    b.set_size(LAPTOP.0, LAPTOP.1).await;
    open(&b, &app, "prospects", "Prospects").await;
    let input = b.find("#prospect-search input[name=prospect_ids]").await;
    b.type_into(&input, P1).await;
    b.click(&b.find("#prospect-search button[type=submit]").await)
        .await;
    b.find("ol.timeline li").await;
    let page = b.wait_for_text("console_watch_v2", WAIT).await;
    assert!(page.contains("prospect_changed_role"), "{page}");
    b.full_screenshot(&shot("08-prospects"), LAPTOP.0).await;

    // Phone width: the same pages stay usable, without scrolling sideways.
    b.set_size(PHONE.0, PHONE.1).await;
    open(&b, &app, "overview", "Overview").await;
    b.find("svg.chart").await;
    assert_fits_the_width(&b, "overview").await;
    b.screenshot(&shot("09-overview-phone")).await;
    open(&b, &app, "deliveries", "Deliveries").await;
    assert_fits_the_width(&b, "deliveries").await;
    b.screenshot(&shot("10-deliveries-phone")).await;
    for (page, heading) in [("webhooks", "Webhooks"), ("enrollments", "Enrollments")] {
        open(&b, &app, page, heading).await;
        assert_fits_the_width(&b, page).await;
    }

    // Delete the enrollment: the button asks once more, then it is gone.
    b.set_size(LAPTOP.0, LAPTOP.1).await;
    open(&b, &app, "enrollments", "Enrollments").await;
    let delete = b
        .find("//button[starts-with(normalize-space(), 'Delete')]")
        .await;
    b.click(&delete).await;
    b.wait_for_text("Confirm delete", WAIT).await;
    b.click(&delete).await;
    b.wait_for_text("No enrollment yet", WAIT).await;
    let listed: Value = app
        .req(Method::GET, "/v1/prospects/events/enrollments")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["enrollments"], serde_json::json!([]));

    // Sign out: the key is forgotten.
    b.click(&b.find("#sign-out").await).await;
    b.find("#sign-in:not([hidden])").await;
    let kept = b.execute("return sessionStorage.length;", vec![]).await;
    assert_eq!(kept, 0);
}

#[tokio::test]
async fn a_second_tenant_sees_none_of_the_first_tenants_objects() {
    let Some(b) = Browser::start(LAPTOP.0, LAPTOP.1).await else {
        return;
    };
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let other = app.new_key("con_other", "partner_z", false).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    enroll(&app, &app.key, "tenant_a_secret_watch", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;
    rx.wait_for(1, WAIT).await;

    // The first tenant sees its objects…
    sign_in(&b, &app, &app.key).await;
    open(&b, &app, "enrollments", "Enrollments").await;
    b.wait_for_text("tenant_a_secret_watch", WAIT).await;
    b.click(&b.find("#sign-out").await).await;

    // …the second sees none of them on any page.
    sign_in(&b, &app, &other).await;
    for (page, heading, empty) in [
        ("overview", "Overview", "No webhook registered yet"),
        ("webhooks", "Webhooks", "No webhook registered yet"),
        ("deliveries", "Deliveries", "No webhook registered yet"),
        ("enrollments", "Enrollments", "No enrollment yet"),
    ] {
        open(&b, &app, page, heading).await;
        let text = b.wait_for_text(empty, WAIT).await;
        for leak in ["tenant_a_secret_watch", rx.url.as_str(), "partner_a"] {
            assert!(!text.contains(leak), "{page} shows {leak}:\n{text}");
        }
    }
    b.screenshot(&shot("11-other-tenant-enrollments")).await;
    // Its own prospect search finds the public events but no covering enrollment of tenant A.
    open(&b, &app, "prospects", "Prospects").await;
    let input = b.find("#prospect-search input[name=prospect_ids]").await;
    b.type_into(&input, P1).await;
    b.click(&b.find("#prospect-search button[type=submit]").await)
        .await;
    let text = b
        .wait_for_text("No enrollment of this partner covers this prospect.", WAIT)
        .await;
    assert!(!text.contains("tenant_a_secret_watch"), "{text}");
}

/// Not a check of behaviour beyond the others: a month of history (several event types, some
/// failures and retries) so the README's screenshots show the Overview and Deliveries pages as
/// an operator would see them (`target/console-screenshots/readme-*.png`; copied to `docs/`).
#[tokio::test]
async fn readme_screenshots_with_a_month_of_history() {
    let Some(b) = Browser::start(LAPTOP.0, LAPTOP.1).await else {
        return;
    };
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Slow(200, 40)).await;
    rx.script((0..40).map(|i| match i % 9 {
        0 => Reply::Status(503),
        4 => Reply::Slow(200, 180),
        _ => Reply::Slow(200, 25),
    }));
    register(&app, &app.key, "partner_a", &rx.url).await;
    enroll(&app, &app.key, "tech_executives_monitor", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;
    let scope = store::Scope {
        tenant: domain::TenantId("con_test".into()),
        partner: domain::PartnerId("partner_a".into()),
    };
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let names = [
        "prospect_changed_role",
        "prospect_changed_company",
        "prospect_job_start_anniversary",
    ];
    let mut queued = 0;
    for day in 0..30i64 {
        let at = now_ms - day * 86_400_000;
        let items: Vec<_> = names
            .iter()
            .enumerate()
            .flat_map(|(k, name)| {
                let n = (day * 7 + k as i64 * 5) % (4 + k as i64 * 2) + (day % 5 == 0) as i64 * 3;
                (0..n).map(move |i| store::DirectNotification {
                    delivery_id: format!("dl_hist_{day}_{k}_{i}"),
                    event_id: format!("hist_{day}_{k}_{i}"),
                    event_name: name.to_string(),
                    event_time: at / 1000,
                    enrollment_key: "tech_executives_monitor".into(),
                    payload: serde_json::json!({"event_name": name, "history": true}),
                })
            })
            .collect();
        queued += items.len();
        let at =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000).unwrap();
        app.store
            .queue_direct(&store::WebhookKey::legacy(&scope), items, at)
            .await
            .unwrap();
    }
    rx.wait_for(queued + 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    sign_in(&b, &app, &app.key).await;
    open(&b, &app, "overview", "Overview").await;
    b.find("svg.chart rect").await;
    b.full_screenshot(&shot("readme-overview"), LAPTOP.0).await;
    b.set_size(LAPTOP.0, LAPTOP.1).await;
    open(&b, &app, "deliveries", "Deliveries").await;
    b.click(
        &b.find("//tr[td[normalize-space()='2']]//button[contains(., 'Attempts')]")
            .await,
    )
    .await;
    b.find("table.attempts tbody tr").await;
    b.screenshot(&shot("readme-deliveries")).await;
}

/// A tenant with two partners: the header offers both, the chosen one is the one the calls act
/// for (its enrollments, not the other's), and the Overview shows a partner whose
/// notifications wait for want of a webhook.
#[tokio::test]
async fn the_partner_chosen_in_the_header_is_the_one_acted_for() {
    let Some(b) = Browser::start(LAPTOP.0, LAPTOP.1).await else {
        return;
    };
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let key_b = app.new_key("con_test", "partner_b", false).await;
    enroll(&app, &app.key, "a_watch", &[P1]).await;
    enroll(&app, &key_b, "b_watch", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;

    sign_in(&b, &app, &app.key).await;
    open(&b, &app, "overview", "Overview").await;
    let page = b
        .wait_for_text("notifications wait until one is registered", WAIT)
        .await;
    assert!(
        page.contains("Partner partner_a") && page.contains("Partner partner_b"),
        "{page}"
    );
    open(&b, &app, "enrollments", "Enrollments").await;
    let page = b.wait_for_text("a_watch", WAIT).await;
    assert!(!page.contains("b_watch"), "{page}");
    let select = b.find("#partner-select").await;
    b.select(&select, "partner_b").await;
    b.wait_for_text("b_watch", WAIT).await;
    let page = b
        .wait_for_text("partner partner_b is notified of", WAIT)
        .await;
    assert!(!page.contains("a_watch"), "{page}");
    b.screenshot(&shot("12-partner-b-enrollments")).await;
}

/// A v2 webhook shows in the console with its own numbers (its stats and daily counts from
/// `/v2/webhooks/{id}/stats|daily`), and a partner whose traffic all goes to v2 webhooks is
/// not listed as waiting for a webhook.
#[tokio::test]
async fn a_v2_webhook_shows_with_its_own_stats() {
    let Some(b) = Browser::start(LAPTOP.0, LAPTOP.1).await else {
        return;
    };
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    let created: Value = app
        .req(Method::POST, "/v2/webhooks")
        .json(&serde_json::json!({"name": "crm-v2", "webhook_url": rx.url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["webhook_id"].as_str().unwrap();
    let body = serde_json::json!({"enrollment_key": "v2-watch", "webhook_id": id,
        "event_types": ["prospect_changed_role"], "prospect_ids": [P1]});
    let resp = app
        .req(Method::POST, "/v2/prospects/events/enrollments")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    one_event_each(&app, &admin, &[P1], 0).await;
    rx.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    sign_in(&b, &app, &app.key).await;
    open(&b, &app, "overview", "Overview").await;
    b.find("//a[normalize-space()='crm-v2']").await;
    let cells = b
        .execute(
            "const a = [...document.querySelectorAll('a')].find((x) => x.textContent === 'crm-v2'); \
             return [...a.closest('tr').querySelectorAll('td')].map((td) => td.textContent);",
            vec![],
        )
        .await;
    assert_eq!(cells[1], "active", "{cells}");
    assert_eq!(
        cells[2], "100.0 %",
        "success rate from the v2 stats: {cells}"
    );
    assert_eq!(cells[3], "1", "one attempt: {cells}");
    let page = b.text_of_page().await;
    assert!(
        !page.contains("notifications wait until one is registered"),
        "a partner with only v2 traffic is not waiting: {page}"
    );
    b.find("svg.chart rect").await;
    b.screenshot(&shot("13-overview-v2-webhook")).await;
    open(&b, &app, "webhooks", "Webhooks").await;
    let page = b.wait_for_text("crm-v2", WAIT).await;
    assert!(page.contains(&rx.url), "{page}");
}
