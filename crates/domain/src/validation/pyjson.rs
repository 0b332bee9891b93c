//! A JSON decoder that behaves like CPython's `json.loads` (the C scanner of CPython 3.11, which
//! is what Starlette's `Request.json()` uses): same accepted language (including `NaN`,
//! `Infinity`, `-Infinity`), same error messages and the same error position, counted in
//! *characters* (code points), not bytes.
//!
//! Representation choices (serde_json::Value cannot hold everything a Python object can):
//! * non-finite floats (`NaN`, `Infinity`, `-Infinity`, and overflowing literals such as `1e400`)
//!   become `null` (the reference answers 500 whenever it has to echo one; see mod.rs);
//! * integers outside i64/u64 become f64 (the reference keeps them exact);
//! * lone UTF-16 surrogates from `\uD800`-style escapes become U+FFFD.
//! * duplicate keys: the last value wins at the first key's position (like a Python dict).
//! * floats are parsed with Rust's correctly rounded `str::parse::<f64>`, like Python's `float()`.

use serde_json::{Map, Number, Value};

/// A `json.JSONDecodeError`: message and character offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub msg: &'static str,
    pub pos: usize,
}

/// Failure of [`loads`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    Decode(DecodeError),
    /// Nesting deeper than [`MAX_DEPTH`] (Python raises RecursionError, FastAPI answers 400).
    TooDeep,
    /// More than [`MAX_VALUES`] values (a deliberate limit; Python has none).
    TooManyValues,
}

/// Nesting limit. CPython's limit depends on the interpreter's recursion limit (1000) minus the
/// stack already in use, so it is not a fixed number; we pick a value well below it that is
/// safe for the recursive parser on a 2 MiB thread stack even in debug builds.
pub const MAX_DEPTH: usize = 200;

/// Most values (scalars, arrays and objects, keys not counted) one document may hold. A request
/// of this API holds at most a few hundred; the cap bounds what a hostile body can cost once
/// parsed (each value is a heap node several times the size of its text, and validation may
/// echo it), whatever the byte limit in front.
pub const MAX_VALUES: usize = 10_000;

/// `json.loads(text)` for a `str` input.
pub fn loads(text: &str) -> Result<Value, LoadError> {
    // No serde_json fast path: serde_json's default float parser is not always correctly
    // rounded (Python's is, and the echoed `input` must match), and its depth limit differs.
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser {
        s: &chars,
        depth: 0,
        values: 0,
    };
    let start = p.skip_ws(0);
    let (v, end) = p.scan_once(start)?;
    let end = p.skip_ws(end);
    if end != chars.len() {
        return Err(LoadError::Decode(DecodeError {
            msg: "Extra data",
            pos: end,
        }));
    }
    Ok(v)
}

enum Stop {
    /// StopIteration(idx): becomes "Expecting value" at idx.
    Stop(usize),
    Err(LoadError),
}

impl From<LoadError> for Stop {
    fn from(e: LoadError) -> Self {
        Stop::Err(e)
    }
}

struct Parser<'a> {
    s: &'a [char],
    depth: usize,
    values: usize,
}

fn err(msg: &'static str, pos: usize) -> Stop {
    Stop::Err(LoadError::Decode(DecodeError { msg, pos }))
}

