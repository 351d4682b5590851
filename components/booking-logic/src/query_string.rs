//! Decoding of `application/x-www-form-urlencoded` query strings (as in
//! `GET /graphql?query=...`), small enough not to warrant a dependency:
//! pairs split on `&` and `=`, `+` is a space, `%XX` a byte, and the
//! result must be UTF-8.

/// The decoded `name=value` pairs, in order. Malformed escapes and
/// non-UTF-8 results are errors, not silently replaced text.
pub fn parse(query: &str) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// The value of the first pair named `name`.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn decode(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = input.next().and_then(hex);
                let low = input.next().and_then(hex);
                match (high, low) {
                    (Some(high), Some(low)) => bytes.push(high << 4 | low),
                    _ => return Err("malformed %-escape in the query string".to_string()),
                }
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| "the query string is not UTF-8".to_string())
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_plus_and_escapes() {
        let pairs = parse("query=%7B+logicVersion+%7D&operationName=Op&flag&=x").unwrap();
        assert_eq!(get(&pairs, "query"), Some("{ logicVersion }"));
        assert_eq!(get(&pairs, "operationName"), Some("Op"));
        assert_eq!(get(&pairs, "flag"), Some(""));
        assert_eq!(get(&pairs, "missing"), None);
        assert_eq!(parse("q=%C3%A9").unwrap()[0].1, "é");
        assert_eq!(parse("q=a%2Bb%3Dc%26d").unwrap()[0].1, "a+b=c&d");
    }

    #[test]
    fn refuses_malformed_escapes_and_invalid_utf8() {
        for bad in ["q=%", "q=%4", "q=%zz", "q=%FF", "%G0=1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
