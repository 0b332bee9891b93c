"""Sends many raw request bodies through the oracle app (FastAPI TestClient) and writes
crates/domain/tests/golden/<schema>.json: a list of {"body", "status", "detail"}.

Run from anywhere:  /tmp/oracle-venv/bin/python tools/reference_oracle/gen_golden.py
"""
from __future__ import annotations

import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "crates", "domain", "tests", "golden"))

from fastapi.testclient import TestClient  # noqa: E402

import app as oracle  # noqa: E402

client = TestClient(oracle.app, raise_server_exceptions=False)

A = "20ae6cbf564ee683e66685e429844a5ff8ffc30f"
B = "4c485f009d59e319dc039cdf3e935b85014e6a33"
ET = ["prospect_changed_role", "prospect_changed_company", "prospect_job_start_anniversary"]


def pid(i: int) -> str:
    return f"{i:040x}"


def ids(n: int) -> list:
    return [pid(i + 1) for i in range(n)]


WRONG = [1, -7, 0, 1.5, 2.0, 1e300, True, False, None, [], ["x"], {}, {"a": 1}, "", "abc", "prospect_changed_role",
         12345678901234567890]

MALFORMED = [
    "{", "}", "[", "]", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,", "{\"a\":1,}", "[1,]", "[1,2",
    "{'a': 1}", "{a: 1}", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "[1 2]", "\"abc", "{\"a\":\"abc",
    "{\"a\":\"x\ny\"}", "{\"a\":\"x\ty\"}", "{\"a\":\"\\q\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12G4\"}",
    "{\"a\":\"\\", "{\"a\":\"\\u", "{} x", "{}{}", "[] []", "1 2", "  {\"a\" : }", "\n\n  {",
    "{\"é\":1,}", "{\"日本語\": \"値\" x}", "{\"a\":\"😀\",}", "{\"a\":\"😀\" , \"b\" 1}",
    "tru", "truex", "nul", "nulls", "fals", "-", "-a", "01", "1.", "1.e5", ".5", "1e", "1e+", "+1", "0x10",
    "{\"a\":-}", "{\"a\":01}", "{\"a\":[1,2,]}", "{\"a\":{\"b\":}}", "{\"a\":1}}", "{\"a\":1}]", "]",
    "{\"a\":tru}", "{\"a\":True}", "{\"a\":None}", "{\"a\":undefined}", "{\"a\":nan}", "{\"a\":infinity}",
    "\t", " ", "\r\n", "{,}", "{\"a\":1,,\"b\":2}", "{:1}", "{\"a\"::1}", "{\"a\":1:}", "{\"\\ud800\":1,}",
    "{\"a\":\"\u0000\"}", "{\"a\":\"\u001f\"}", "{\"a\":\"\u007f\"} x", "/* c */ {}", "{} // c",
    "\"\\u00e9\" x", "[1,{\"a\":[true,false,null,\"\\\"\"]}] ,", "{\"a\" :\n\n 1,\n \"b\"\n}",
    "\u00a0{}", "{\"a\":1}\u00a0", "\u3000{}", "[-0.0e-0, 1E5, 2e+3] x", "{\"a\":1e400} x",
    "{\"a\":\"\\/\\b\\f\\n\\r\\t\"} x", "{\"a\":\"\\uD834\\uDD1E\" ,}", "[\"\\u0041\" ",
]


def enc(v) -> str:
    return json.dumps(v, ensure_ascii=False)


def common_bodies(valid: dict) -> list:
    """Bodies shared by every schema (given one valid body)."""
    out = [
        "", "null", "[]", "1", "\"x\"", "true", "1.5", "{}", "[{}]", "\"\"",
        enc(valid),
        " \n\t" + enc(valid) + "\n ",
        "\ufeff" + enc(valid),
        enc({**valid, "request_context": None}),
        enc({**valid, "request_context": {}}),
        enc({**valid, "request_context": {"a": [1, {"b": None}], "c": "é"}}),
    ]
    for w in WRONG:
        if w is None or isinstance(w, dict):
            continue
        out.append(enc({**valid, "request_context": w}))
    out += [
        enc({**valid, "ttl_days": 30}),
        enc({**valid, "ttl_days": 30, "zzz": None, "aaa": [1]}),
        enc({"ttl_days": 30, **valid}),
        enc({"extra1": 1}),
        enc({"request_context": 5, "x": 1}),
    ]
    out += MALFORMED
    # key order variations
    out.append(enc(dict(reversed(list(valid.items())))))
    # duplicate keys: last wins, first position kept
    items = list(valid.items())
    k0, v0 = items[0]
    out.append("{" + enc(k0) + ": 1, " + ", ".join(enc(k) + ": " + enc(v) for k, v in items) + "}")
    out.append("{" + ", ".join(enc(k) + ": " + enc(v) for k, v in items) + ", " + enc(k0) + ": 1}")
    # each field missing, each field wrong type
    for k in valid:
        d = dict(valid)
        del d[k]
        out.append(enc(d))
        for w in WRONG:
            d = dict(valid)
            d[k] = w
            out.append(enc(d))
    # NaN/Infinity (reference answers 500 where the value is echoed)
    out += ['{"request_context": {"x": NaN}}', "NaN", "[Infinity]", "-Infinity"]
    out.append(enc({**valid, "request_context": {"x": 1}})[:-1] + ', "request_context": {"y": Infinity}}')
    return out


def enrollment_bodies(valid: dict, max_ids: int) -> list:
    out = []
    for key in ["abc", "abcd", "ab", "", "日本語", "日本語x", "😀😀😀", "😀😀😀😀", "é" * 3, "e\u0301e\u0301",
                " " * 4, "\u0000\u0000\u0000\u0000", "x" * 1000]:
        out.append(enc({**valid, "enrollment_key": key}))
    for n in [0, 1, 2, 19, 20, 21, 25, 40]:
        out.append(enc({**valid, "prospect_ids": ids(n)}))
    bad = ["x", A.upper(), A[:-1], A + "0", 1, None, [A], {"a": A}, True, 1.5, "g" * 40, " " + A[1:], A[:-1] + "\n"]
    out.append(enc({**valid, "prospect_ids": bad}))
    out.append(enc({**valid, "prospect_ids": [A, "bad", B, "bad2"]}))
    out.append(enc({**valid, "prospect_ids": ids(19) + ["bad"]}))
    out.append(enc({**valid, "prospect_ids": ids(20) + ["bad"]}))
    out.append(enc({**valid, "prospect_ids": ["bad"] * 21}))
    out.append(enc({**valid, "prospect_ids": ["bad"] * 25 + [1]}))
    out.append(enc({**valid, "prospect_ids": [A, A, A, B, A]}))
    out.append(enc({**valid, "prospect_ids": [A] * 21}))
    out.append(enc({**valid, "prospect_ids": [A] * 40 + [B]}))
    out.append(enc({**valid, "prospect_ids": ids(40) + ["bad"]}))
    out.append(enc({**valid, "prospect_ids": ids(39) + ["bad", "bad2"]}))
    out.append(enc({**valid, "prospect_ids": ["bad"] + ids(41)}))
    out.append(enc({**valid, "prospect_ids": ids(41) + ids(41)}))
    for evs in [[], ["x"], ET, ET + ET, [ET[2], ET[0], ET[2]], [1, None, True, 1.5, [], {}, "PROSPECT_CHANGED_ROLE",
                                                             " prospect_changed_role", ET[0]],
                ["prospect_changed_role", "prospect_changed"], ET * 10, ["é"]]:
        out.append(enc({**valid, "event_types": evs}))
    out.append(enc({**valid, "event_types": [], "prospect_ids": [], "enrollment_key": "a", "ttl_days": 1}))
    out.append(enc({"enrollment_key": 5, "event_types": "prospect_changed_role", "prospect_ids": A, "zz": 1}))
    out.append(enc({"request_context": [], "enrollment_key": "", "event_types": [None],
                    "prospect_ids": ids(25), "enrollment_id": 4, "a": 1, "b": 2}))
    out.append(enc({"event_types": ["x"], "prospect_ids": ["y"], "enrollment_key": "abcd"}))
    return out


ADD_VALID = {"enrollment_key": "tech_executives_monitor", "event_types": ET[:2], "prospect_ids": [A, B]}
UPD_VALID = {"enrollment_key": "tech_executives_monitor", "event_types": ET[:2], "enrollment_id": "en_8d52c3f1",
             "prospect_ids": [A, B]}
DEL_VALID = {"enrollment_id": "en_8d52c3f1"}
EVT_VALID = {"event_types": ET, "prospect_ids": [A, B]}
WH_VALID = {"partner_id": "p1", "webhook_url": "https://example.com/hook"}
CC_VALID = {"partner_id": "p1"}


def events_bodies() -> list:
    out = enrollment_bodies({**EVT_VALID, "enrollment_key": "abcd"}, 40)
    out = [b for b in out]  # contain enrollment_key -> extra_forbidden, fine
    for et in ["prospect", "business", "Prospect", "", 1, None, [], {}]:
        out.append(enc({**EVT_VALID, "entity_type": et}))
    for n in [0, 1, 39, 40, 41, 45]:
        out.append(enc({**EVT_VALID, "prospect_ids": ids(n)}))
    out.append(enc({**EVT_VALID, "prospect_ids": ids(40) + [pid(1)]}))
    out.append(enc({**EVT_VALID, "prospect_ids": ["bad"] * 50}))
    out.append(enc({**EVT_VALID, "prospect_ids": ["bad", 1] + ids(41)}))
    out.append(enc({**EVT_VALID, "prospect_ids": [A, "bad"] + [A] * 50}))
    out.append(enc({**EVT_VALID, "prospect_ids": [[A]]}))
    out.append(enc({**EVT_VALID, "prospect_ids": [{}]}))
    for ts in ["2024-01-01", "2024-01-01T00:00:00Z", "2024-01-01T10:20:30.123456+02:00", "2024-01-01t10:20:30z",
               "2024-01-01 10:20:30Z", "2024-02-30", "2024-13-01", "2024-01-01T25:00:00Z", "2024-01-01T10:20:30",
               "2024/01/01", "", "yesterday", "2024-1-1", "20240101", "2024-01-01T10:20Z", 1700000000, 1.5, None,
               True, [], {}, "2024-01-01T10:20:30+0200", "2024-01-01T10:20:60Z", "٢٠٢٤-٠١-٠١", "2024-02-29", "2023-02-29",
               "2000-02-29T00:00:00+23:59", "1900-02-29", "0000-01-01", "2024-01-01T00:00:00+24:00",
               "2024-01-01T00:00:00.Z", "2024-01-01\n", "2024-01-01T23:59:59.999999999-05:30",
               # what Python clients send: naive, str(datetime), minutes, micros, %z offsets
               "2026-09-01T00:00:00", "2026-09-01 00:00:00", "2026-09-01T00:00", "2026-09-01 10:20",
               "2026-09-01T00:00:00.123456", "2026-09-01 00:00:00.5", "2026-09-01T10:20:30-0530",
               "2026-09-01T10:20+05:30", "2026-09-01T10:20Z", "2026-09-01T10:20:30+02", "2026-09-01T10",
               "2026-09-01T10:20:", "2026-09-01T10:20:3", "2026-09-01T10:20.5", "2026-09-01T10:20:30.",
               "2026-09-01T10:20:30+2:00", "2026-09-01T10:20:30+02:0", "2026-09-01T10:20:30+2400",
               "2026-09-01T10:20:30+0260", "2026-09-01T24:00", "2026-09-01T10:60", "2026-09-01T10:20:30 ",
               "2026-09-01T10:20:30Zz", " 2026-09-01T10:20"]:
        out.append(enc({**EVT_VALID, "timestamp_from": ts}))
        out.append(enc({**EVT_VALID, "timestamp_to": ts, "timestamp_from": "bad"}))
    out.append(enc({"entity_type": "x", "event_types": [], "timestamp_to": 1, "timestamp_from": "x",
                    "prospect_ids": [], "request_context": 1, "q": 1}))
    return out


def webhook_bodies() -> list:
    out = []
    for url in ["https://example.com/hook", "http://localhost:8080/x", "HTTPS://EXAMPLE.COM", "ftp://example.com",
                "example.com/hook", "/relative", "", "https://", "http:///x", "https://exa mple.com",
                "https://[::1]:80/", "https://example.com:99999/", "javascript:alert(1)", "https:example.com",
                "https://user:pw@example.com/p?q=1#f", "https://例え.jp/", " https://example.com",
                "http://a:65535", "http://a:65536", "http://a:", "http://:80", "http://@", "http://u@h",
                "https://h/\u00e9", "http://h\tx", "HtTp://x?y", "http://x#", "http:/x", "https:://x", 5, None]:
        out.append(enc({**WH_VALID, "webhook_url": url}))
    out.append(enc({"partner_id": 1, "webhook_url": "bad", "x": 1}))
    out.append(enc({"webhook_url": 1}))
    return out


def cc_bodies() -> list:
    out = []
    sims = [None, {}, {"event_name": "award"}, {"event_name": "award", "number_of_events": 1},
            {"event_name": "prospect_changed_role", "number_of_events": 10, "event_time": "2024-01-01T00:00:00Z"},
            {"event_name": "nope", "number_of_events": 0}, {"number_of_events": 11}, {"event_name": 1},
            {"event_name": "award", "number_of_events": "5"}, {"event_name": "award", "number_of_events": 5.0},
            {"event_name": "award", "number_of_events": 5.5}, {"event_name": "award", "number_of_events": True},
            {"event_name": "award", "number_of_events": False}, {"event_name": "award", "number_of_events": "50"},
            {"event_name": "award", "number_of_events": " 0 "}, {"event_name": "award", "number_of_events": "+3"},
            {"event_name": "award", "number_of_events": "-0"}, {"event_name": "award", "number_of_events": "3.00"},
            {"event_name": "award", "number_of_events": "3.5"}, {"event_name": "award", "number_of_events": ""},
            {"event_name": "award", "number_of_events": 0.0}, {"event_name": "award", "number_of_events": -0.0},
            {"event_name": "award", "number_of_events": 1e300}, {"event_name": "award", "number_of_events": {}},
            {"event_name": "award", "number_of_events": None}, {"event_name": "award", "number_of_events": "x"},
            {"event_name": "award", "number_of_events": -1}, {"event_name": "award", "number_of_events": 10 ** 30},
            {"event_name": "award", "number_of_events": []}, {"event_name": "award", "number_of_events": " 5 "},
            {"event_name": "award", "number_of_events": "5.0"}, {"event_name": "award", "number_of_events": 1e3},
            {"event_name": "award", "extra": 1}, {"event_name": "award", "event_time": "2024-01-01"},
            {"event_name": "award", "event_time": "bad"}, {"event_name": "award", "event_time": 5},
            {"event_name": "award", "event_time": None}, {"event_name": None}, [], "award", 1, True,
            # every field optional: defaults for what is left out
            {"number_of_events": 3}, {"event_time": "2026-09-01T00:00:00"}, {"extra": 1},
            {"number_of_events": 0, "event_time": "bad"}, {"event_name": "", "number_of_events": None}]
    for s in sims:
        out.append(enc({**CC_VALID, "simulation": s}))
    out.append(enc({"partner_id": None, "simulation": {"event_name": "x", "number_of_events": 20}, "zz": 0}))
    return out


# --- v2 ---------------------------------------------------------------------------------------

WH_CREATE_VALID = {"name": "crm-sync", "description": "CRM sync", "webhook_url": "https://example.com/hook",
                   "headers": ["Authorization: Bearer sk-ant-oat01-x", "anthropic-version: 2023-06-01"],
                   "payload_format": "stringified_json"}
WH_PATCH_VALID = {**WH_CREATE_VALID, "status": "disabled"}
WH_CONN_VALID = {"simulation": {"event_name": "new_funding_round", "number_of_events": 3}}
EN_V2_VALID = {"enrollment_key": "my_b2b_saas_monitor", "webhook_id": "wh_9f2c81ab", "event_types": ET[:2],
               "prospect_ids": [A, B]}

URLS_V2 = [
    "https://example.com/hook", "http://localhost:8080/x", "HTTPS://EXAMPLE.COM", "https://example.com",
    "ftp://example.com", "example.com/hook", "/relative", "", " ", "\t", "https://", "http://", "http:///x",
    "http:x", "https:/a.com", "//a.com", "https:\\\\a.com", "https://exa mple.com", "https://a.com/p q",
    " https://example.com ", "https://example.com/\n", "https://a.com/\tx", "https://[::1]:80/", "https://[::1",
    "https://[v1.x]/", "http://1.2.3.4", "http://1.2.3.4.5", "http://256.1.1.1", "http://0x7f.1/",
    "https://example.com:99999/", "https://a.com:0", "https://a.com:65535", "https://a.com:65536", "http://a:",
    "http://:80", "http://@", "http://u@h", "https://user:pw@example.com/p?q=1#f", "https://user:pa ss@a.com",
    "javascript:alert(1)", "mailto:a@b.c", "data:,x", "file:///etc/passwd", "ws://a.com", "HtTp://x?y",
    "http://x#", "https:://x", "https://例え.jp/", "https://ü.com", "https://xn--", "https://a..b",
    "https://-a.com", "https://a_b.com", "https://%", "https://a%20b.com", "https://a.com/%zz", "https://a.com/é",
    "https://a.com/\u00a0", "http://\u3000a.com", "http://a.com\\b", "https://a.com?" + "q" * 200,
    5, 1.5, True, None, [], {}, ["https://a.com"],
]
# At the length cap (65536 bytes, not characters): in WebhookCreateRequest only, they are large.
LONG_URLS = ["https://a.com/" + "x" * (65536 - 14), "https://a.com/" + "x" * (65537 - 14),
             "https://a.com/" + "é" * 32761]

HEADER_LINES = [
    "Authorization: Bearer x", "anthropic-version: 2023-06-01", "A:b", "A:", "A: ", "A:\tb", "A: b: c", "A:: b",
    "NoColon", ": value", " A: b", "A : b", "A\t: b", "A B: c", "Ä: b", "A(: b", "A/B: c", "A@: b",
    "!#$%&'*+-.^_`|~09azAZ: v", "A: b\r\nX: y", "A: b\n", "A: b\r", "A\u0000: b", "A: b\u007f", "A: \u0001",
    "A: é ü", "A: \u0085", "", ":", "Content-Type: text/plain", "content-length: 5", "HOST: x",
    "X-Signature: x", "x-timestamp: 1", "X-Delivery-ID: x", "X-Event-Id: x", "Webhook-Id: x", "webhook-timestamp: 1",
    "WEBHOOK-SIGNATURE: v1,x", "Transfer-Encoding: chunked", "Connection: close", "Keep-Alive: 5",
    "Upgrade: h2c", "TE: trailers", "Trailer: X", "Expect: 100-continue", "Content-Typo: x", "X-Host: y",
    "A: " + "x" * 4093, "A: " + "x" * 4094, "A: " + "é" * 2046, "A: " + "é" * 2047, "Host: " + "x" * 5000,
    "A\n" + "x" * 5000,
]


def headers_bodies(valid: dict) -> list:
    out = []
    for h in HEADER_LINES:
        out.append(enc({**valid, "headers": [h]}))
    for hs in [[], ["A: b"] * 20, ["A: b"] * 21, ["bad"] * 21, ["A: b"] * 19 + ["bad"],
               ["bad", "Host: x", 1, "ok: 1", None, "A: b\n"], [1, None, True, [], {}],
               ["A: b", "A: b"], ["A: b", "a: c"], "A: b", {"A": "b"}]:
        out.append(enc({**valid, "headers": hs}))
    return out


def webhook_v2_bodies(valid: dict) -> list:
    out = [enc({**valid, "webhook_url": u}) for u in URLS_V2]
    out += headers_bodies(valid)
    for pf in ["json", "stringified_json", "JSON", "text", "", " json", None, 1, [], {}]:
        out.append(enc({**valid, "payload_format": pf}))
    for f in ["name", "description"]:
        for v in ["", "x" * 1000, "é日本😀", None, 1, [], {}, True]:
            out.append(enc({**valid, f: v}))
    out.append(enc({"name": 1, "webhook_url": "x", "headers": ["Host: a"], "payload_format": "x", "zz": 1}))
    out.append(enc({"webhook_url": None, "partner_id": "p1"}))
    out.append(enc({"name": "n", "webhook_url": "https://a.com", "request_context": None}))
    return out


def webhook_create_bodies() -> list:
    out = webhook_v2_bodies(WH_CREATE_VALID)
    out += [enc({**WH_CREATE_VALID, "webhook_url": u}) for u in LONG_URLS]
    out += [enc({"name": "n", "webhook_url": "https://a.com"}), enc({"webhook_url": "https://a.com"}),
            enc({"name": "n"}), enc({"name": "n", "webhook_url": "https://a.com", "status": "active"})]
    return out


def webhook_patch_bodies() -> list:
    out = webhook_v2_bodies(WH_PATCH_VALID)
    for st in ["active", "disabled", "Active", "paused", "", None, 1, []]:
        out.append(enc({"status": st}))
    for k, v in WH_PATCH_VALID.items():
        out.append(enc({k: v}))
    out += [enc({"status": "active", "webhook_url": "ftp://x", "headers": ["x"], "name": None}),
            enc({"webhook_id": "wh_1"}), enc({"secret": "s"})]
    return out


def connectivity_v2_bodies() -> list:
    out = [b.replace('"partner_id": "p1", ', "") for b in cc_bodies()]
    out += [enc({"simulation": None}), enc({"partner_id": "p1"}), enc({"partner_id": "p1", "simulation": {}}),
            enc({"simulation": {}, "request_context": None}), enc({"simulation": {"event_name": "award"}, "x": 1})]
    return out


def enrollment_v2_bodies(valid: dict) -> list:
    out = enrollment_bodies(valid, 1000)
    out = [b for b in out if '"enrollment_id"' not in b]
    for n in [999, 1000]:
        out.append(enc({**valid, "prospect_ids": ids(n)}))
    for evs in [ET * 333, ET * 334, ["x"] * 1001, ET * 333 + ["x"]]:
        out.append(enc({**valid, "event_types": evs}))
    for w in ["", "wh_x", "x" * 300, None, 1, [], {}]:
        out.append(enc({**valid, "webhook_id": w}))
    for rc in [None, {}, {"a": 1}, [], "", 0, False]:
        out.append(enc({**valid, "request_context": rc}))
    out.append(enc({"request_context": {}, "enrollment_key": "ab", "webhook_id": None, "event_types": [],
                    "prospect_ids": ["x"], "enrollment_id": "en_1"}))
    return out


def enrollment_v2_create_bodies() -> list:
    out = enrollment_v2_bodies(EN_V2_VALID)
    out.append(enc({**EN_V2_VALID, "prospect_ids": ids(1001)}))
    out.append(enc({**EN_V2_VALID, "prospect_ids": ids(1000) + ["bad"]}))
    out.append(enc({k: v for k, v in EN_V2_VALID.items() if k != "webhook_id"}))
    return out


def enrollment_v2_patch_bodies() -> list:
    out = enrollment_v2_bodies(EN_V2_VALID)
    for k, v in EN_V2_VALID.items():
        out.append(enc({k: v}))
    out += [enc({"enrollment_key": None}), enc({"event_types": None}), enc({"prospect_ids": None}),
            enc({"webhook_id": None}), enc({"request_context": None}), enc({"status": "active"}),
            enc({"event_types": [], "prospect_ids": []})]
    return out


SCHEMAS = {
    "ProspectsEnrollmentsAddRequest": ("POST", "/v1/prospects/events/enrollments", ADD_VALID,
                                       lambda: enrollment_bodies(ADD_VALID, 20)),
    "ProspectsEnrollmentsUpdateRequest": ("PATCH", "/v1/prospects/events/enrollments", UPD_VALID,
                                          lambda: enrollment_bodies(UPD_VALID, 20)),
    "ProspectsEnrollmentsDeleteRequest": ("DELETE", "/v1/prospects/events/enrollments", DEL_VALID, lambda: []),
    "ProspectsEventsRequest": ("POST", "/v1/prospects/events", EVT_VALID, events_bodies),
    "WebhookAddRequest": ("POST", "/v1/webhooks", WH_VALID, webhook_bodies),
    "WebhookCheckConnectivityRequest": ("POST", "/v1/webhooks/check_connectivity", CC_VALID, cc_bodies),
    "WebhookCreateRequest": ("POST", "/v2/webhooks", WH_CREATE_VALID, webhook_create_bodies),
    "WebhookPatchRequest": ("PATCH", "/v2/webhooks/wh", WH_PATCH_VALID, webhook_patch_bodies),
    "WebhookConnectivityRequest": ("POST", "/v2/webhooks/wh/check_connectivity", WH_CONN_VALID,
                                   connectivity_v2_bodies),
    "V2ProspectEnrollmentCreateRequest": ("POST", "/v2/prospects/events/enrollments", EN_V2_VALID,
                                          enrollment_v2_create_bodies),
    "V2ProspectEnrollmentPatchRequest": ("PATCH", "/v2/prospects/events/enrollments/en", EN_V2_VALID,
                                         enrollment_v2_patch_bodies),
}


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for name, (method, path, valid, extra) in SCHEMAS.items():
        seen = set()
        cases = []
        for body in common_bodies(valid) + extra():
            if body in seen:
                continue
            seen.add(body)
            r = client.request(method, path, content=body.encode("utf-8"),
                               headers={"content-type": "application/json"})
            case = {"body": body, "status": r.status_code}
            if r.status_code == 422:
                case["detail"] = r.json()["detail"]
            elif r.status_code == 500:
                case["note"] = "reference crashes serialising a NaN/Infinity input echo (allow_nan=False)"
            cases.append(case)
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False, indent=1)
            f.write("\n")
        total += len(cases)
        print(f"{name}: {len(cases)} cases")
    print("total", total)


if __name__ == "__main__":
    main()