impl Parser<'_> {
    fn skip_ws(&self, mut i: usize) -> usize {
        while i < self.s.len() && matches!(self.s[i], ' ' | '\t' | '\n' | '\r') {
            i += 1;
        }
        i
    }

    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn starts_with(&self, i: usize, lit: &str) -> bool {
        lit.chars()
            .enumerate()
            .all(|(k, c)| self.at(i + k) == Some(c))
    }

    fn scan_once(&mut self, idx: usize) -> Result<(Value, usize), LoadError> {
        match self.scan(idx) {
            Ok(x) => Ok(x),
            Err(Stop::Stop(i)) => Err(LoadError::Decode(DecodeError {
                msg: "Expecting value",
                pos: i,
            })),
            Err(Stop::Err(e)) => Err(e),
        }
    }

    fn scan(&mut self, idx: usize) -> Result<(Value, usize), Stop> {
        let Some(c) = self.at(idx) else {
            return Err(Stop::Stop(idx));
        };
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Stop::Err(LoadError::TooManyValues));
        }
        match c {
            '"' => {
                let (s, end) = self.scanstring(idx + 1)?;
                Ok((Value::String(s), end))
            }
            '{' => {
                self.enter()?;
                let r = self.parse_object(idx + 1);
                self.depth -= 1;
                r
            }
            '[' => {
                self.enter()?;
                let r = self.parse_array(idx + 1);
                self.depth -= 1;
                r
            }
            'n' if self.starts_with(idx, "null") => Ok((Value::Null, idx + 4)),
            't' if self.starts_with(idx, "true") => Ok((Value::Bool(true), idx + 4)),
            'f' if self.starts_with(idx, "false") => Ok((Value::Bool(false), idx + 5)),
            'N' if self.starts_with(idx, "NaN") => Ok((Value::Null, idx + 3)),
            'I' if self.starts_with(idx, "Infinity") => Ok((Value::Null, idx + 8)),
            '-' if self.starts_with(idx, "-Infinity") => Ok((Value::Null, idx + 9)),
            _ => self.number(idx),
        }
    }

    fn enter(&mut self) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            return Err(Stop::Err(LoadError::TooDeep));
        }
        Ok(())
    }

    fn is_digit(&self, i: usize) -> bool {
        matches!(self.at(i), Some('0'..='9'))
    }

    fn number(&self, start: usize) -> Result<(Value, usize), Stop> {
        let mut idx = start;
        if self.at(idx) == Some('-') {
            idx += 1;
        }
        match self.at(idx) {
            Some('1'..='9') => {
                idx += 1;
                while self.is_digit(idx) {
                    idx += 1;
                }
            }
            Some('0') => idx += 1,
            _ => return Err(Stop::Stop(start)),
        }
        let mut is_float = false;
        if self.at(idx) == Some('.') && self.is_digit(idx + 1) {
            is_float = true;
            idx += 2;
            while self.is_digit(idx) {
                idx += 1;
            }
        }
        if matches!(self.at(idx), Some('e' | 'E')) {
            let e_start = idx;
            idx += 1;
            if matches!(self.at(idx), Some('-' | '+')) {
                idx += 1;
            }
            while self.is_digit(idx) {
                idx += 1;
            }
            if self.is_digit(idx - 1) {
                is_float = true;
            } else {
                idx = e_start;
            }
        }
        let text: String = self.s[start..idx].iter().collect();
        let v = if is_float {
            float_value(text.parse::<f64>().unwrap_or(f64::NAN))
        } else if let Ok(i) = text.parse::<i64>() {
            Value::Number(i.into())
        } else if let Ok(u) = text.parse::<u64>() {
            Value::Number(u.into())
        } else {
            float_value(text.parse::<f64>().unwrap_or(f64::NAN))
        };
        Ok((v, idx))
    }

    fn parse_object(&mut self, start: usize) -> Result<(Value, usize), Stop> {
        let mut map = Map::new();
        let mut idx = self.skip_ws(start);
        if self.at(idx) != Some('}') {
            loop {
                if self.at(idx) != Some('"') {
                    return Err(err(
                        "Expecting property name enclosed in double quotes",
                        idx,
                    ));
                }
                let (key, next) = self.scanstring(idx + 1)?;
                idx = self.skip_ws(next);
                if self.at(idx) != Some(':') {
                    return Err(err("Expecting ':' delimiter", idx));
                }
                idx = self.skip_ws(idx + 1);
                let (val, next) = self.scan(idx)?;
                map.insert(key, val);
                idx = self.skip_ws(next);
                if self.at(idx) == Some('}') {
                    break;
                }
                if self.at(idx) != Some(',') {
                    return Err(err("Expecting ',' delimiter", idx));
                }
                idx = self.skip_ws(idx + 1);
            }
        }
        Ok((Value::Object(map), idx + 1))
    }

    fn parse_array(&mut self, start: usize) -> Result<(Value, usize), Stop> {
        let mut out = Vec::new();
        let mut idx = self.skip_ws(start);
        if self.at(idx) != Some(']') {
            loop {
                let (val, next) = self.scan(idx)?;
                out.push(val);
                idx = self.skip_ws(next);
                if self.at(idx) == Some(']') {
                    break;
                }
                if self.at(idx) != Some(',') {
                    return Err(err("Expecting ',' delimiter", idx));
                }
                idx = self.skip_ws(idx + 1);
            }
        }
        Ok((Value::Array(out), idx + 1))
    }

    fn hex4(&self, from: usize) -> Option<u32> {
        let mut c = 0u32;
        for i in from..from + 4 {
            c = (c << 4) | self.at(i)?.to_digit(16)?;
        }
        Some(c)
    }

    /// `scanstring(s, end)`: `end` is the index just after the opening quote.
    fn scanstring(&self, mut end: usize) -> Result<(String, usize), Stop> {
        let len = self.s.len();
        let begin = end - 1;
        let mut out = String::new();
        loop {
            let mut next = end;
            let mut c = '\0';
            while next < len {
                c = self.s[next];
                if c == '"' || c == '\\' {
                    break;
                }
                if (c as u32) <= 0x1f {
                    return Err(err("Invalid control character at", next));
                }
                next += 1;
            }
            if next >= len || !(c == '"' || c == '\\') {
                return Err(err("Unterminated string starting at", begin));
            }
            out.extend(&self.s[end..next]);
            next += 1;
            if c == '"' {
                end = next;
                break;
            }
            if next == len {
                return Err(err("Unterminated string starting at", begin));
            }
            let e = self.s[next];
            if e != 'u' {
                end = next + 1;
                let ch = match e {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    _ => return Err(err("Invalid \\escape", end - 2)),
                };
                out.push(ch);
            } else {
                next += 1;
                end = next + 4;
                if end >= len {
                    return Err(err("Invalid \\uXXXX escape", next - 1));
                }
                let Some(mut cp) = self.hex4(next) else {
                    return Err(err("Invalid \\uXXXX escape", end - 5));
                };
                next = end;
                if (0xd800..=0xdbff).contains(&cp)
                    && end + 6 < len
                    && self.s[next] == '\\'
                    && self.s[next + 1] == 'u'
                {
                    end += 6;
                    let Some(c2) = self.hex4(next + 2) else {
                        return Err(err("Invalid \\uXXXX escape", end - 5));
                    };
                    if (0xdc00..=0xdfff).contains(&c2) {
                        cp = 0x10000 + (((cp - 0xd800) << 10) | (c2 - 0xdc00));
                    } else {
                        end -= 6;
                    }
                }
                out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
            }
        }
        Ok((out, end))
    }
}

