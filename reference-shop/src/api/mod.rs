//! The shop's HTTP contract as types: every request body, query and response body is a serde
//! struct here (errors included), so the services and the handlers agree by construction and
//! a later step can derive the OpenAPI document from them. The services take and return these
//! types; the handlers in [`crate::http`] only move them between HTTP and the services.

mod carts;
mod catalog;
mod customers;
mod error;
mod health;
pub mod integral;
mod ledger;
mod ops;
mod orders;
mod settings;

pub use carts::{CartItem, CartNotificationList, CartView};
pub use catalog::{ProductChange, ProductPage, ProductSearch};
pub use customers::NewCustomer;
pub use error::{ApiError, ErrorBody, ErrorDetail, HoldingDetail, retry_after_secs};
pub use health::{Check, Liveness, Readiness, ReadyChecks, ReadyStatus};
pub use ledger::{ProductStock, StockLedger};
pub use ops::{DeadLetterList, Replay, Replayed, ShopStatus, StoreStatus};
pub use orders::{
    Checkout, NotificationList, OrderItem, OrderList, Page, Pay, PaymentOutcome, PlaceOrder,
    Placement,
};
pub use settings::{
    CacheLive, CachePatch, CachesLive, CachesPatch, EdgeLive, EdgePatch, LiveSettings, PaymentLive,
    PaymentPatch, SettingsPatch,
};
