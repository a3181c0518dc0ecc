//! The customers' requests (the answer is a [`Customer`](crate::domain::Customer)).

use serde::{Deserialize, Serialize};

/// `POST /customers` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Display name: 1 to 64 characters, not only spaces (surrounding spaces, tabs and line
    /// breaks are dropped).
    #[schema(min_length = 1, max_length = 64, pattern = "[^ \\t\\n\\r]")]
    pub name: String,
}