fn float_value(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> (&'static str, usize) {
        match loads(s) {
            Err(LoadError::Decode(d)) => (d.msg, d.pos),
            other => panic!("{s:?} -> {other:?}"),
        }
    }

    #[test]
    fn python_errors() {
        assert_eq!(
            e("{"),
            ("Expecting property name enclosed in double quotes", 1)
        );
        assert_eq!(e("[1,]"), ("Expecting value", 3));
        assert_eq!(e("{\"日本語\": \"値\" x}"), ("Expecting ',' delimiter", 12));
        assert_eq!(e("{\"a\":\"\\u12\"}"), ("Invalid \\uXXXX escape", 7));
        assert_eq!(e("1e"), ("Extra data", 1));
        assert_eq!(e("-"), ("Expecting value", 0));
    }

    #[test]
    fn value_cap() {
        let array = |n: usize| format!("[{}]", vec!["0"; n].join(","));
        // The array itself is a value.
        assert!(loads(&array(MAX_VALUES - 1)).is_ok());
        assert_eq!(loads(&array(MAX_VALUES)), Err(LoadError::TooManyValues));
        let object = |n: usize| {
            let pairs: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{{}}")).collect();
            format!("{{{}}}", pairs.join(","))
        };
        assert!(loads(&object(MAX_VALUES - 1)).is_ok());
        assert_eq!(loads(&object(MAX_VALUES)), Err(LoadError::TooManyValues));
    }

    #[test]
    fn python_extensions() {
        assert_eq!(
            loads("[NaN, -Infinity, 1e400]").unwrap(),
            serde_json::json!([null, null, null])
        );
        assert_eq!(loads("\"\\ud800\"").unwrap(), serde_json::json!("\u{fffd}"));
        assert_eq!(
            loads("\"\\ud834\\udd1e\"").unwrap(),
            serde_json::json!("\u{1d11e}")
        );
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(loads(&deep), Err(LoadError::TooDeep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(loads(&ok).is_ok());
    }
}
