//! The customers' requests (the answer is a [`Customer`](crate::domain::Customer)).

use serde::{Deserialize, Serialize};

/// `POST /customers` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Display name, 1 to 64 characters (surrounding spaces are dropped).
    pub name: String,
}
