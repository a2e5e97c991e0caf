//! serde_json's errors, retold without the input.
//!
//! serde quotes what it found: `invalid type: string "someone@example.com", expected struct
//! UserData`. Those messages reach answers and logs, so a value from a personal field would
//! leak through them. Every body reader of ttedge turns its errors into a [`JsonError`]
//! here, which keeps the field path and what was expected and says only what *kind* of
//! value was found.

use alloc::format;
use alloc::string::{String, ToString};

use serde_json::error::Category;

/// A body that did not read, said without quoting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not JSON at all: serde_json's syntax message (it never quotes input) and position.
    Syntax {
        /// What the parser said, without its " at line L column C".
        message: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// JSON, but a field does not fit.
    Field {
        /// Where, such as `batch[2].properties.value`; `(body)` for the whole body.
        path: String,
        /// What is wrong, naming types and field names only.
        message: String,
        /// A field that the type does not have (only readers that refuse unknown fields).
        unknown: bool,
    },
}

/// The path of the whole body.
pub(crate) const BODY: &str = "(body)";

/// Reads `T` from `body`, tracking the path so that an error names its field.
pub(crate) fn read<'de, T: serde::Deserialize<'de>>(body: &'de [u8]) -> Result<T, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize::<_, T>(&mut deserializer)
        .map_err(|error| explain(error.path().to_string(), error.into_inner()))?;
    deserializer
        .end()
        .map_err(|error| explain(String::from("."), error))?;
    Ok(value)
}

/// Retells `error`, which happened at `path` (serde_path_to_error's form, `.` at the root).
pub(crate) fn explain(path: String, error: serde_json::Error) -> JsonError {
    let full = error.to_string();
    let message = strip_position(&full);
    if !matches!(error.classify(), Category::Data) {
        return JsonError::Syntax {
            message: message.to_string(),
            line: error.line(),
            column: error.column(),
        };
    }
    let path = if path == "." {
        String::from(BODY)
    } else {
        path
    };
    // A struct's own complaints name a field in backticks; the path is the struct's.
    let inside = |field: &str| match path.as_str() {
        BODY => field.to_string(),
        _ => format!("{path}.{field}"),
    };
    let field_error = |path: String, message: &str, unknown: bool| JsonError::Field {
        path,
        message: message.to_string(),
        unknown,
    };
    if let Some(field) = quoted_after(message, "unknown field `") {
        // serde_path_to_error's path already ends with the unknown field.
        let path = if path.ends_with(field) {
            path.clone()
        } else {
            inside(field)
        };
        return field_error(path, "is not a known field", true);
    }
    if let Some(field) = quoted_after(message, "missing field `") {
        return field_error(inside(field), "is required", false);
    }
    if let Some(field) = quoted_after(message, "duplicate field `") {
        return field_error(inside(field), "appears twice", false);
    }
    if path == BODY && message.starts_with("invalid type: ") {
        // Every body reader reads an object at the top.
        return field_error(path, "must be a JSON object", false);
    }
    field_error(path, &value_free(message), false)
}

/// serde's type and value complaints with the value left out. Messages of ttedge's own
/// readers never quote input, and pass unchanged.
fn value_free(message: &str) -> String {
    // The expected part is written by the reader, never by the input, so the last
    // ", expected " is where it starts even when a quoted value holds those words.
    let expected = message
        .rfind(", expected ")
        .map(|at| &message[at + ", expected ".len()..]);
    if let (Some(found), Some(expected)) = (message.strip_prefix("invalid type: "), expected) {
        return format!("expected {expected}, found {}", kind_of(found));
    }
    let refused_value = ["invalid value: ", "invalid length ", "unknown variant "]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    match (refused_value, expected) {
        (true, Some(expected)) => format!("expected {expected}"),
        (true, None) => String::from("has a value that is not allowed here"),
        (false, _) => message.to_string(),
    }
}

/// The kind of value serde's `Unexpected` describes (`string "…"`, `integer `5``, …).
fn kind_of(found: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("string", "a string"),
        ("integer", "a number"),
        ("floating point", "a number"),
        ("boolean", "a boolean"),
        ("sequence", "an array"),
        ("map", "an object"),
        ("null", "null"),
        ("unit", "null"),
    ];
    KINDS
        .iter()
        .find(|(prefix, _)| found.starts_with(prefix))
        .map_or("a value of another type", |(_, kind)| kind)
}

/// The text between `prefix` at the start of `message` and the next backtick.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(field, _)| field)
}

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Person {
        email: String,
        age: Option<u8>,
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Shopper,
    }

    fn error(body: &str) -> JsonError {
        read::<Person>(body.as_bytes()).unwrap_err()
    }

    fn field(path: &str, message: &str) -> JsonError {
        JsonError::Field {
            path: path.to_string(),
            message: message.to_string(),
            unknown: false,
        }
    }

    #[test]
    fn type_errors_say_what_was_found_but_not_the_value() {
        assert_eq!(
            error(r#"{"email":12345678}"#),
            field("email", "expected a string, found a number")
        );
        assert_eq!(
            error(r#"{"email":"a@b.co","age":"someone@example.com"}"#),
            field("age", "expected u8, found a string")
        );
        // A value holding serde's own words cannot move where the expected part starts.
        assert_eq!(
            error(r#"{"email":"a@b.co","age":"x, expected y"}"#),
            field("age", "expected u8, found a string")
        );
    }

    #[test]
    fn value_errors_drop_the_value() {
        assert_eq!(
            error(r#"{"email":"a@b.co","age":300}"#),
            field("age", "expected u8")
        );
        assert_eq!(
            error(r#"{"email":"a@b.co","kind":"someone@example.com"}"#),
            field("kind", "expected `shopper`")
        );
    }

    #[test]
    fn struct_complaints_name_the_field() {
        assert_eq!(error("{}"), field("email", "is required"));
        assert_eq!(
            error(r#"{"email":"a@b.co","email":"c@d.co"}"#),
            field("email", "appears twice")
        );
        assert_eq!(
            error(r#"{"email":"a@b.co","someone@example.com":1}"#),
            JsonError::Field {
                path: "someone@example.com".to_string(),
                message: "is not a known field".to_string(),
                unknown: true,
            }
        );
    }

    #[test]
    fn syntax_errors_keep_their_position() {
        match error("{\"email\":\n\"a@b.co\",,}") {
            JsonError::Syntax { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(!message.contains(" at line "), "{message}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
        assert!(matches!(
            error(r#"{"email":"a@b.co"} trailing"#),
            JsonError::Syntax { .. }
        ));
    }
}
