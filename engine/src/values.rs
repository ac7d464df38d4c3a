//! Domain values: each is built by a `parse` that can fail, so code that holds one never
//! checks it again.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

mod enums;
pub use enums::*;

/// An email address, trimmed and lower-cased.
///
/// The check is deliberately practical rather than RFC 5322 complete: one `@`, a
/// non-empty local part without spaces, and a dotted domain of letters, digits and
/// hyphens. That rejects the typos people make and accepts every address that mail
/// servers deliver to in practice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses `raw`, naming `field` in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let address = raw.trim().to_lowercase();
        let bad = |why: &str| {
            EngineError::invalid(
                field,
                format!("'{}' is not a valid email address: {why}", excerpt(raw)),
            )
        };
        if address.len() > 254 {
            return Err(bad("longer than 254 characters"));
        }
        let (local, domain) = address
            .split_once('@')
            .ok_or_else(|| bad("it has no '@'"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before '@' must have 1 to 64 characters"));
        }
        if local
            .chars()
            .any(|c| c.is_whitespace() || c == '@' || c.is_control())
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(bad(
                "the part before '@' has a character or dot where none may be",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(bad(
                "the domain must be dotted labels of letters, digits and hyphens",
            ));
        }
        Ok(Self(address))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number as typed, with its normalised form for matching duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumber {
    raw: String,
    normalized: String,
}

impl PhoneNumber {
    /// Accepts digits with the usual separators (spaces, dots, dashes, parentheses) and an
    /// optional leading `+`; between 5 and 15 digits (the E.164 maximum).
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let trimmed = raw.trim();
        let bad = |why: &str| {
            EngineError::invalid(
                field,
                format!("'{}' is not a valid phone number: {why}", excerpt(raw)),
            )
        };
        let mut normalized = String::new();
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '+' if i == 0 => normalized.push('+'),
                '0'..='9' => normalized.push(c),
                ' ' | '.' | '-' | '(' | ')' | '/' => {}
                _ => {
                    return Err(bad(
                        "only digits, spaces, . - ( ) / and a leading + are allowed",
                    ));
                }
            }
        }
        let digits = normalized.trim_start_matches('+').len();
        if !(5..=15).contains(&digits) {
            return Err(bad("it must have 5 to 15 digits"));
        }
        Ok(Self {
            raw: trimmed.to_string(),
            normalized,
        })
    }

    /// The number as the user typed it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Digits only, keeping a leading `+`.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// An ISO 4217 currency code with its number of minor-unit digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

// Active ISO 4217 codes and their minor units. Codes not listed have two decimals.
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DECIMAL: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
const TWO_DECIMAL: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF",
    "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
    "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS", "VES", "WST", "XCD", "YER", "ZAR",
    "ZMW", "ZWG",
];

impl Currency {
    /// Parses a three-letter ISO 4217 code (case-insensitive).
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let upper = raw.trim().to_ascii_uppercase();
        let find = |list: &[&'static str]| list.iter().copied().find(|c| *c == upper);
        let (code, exponent) = if let Some(c) = find(TWO_DECIMAL) {
            (c, 2)
        } else if let Some(c) = find(ZERO_DECIMAL) {
            (c, 0)
        } else if let Some(c) = find(THREE_DECIMAL) {
            (c, 3)
        } else {
            return Err(EngineError::invalid(
                field,
                format!("'{}' is not an ISO 4217 currency code", excerpt(raw)),
            ));
        };
        Ok(Self { code, exponent })
    }

    /// The three-letter code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of digits after the decimal point (2 for USD, 0 for JPY).
    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// Converts minor units back to a decimal amount for display.
    pub fn to_major(&self, minor: i64) -> f64 {
        minor as f64 / 10f64.powi(self.exponent as i32)
    }
}

/// A non-negative amount of money in minor units of its currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    /// Amount in minor units (cents).
    pub minor: i64,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// Builds an amount from a decimal value; negative, non-finite or over-precise values
    /// are refused rather than rounded, so no money is silently lost.
    pub fn parse(field: &str, amount: f64, currency: Currency) -> Result<Self> {
        if !amount.is_finite() {
            return Err(EngineError::invalid(
                field,
                "the amount must be a finite number",
            ));
        }
        if amount < 0.0 {
            return Err(EngineError::invalid(
                field,
                format!("the amount must not be negative (got {amount})"),
            ));
        }
        let scaled = amount * 10f64.powi(currency.exponent as i32);
        let minor = scaled.round();
        if (scaled - minor).abs() > 1e-6 * scaled.abs().max(1.0) {
            return Err(EngineError::invalid(
                field,
                format!(
                    "{} allows {} decimal places; got {amount}",
                    currency.code, currency.exponent
                ),
            ));
        }
        if minor >= 9.0e15 {
            return Err(EngineError::invalid(field, "the amount is too large"));
        }
        Ok(Self {
            minor: minor as i64,
            currency,
        })
    }
}

