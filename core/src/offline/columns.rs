//! Which column of a shop's export feeds which field of an offline event: the header names
//! shops export, and `--map COLUMN=FIELD` for any other.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The fields a column can feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Email in clear.
    Email,
    /// Phone in any format.
    Phone,
    /// The shop's customer id.
    ExternalId,
    /// The order (transaction) id.
    OrderId,
    /// The incoming event name.
    Event,
    /// Order value.
    Value,
    /// ISO 4217 currency.
    Currency,
    /// When it happened.
    Timestamp,
    /// Product ids, several in one cell.
    ContentIds,
}

impl Field {
    /// Every field with the name `--map` takes, in [`Cells`]' order.
    pub const NAMES: [(&'static str, Field); 9] = [
        ("email", Field::Email),
        ("phone", Field::Phone),
        ("external_id", Field::ExternalId),
        ("order_id", Field::OrderId),
        ("event", Field::Event),
        ("value", Field::Value),
        ("currency", Field::Currency),
        ("timestamp", Field::Timestamp),
        ("content_ids", Field::ContentIds),
    ];

    /// The field a normalised header name stands for, among the names shops export.
    pub fn of_header(normalized: &str) -> Option<Field> {
        Some(match normalized {
            "email" => Field::Email,
            "phone" => Field::Phone,
            "external_id" | "customer_id" => Field::ExternalId,
            "order_id" | "transaction_id" => Field::OrderId,
            "event" | "event_type" => Field::Event,
            "value" | "amount" | "total" => Field::Value,
            "currency" => Field::Currency,
            "timestamp" | "event_time" | "created_at" => Field::Timestamp,
            "content_ids" | "content_id" => Field::ContentIds,
            _ => return None,
        })
    }

    /// The names `--map` takes, comma-separated, for messages.
    fn known() -> String {
        let names: Vec<&str> = Field::NAMES.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }
}

/// A header or `--map` name, compared case-insensitively with spaces as underscores.
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase().replace(' ', "_")
}

/// Why a `--map` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// No `=` in the entry.
    NoEquals(String),
    /// The part after `=` names no [`Field`].
    UnknownField {
        /// The whole entry.
        entry: String,
        /// The field asked for, trimmed.
        field: String,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::NoEquals(entry) => write!(f, "--map {entry:?}: expected COLUMN=FIELD"),
            MapError::UnknownField { entry, field } => write!(
                f,
                "--map {entry:?}: unknown field {field:?}; fields are {}",
                Field::known()
            ),
        }
    }
}

impl core::error::Error for MapError {}

/// Columns named by `--map column=field`, normalised; empty when there is none.
#[derive(Debug, Clone, Default)]
pub struct ColumnMap(Vec<(String, Field)>);

impl ColumnMap {
    /// Reads `--map` values; an unknown field or a value without `=` is refused.
    pub fn parse<S: AsRef<str>>(maps: &[S]) -> Result<Self, MapError> {
        let mut map: Vec<(String, Field)> = Vec::new();
        for entry in maps {
            let entry = entry.as_ref();
            let Some((column, field)) = entry.split_once('=') else {
                return Err(MapError::NoEquals(entry.to_string()));
            };
            let field_name = normalize(field);
            let Some((_, field)) = Field::NAMES.iter().find(|(name, _)| *name == field_name) else {
                return Err(MapError::UnknownField {
                    entry: entry.to_string(),
                    field: field.trim().to_string(),
                });
            };
            let column = normalize(column);
            // A column mapped twice: the last entry wins.
            map.retain(|(c, _)| *c != column);
            map.push((column, *field));
        }
        Ok(ColumnMap(map))
    }

    fn get(&self, column: &str) -> Option<Field> {
        self.0.iter().find(|(c, _)| c == column).map(|(_, f)| *f)
    }

    /// For each column, the field it feeds: `--map` first, then the recognised header
    /// names; when two columns feed one field, the first wins.
    pub fn columns<S: AsRef<str>>(&self, headers: &[S]) -> Vec<Option<Field>> {
        let mut taken = Vec::new();
        let mut columns = Vec::with_capacity(headers.len());
        for header in headers {
            let name = normalize(header.as_ref());
            let field = self.get(&name).or_else(|| {
                Field::of_header(&name).filter(|f| !self.0.iter().any(|(_, m)| m == f))
            });
            let field = field.filter(|f| !taken.contains(f));
            if let Some(field) = field {
                taken.push(field);
            }
            columns.push(field);
        }
        columns
    }
}

/// One row's cells by field; a field without a column (or a JSON key) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cells([Option<String>; 9]);

impl Cells {
    /// The cell feeding `field`, as read.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.0[field as usize].as_deref()
    }

    /// Sets the cell feeding `field`.
    pub fn set(&mut self, field: Field, text: String) {
        self.0[field as usize] = Some(text);
    }

    /// The cells that are there, in [`Field::NAMES`]' order.
    pub fn iter(&self) -> impl Iterator<Item = (Field, &str)> {
        Field::NAMES
            .iter()
            .filter_map(|(_, field)| Some((*field, self.get(*field)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn headers_and_map() {
        let map = ColumnMap::parse(&["Buyer Mail=email"]).unwrap();
        let headers = [
            "Order ID",
            "Buyer Mail",
            "EMAIL",
            "Created At",
            "Total",
            "Amount",
        ];
        assert_eq!(
            map.columns(&headers),
            [
                Some(Field::OrderId),
                Some(Field::Email),
                None,
                Some(Field::Timestamp),
                Some(Field::Value),
                None
            ]
        );
        let error = ColumnMap::parse(&["x=colour"]).unwrap_err();
        assert!(error.to_string().contains("unknown field \"colour\""));
        assert!(error.to_string().contains("fields are email, phone"));
        assert_eq!(
            ColumnMap::parse(&["x"]).unwrap_err(),
            MapError::NoEquals("x".into())
        );
    }

    #[test]
    fn every_field_has_its_slot() {
        let mut cells = Cells::default();
        for (i, (name, field)) in Field::NAMES.iter().enumerate() {
            assert_eq!(*field as usize, i, "{name}");
            cells.set(*field, name.to_string());
        }
        assert_eq!(cells.get(Field::Currency), Some("currency"));
        assert_eq!(cells.iter().count(), 9);
    }
}
