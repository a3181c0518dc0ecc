//! What the load generator sends: the shop's customer operations, and the weighted mix they
//! are drawn from.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One kind of request the load generator sends.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `POST /customers`: a new customer (keyed at the edge by client address).
    CreateCustomer,
    /// `GET /products/{id}`: a product read through the coalescing cache.
    GetProduct,
    /// `GET /products?q=..`: a catalog search.
    Search,
    /// `POST /cart/items`: a cart line, which reserves stock.
    AddToCart,
    /// `POST /orders` with a card: order placement, paid through the payment pipeline.
    PlaceOrder,
    /// `POST /orders` without a card, then `POST /orders/{id}/checkout` with one: the
    /// customer waits for the payment (timed as one operation, placement included).
    Checkout,
    /// `GET /orders`: the customer's recent orders.
    ListOrders,
}

impl Operation {
    /// Every operation, in report order.
    pub const ALL: [Self; 7] = [
        Self::CreateCustomer,
        Self::GetProduct,
        Self::Search,
        Self::AddToCart,
        Self::PlaceOrder,
        Self::Checkout,
        Self::ListOrders,
    ];

    /// The name used in scenario files, reports and `--slo`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateCustomer => "create_customer",
            Self::GetProduct => "get_product",
            Self::Search => "search",
            Self::AddToCart => "add_to_cart",
            Self::PlaceOrder => "place_order",
            Self::Checkout => "checkout",
            Self::ListOrders => "list_orders",
        }
    }

    /// The operation called `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Position in [`Operation::ALL`].
    #[must_use]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Relative weights of the operations; each request draws one in proportion to its weight.
///
/// ```
/// use reference_shop::loadgen::{Mix, Operation};
///
/// let mix = Mix::new([(Operation::GetProduct, 3), (Operation::PlaceOrder, 1)]).unwrap();
/// assert_eq!(mix.pick(0), Operation::GetProduct);
/// assert_eq!(mix.pick(2), Operation::GetProduct);
/// assert_eq!(mix.pick(3), Operation::PlaceOrder);
/// assert_eq!(mix.total(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// `(operation, cumulative weight up to and including it)`, weights above zero only.
    cumulative: Vec<(Operation, u64)>,
}

impl Mix {
    /// A mix of the given weights (operations absent or at zero are never sent). Returns
    /// `None` when every weight is zero.
    pub fn new(weights: impl IntoIterator<Item = (Operation, u32)>) -> Option<Self> {
        let weights: BTreeMap<Operation, u32> = weights.into_iter().collect();
        let mut total = 0_u64;
        let mut cumulative = Vec::new();
        for (op, w) in weights {
            if w > 0 {
                total += u64::from(w);
                cumulative.push((op, total));
            }
        }
        (!cumulative.is_empty()).then_some(Self { cumulative })
    }

    /// Sum of the weights.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.cumulative.last().map_or(0, |&(_, c)| c)
    }

    /// The operation for `roll`, a number in `0..total()` (larger rolls wrap around).
    #[must_use]
    pub fn pick(&self, roll: u64) -> Operation {
        let roll = roll % self.total();
        let i = self.cumulative.partition_point(|&(_, c)| c <= roll);
        self.cumulative[i].0
    }

    /// Draws an operation at random.
    #[must_use]
    pub fn draw(&self) -> Operation {
        self.pick(levee::core::random::below(self.total()))
    }

    /// The weights, operations with weight zero left out.
    pub fn weights(&self) -> impl Iterator<Item = (Operation, u64)> + '_ {
        let mut before = 0;
        self.cumulative.iter().map(move |&(op, c)| {
            let w = c - before;
            before = c;
            (op, w)
        })
    }
}

impl Default for Mix {
    /// The shop's usual traffic: mostly product reads, some searches and carts, one request
    /// in ten an order.
    fn default() -> Self {
        Self::new([
            (Operation::GetProduct, 60),
            (Operation::Search, 12),
            (Operation::AddToCart, 12),
            (Operation::PlaceOrder, 10),
            (Operation::ListOrders, 6),
        ])
        .expect("the default mix has weights")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        for (i, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(Operation::from_name(op.name()), Some(op));
            assert_eq!(op.index(), i);
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.name()));
        }
        assert_eq!(Operation::from_name("buy"), None);
    }

    #[test]
    fn picks_follow_the_weights_exactly_over_one_cycle() {
        let mix = Mix::default();
        let mut counts = BTreeMap::new();
        for roll in 0..mix.total() {
            *counts.entry(mix.pick(roll)).or_insert(0_u64) += 1;
        }
        let weights: BTreeMap<_, _> = mix.weights().collect();
        assert_eq!(counts, weights);
        assert_eq!(weights[&Operation::PlaceOrder], 10);
        assert!(!weights.contains_key(&Operation::CreateCustomer));
        assert!(!weights.contains_key(&Operation::Checkout), "the usual mix has no checkout");
    }

    #[test]
    fn an_all_zero_mix_is_refused() {
        assert_eq!(Mix::new([(Operation::Search, 0)]), None);
        assert_eq!(Mix::new([]), None);
    }
}
