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


SCHEMAS = {
    "ProspectsEnrollmentsAddRequest": ("POST", "/v1/prospects/events/enrollments", ADD_VALID,
                                       lambda: enrollment_bodies(ADD_VALID, 20)),
    "ProspectsEnrollmentsUpdateRequest": ("PATCH", "/v1/prospects/events/enrollments", UPD_VALID,
                                          lambda: enrollment_bodies(UPD_VALID, 20)),
    "ProspectsEnrollmentsDeleteRequest": ("DELETE", "/v1/prospects/events/enrollments", DEL_VALID, lambda: []),
    "ProspectsEventsRequest": ("POST", "/v1/prospects/events", EVT_VALID, events_bodies),
    "WebhookAddRequest": ("POST", "/v1/webhooks", WH_VALID, webhook_bodies),
    "WebhookCheckConnectivityRequest": ("POST", "/v1/webhooks/check_connectivity", CC_VALID, cc_bodies),
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