/// An ISO 3166-1 alpha-2 country code, upper-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountryCode(String);

impl CountryCode {
    /// Two ASCII letters.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(code))
        } else {
            Err(EngineError::invalid(
                field,
                format!(
                    "'{}' is not an ISO 3166-1 alpha-2 country code",
                    excerpt(raw)
                ),
            ))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A web domain such as `acme.com`, lower-cased, without scheme, `www.` or path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    /// Accepts `acme.com`, `https://www.acme.com/about` and the like.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let mut d = raw.trim().to_lowercase();
        for prefix in ["https://", "http://"] {
            if let Some(rest) = d.strip_prefix(prefix) {
                d = rest.to_string();
            }
        }
        let d = d.split(['/', '?', '#']).next().unwrap_or_default();
        let d = d.strip_prefix("www.").unwrap_or(d).trim_end_matches('.');
        let labels: Vec<&str> = d.split('.').collect();
        let ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if ok {
            Ok(Self(d.to_string()))
        } else {
            Err(EngineError::invalid(
                field,
                format!("'{}' is not a valid domain", excerpt(raw)),
            ))
        }
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A link to a web page: `http` or `https`, with a host, at most 2,048 characters,
/// without spaces or control characters (it goes into email as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebUrl(String);

impl WebUrl {
    /// The longest URL accepted.
    pub const MAX_LEN: usize = 2048;

    /// Accepts `https://shop.example/p/1` and the like.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let url = raw.trim();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host = rest.and_then(|r| r.split(['/', '?', '#']).next());
        let ok = url.len() <= Self::MAX_LEN
            && host.is_some_and(|h| !h.is_empty() && !h.contains('@'))
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>');
        if ok {
            Ok(Self(url.to_string()))
        } else {
            Err(EngineError::invalid(
                field,
                format!(
                    "'{}' is not an http(s) link of at most {} characters",
                    excerpt(raw),
                    Self::MAX_LEN
                ),
            ))
        }
    }

    /// The URL as text.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Tags one contact may carry.
pub const MAX_TAGS: usize = 100;

/// A tag: trimmed, 1 to 64 characters, no commas or control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    /// Parses one tag.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let t = raw.trim();
        if t.is_empty()
            || t.len() > 256
            || t.chars().count() > 64
            || t.chars()
                .any(|c| c.is_control() || c == ',' || is_bidi_control(c))
        {
            return Err(EngineError::invalid(
                field,
                format!(
                    "'{}' is not a valid tag (1-64 characters, no commas)",
                    excerpt(raw)
                ),
            ));
        }
        Ok(Self(t.to_string()))
    }

    /// Parses a list of at most [`MAX_TAGS`], dropping duplicates and keeping the first
    /// spelling's order.
    pub fn parse_list(field: &str, raw: &[String]) -> Result<Vec<Self>> {
        if raw.len() > MAX_TAGS {
            return Err(EngineError::invalid(
                field,
                format!("at most {MAX_TAGS} tags (got {})", raw.len()),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(raw.len());
        let mut out: Vec<Self> = Vec::with_capacity(raw.len());
        for r in raw {
            let t = Self::parse(field, r)?;
            if seen.insert(t.0.clone()) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At most this much of a client's input is quoted back in an error, so a refused
/// megabyte is not echoed to the client and into the logs.
const EXCERPT_CHARS: usize = 40;

/// The start of `raw`, for quoting in an error message.
pub fn excerpt(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// The start of a longer message (a parser's complaint that may quote the input).
pub fn excerpt_long(raw: &str) -> String {
    if raw.len() <= 300 {
        return raw.to_string();
    }
    let cut = (0..=300)
        .rev()
        .find(|&i| raw.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &raw[..cut])
}

/// Characters that reorder how text is displayed (bidirectional embeddings, overrides
/// and isolates): in a name or subject they can make `gpj.exe` read as `exe.jpg`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why `t` is refused as text, if it is: control characters (NUL, which PostgreSQL
/// cannot store; CR and LF, which split an email header) and bidi controls. Line breaks
/// and tabs pass in multi-line text.
fn forbidden_char(t: &str, multiline: bool) -> Option<&'static str> {
    t.chars().find_map(|c| {
        if multiline && matches!(c, '\n' | '\r' | '\t') {
            None
        } else if c == '\0' {
            Some("must not contain NUL characters")
        } else if c == '\r' || c == '\n' {
            Some("must be a single line")
        } else if c.is_control() {
            Some("must not contain control characters")
        } else if is_bidi_control(c) {
            Some("must not contain bidirectional override characters")
        } else {
            None
        }
    })
}

/// A required, trimmed, non-empty piece of text of bounded length (names, subjects,
/// titles): one line, without control or bidi-override characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    /// Parses one line of text of 1 to `max` characters.
    pub fn parse(field: &str, raw: &str, max: usize) -> Result<Self> {
        Self::parse_as(field, raw, max, false)
    }

    /// Parses text of 1 to `max` characters that may span lines (descriptions, notes).
    pub fn parse_multiline(field: &str, raw: &str, max: usize) -> Result<Self> {
        Self::parse_as(field, raw, max, true)
    }

    fn parse_as(field: &str, raw: &str, max: usize, multiline: bool) -> Result<Self> {
        let t = raw.trim();
        if t.is_empty() {
            return Err(EngineError::invalid(field, "must not be empty"));
        }
        // Bytes first: counting the characters of a huge input is work in itself.
        if t.len() > max * 4 || t.chars().count() > max {
            return Err(EngineError::invalid(
                field,
                format!("must be at most {max} characters"),
            ));
        }
        if let Some(why) = forbidden_char(t, multiline) {
            return Err(EngineError::invalid(field, why));
        }
        Ok(Self(t.to_string()))
    }

    /// Parses optional text: `None`, or blank, is no value.
    pub fn parse_opt(field: &str, raw: Option<&str>, max: usize) -> Result<Option<Self>> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => Self::parse(field, t, max).map(Some),
        }
    }

    /// Parses optional multi-line text: `None`, or blank, is no value.
    pub fn parse_multiline_opt(field: &str, raw: Option<&str>, max: usize) -> Result<Option<Self>> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => Self::parse_multiline(field, t, max).map(Some),
        }
    }

    /// Parses optional one-line text where blank is kept as blank (a contact's first or
    /// last name may be empty).
    pub fn parse_blank_ok(field: &str, raw: &str, max: usize) -> Result<String> {
        if raw.trim().is_empty() {
            return Ok(String::new());
        }
        Self::parse(field, raw, max).map(Self::into_string)
    }

    /// The text.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Custom attributes: a JSON object (never an array or a scalar).
#[derive(Clone, Debug, PartialEq)]
pub struct Attributes(serde_json::Map<String, serde_json::Value>);

impl Attributes {
    /// Accepts a JSON object with at most 200 keys of at most 64 characters, nested at
    /// most 8 deep, with texts of at most 10,000 bytes and 64 kB in all.
    pub fn parse(field: &str, raw: serde_json::Value) -> Result<Self> {
        const BOUNDS: crate::input_limits::Bounds = crate::input_limits::Bounds {
            depth: 8,
            nodes: 5_000,
            width: 1_000,
            string_bytes: 10_000,
        };
        BOUNDS.check(field, &raw)?;
        if serde_json::to_vec(&raw).map_or(0, |b| b.len()) > 64 * 1024 {
            return Err(EngineError::invalid(field, "must be at most 64 kB as JSON"));
        }
        match raw {
            serde_json::Value::Object(map) => {
                if map.len() > 200 {
                    return Err(EngineError::invalid(field, "at most 200 attributes"));
                }
                if let Some(k) = map.keys().find(|k| k.is_empty() || k.chars().count() > 64) {
                    return Err(EngineError::invalid(
                        field,
                        format!("attribute name '{}' must have 1-64 characters", excerpt(k)),
                    ));
                }
                Ok(Self(map))
            }
            serde_json::Value::Null => Ok(Self(Default::default())),
            other => Err(EngineError::invalid(
                field,
                format!("must be a JSON object, got {}", excerpt(&other.to_string())),
            )),
        }
    }

    /// The attributes as a JSON value.
    pub fn into_json(self) -> serde_json::Value {
        serde_json::Value::Object(self.0)
    }
}

/// An IANA time zone name such as `Europe/Berlin` or `UTC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Checks the shape of an IANA name (`UTC`, or `Area/Location[/Sub]`).
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let t = raw.trim();
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        };
        let parts: Vec<&str> = t.split('/').collect();
        let ok = t == "UTC"
            || (parts.len() >= 2
                && parts.iter().all(|p| part_ok(p))
                && parts[0]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase()));
        if ok {
            Ok(Self(t.to_string()))
        } else {
            Err(EngineError::invalid(
                field,
                format!(
                    "'{}' is not an IANA time zone name such as Europe/Berlin",
                    excerpt(raw)
                ),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A change to a nullable field: leave it, clear it, or set it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Patch<T> {
    /// Not mentioned: keep what is stored.
    #[default]
    Keep,
    /// Explicitly null: clear the field.
    Clear,
    /// A new value.
    Set(T),
}

impl<T> Patch<T> {
    /// Parses the new value, if any, keeping `Keep` and `Clear` as they are.
    pub fn parse<U>(self, f: impl FnOnce(T) -> Result<U>) -> Result<Patch<U>> {
        Ok(match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(v) => Patch::Set(f(v)?),
        })
    }

    /// The value to store: `None` to keep the current one, `Some(None)` to clear it.
    pub fn into_change(self) -> Option<Option<T>> {
        match self {
            Self::Keep => None,
            Self::Clear => Some(None),
            Self::Set(v) => Some(Some(v)),
        }
    }

    /// Whether the field is mentioned at all.
    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }

    /// Writes the change, if any, into an active-model field.
    pub fn apply(self, slot: &mut sea_orm::ActiveValue<Option<T>>)
    where
        Option<T>: Into<sea_orm::Value>,
    {
        if let Some(v) = self.into_change() {
            *slot = sea_orm::ActiveValue::Set(v);
        }
    }
}

/// The strings of a JSON array column (tags, further emails); anything else reads as none.
pub fn json_strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(
            EmailAddress::parse("email", " Ann@Example.COM ")
                .unwrap()
                .as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@-x.com",
            ".a@x.com",
        ] {
            assert!(EmailAddress::parse("email", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn money_refuses_loss() {
        let usd = Currency::parse("c", "usd").unwrap();
        assert_eq!(Money::parse("a", 12.34, usd).unwrap().minor, 1234);
        assert!(Money::parse("a", 12.345, usd).is_err());
        assert!(Money::parse("a", -1.0, usd).is_err());
        let jpy = Currency::parse("c", "JPY").unwrap();
        assert_eq!(Money::parse("a", 500.0, jpy).unwrap().minor, 500);
        assert!(Currency::parse("c", "XYZ").is_err());
    }

    #[test]
    fn domains() {
        assert_eq!(
            Domain::parse("d", "https://www.Acme.com/about")
                .unwrap()
                .as_str(),
            "acme.com"
        );
        assert!(Domain::parse("d", "acme").is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(
            PhoneNumber::parse("p", "+1 (555) 010-2030")
                .unwrap()
                .normalized(),
            "+15550102030"
        );
        assert!(PhoneNumber::parse("p", "call me").is_err());
    }

    proptest! {
        #[test]
        fn parsed_email_reparses_to_itself(local in "[a-z0-9._+-]{1,20}", domain in "[a-z0-9]{1,10}\\.[a-z]{2,6}") {
            if let Ok(e) = EmailAddress::parse("e", &format!("{local}@{domain}")) {
                prop_assert_eq!(EmailAddress::parse("e", e.as_str()).unwrap(), e);
            }
        }

        #[test]
        fn email_parse_never_panics(s in "\\PC*") {
            let _ = EmailAddress::parse("e", &s);
        }

        #[test]
        fn money_roundtrips_cents(cents in 0i64..1_000_000_000_000) {
            let usd = Currency::parse("c", "USD").unwrap();
            let m = Money::parse("a", usd.to_major(cents), usd).unwrap();
            prop_assert_eq!(m.minor, cents);
        }

        #[test]
        fn phone_normalized_is_digits(s in "\\+?[0-9 ().-]{5,25}") {
            if let Ok(p) = PhoneNumber::parse("p", &s) {
                prop_assert!(p.normalized().trim_start_matches('+').chars().all(|c| c.is_ascii_digit()));
            }
        }
    }
}
