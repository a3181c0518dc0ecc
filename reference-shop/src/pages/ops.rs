//! The operator page: what every resilience mechanism is doing (the `/admin/status`
//! snapshot), the dead letters with a replay button, and the provider fault switches. Behind
//! the admin token, as `/admin/*`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::cookie;
use super::extract::{PageForm, PageQuery};
use super::layout::{Area, answer, error_page, page, see_other};
use crate::api::{Replay, ShopStatus};
use crate::app::Shop;
use crate::bus::DeadLetter;
use crate::faults::{FaultPatch, FaultSettings};
use crate::guard::BreakerState;
use crate::http::is_admin_token;

/// Dead letters listed on the page (the count above the table is all of them).
const LISTED_DEAD_LETTERS: usize = 50;

/// An operator: the request's cookie holds the admin token. Without it, the sign-in form
/// (401).
pub(super) struct Operator;

impl FromRequestParts<Arc<Shop>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shop: &Arc<Shop>) -> Result<Self, Response> {
        match cookie::get(&parts.headers, cookie::OPERATOR) {
            Some(token) if is_admin_token(shop, token) => Ok(Self),
            given => Err(sign_in_page(given.is_some())),
        }
    }
}

/// The sign-in form, 401; `refused` says the token given was wrong.
fn sign_in_page(refused: bool) -> Response {
    let content = html! {
        h1 { "Operator sign-in" }
        @if refused { p.warn #refused { "That is not the admin token." } }
        form method="post" action="/ops/login" {
            label { "Admin token " input #token type="password" name="token" required
                autocomplete="current-password"; }
            button #sign-in type="submit" { "Sign in" }
        }
        p.muted { "The token is the shop's " code { "server.admin_token" } " (the "
            code { "X-Admin-Token" } " of " code { "/admin/*" } ")." }
    };
    answer(StatusCode::UNAUTHORIZED, page(Area::Operator, "Operator sign-in", &content))
}

/// `POST /ops/login` form.
#[derive(Debug, Deserialize)]
pub(super) struct Login {
    token: String,
}

/// `POST /ops/login`: keeps the admin token in the operator cookie when it is the right one.
pub(super) async fn login(
    State(shop): State<Arc<Shop>>,
    PageForm(Login { token }): PageForm<Login>,
) -> Response {
    if !is_admin_token(&shop, &token) {
        return sign_in_page(true);
    }
    match cookie::set(cookie::OPERATOR, &token, "/ops") {
        Some(c) => see_other("/ops", Some(c)),
        // A token a cookie cannot hold: the page is out of reach, `/admin/*` is not.
        None => error_page(
            Area::Operator,
            crate::api::ApiError::invalid(
                "token_not_a_cookie",
                "the admin token has characters a cookie cannot hold (spaces, quotes, commas, \
                 semicolons, backslashes or non-ASCII); use /admin/* with X-Admin-Token",
            ),
        ),
    }
}

/// `POST /ops/logout`: forgets the token.
pub(super) async fn logout() -> Response {
    see_other("/ops", Some(cookie::clear(cookie::OPERATOR, "/ops")))
}

/// `GET /ops` query: what the last action did, to say so on the page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    replayed: Option<usize>,
    faults: Option<String>,
    /// Reload the page every two seconds (`/ops?watch=true`), to watch an outage.
    #[serde(default)]
    watch: bool,
}

/// The page: the status snapshot, the dead letters, the switches.
async fn render(shop: &Shop, done: &Done) -> Markup {
    let status = shop.operations.status();
    let dead = shop.operations.dead_letters().await.dead_letters;
    let content = html! {
        @if done.watch { meta http-equiv="refresh" content="2"; }
        h1 { "Operator" }
        p.muted {
            @if done.watch { "Reloading every 2 s. " a href="/ops" { "Stop" } }
            @else { a #watch href="/ops?watch=true" { "Reload every 2 s" } }
        }
        @if let Some(n) = done.replayed {
            p.note #replayed { "Replayed " (n) " dead letter" @if n != 1 { "s" } "." }
        }
        @if done.faults.is_some() { p.note #faults-changed { "Faults changed." } }
        div.grid {
            (breaker(&status))
            (edge(&status))
            (faults(&status.faults))
        }
        (queue(&status, &dead))
        form.inline method="post" action="/ops/logout" { button.link type="submit" { "Sign out" } }
    };
    page(Area::Operator, "Operator", &content)
}

/// `GET /ops`.
pub(super) async fn show(
    State(shop): State<Arc<Shop>>,
    _: Operator,
    PageQuery(done): PageQuery<Done>,
) -> Response {
    answer(StatusCode::OK, render(&shop, &done).await)
}

/// The payment breaker and the pipeline around it.
fn breaker(status: &ShopStatus) -> Markup {
    let b = &status.breaker;
    let p = &status.payment;
    let state = match b.state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half-open",
    };
    html! {
        section.card {
            h2 { "Payment breaker" }
            p { span.state.(state) #breaker-state data-state=(state) { (state) } }
            dl {
                dt { "Failures in window" } dd { (b.failures_in_window) }
                dt { "Opened" } dd #breaker-opened { (b.opened) }
                dt { "Closed again" } dd { (b.closed) }
                dt { "Calls refused while open" } dd #breaker-rejected { (b.rejected) }
            }
            h3 { "Payment pipeline" }
            dl {
                dt { "Calls" } dd { (p.calls) }
                dt { "Failures" } dd { (p.failures) }
                dt { "Retries" } dd { (p.retries) }
                dt { "Retry budget exhausted" } dd { (p.retry_budget_exhausted) }
                dt { "Attempt timeouts" } dd { (p.attempt_timeouts) }
                dt { "Overall timeouts" } dd { (p.overall_timeouts) }
            }
        }
    }
}

/// The edge's refusals and the connections'.
fn edge(status: &ShopStatus) -> Markup {
    let e = &status.edge;
    let c = &status.connections;
    html! {
        section.card {
            h2 { "Limiters" }
            dl {
                dt { "Rate-limited (429)" } dd #rate-limited { (e.rate_limited) }
                dt { "Sign-ups limited" } dd { (e.signup_limited) }
                dt { "Shed by the bulkhead (503)" } dd #shed { (e.shed) }
                dt { "In flight / most at once" } dd { (e.in_flight) " / " (e.max_concurrent) }
                dt { "Clients tracked" } dd { (e.tracked_clients) }
            }
            h3 { "Connections" }
            dl {
                dt { "Open" } dd { (c.open) }
                dt { "Refused over the limits" } dd { (c.refused_total) }
                dt { "Header / body read timeouts" } dd { (c.header_timeouts) " / " (c.body_timeouts) }
                dt { "Deadlines exceeded" } dd { (c.deadlines_exceeded) }
            }
        }
    }
}

/// The event bus: depth per subscription, the dead letters, the replay button.
fn queue(status: &ShopStatus, dead: &[DeadLetter]) -> Markup {
    let q = &status.queue;
    html! {
        section.card.wide {
            h2 { "Queue" }
            p {
                (q.published) " events published · "
                span #dlq-depth data-depth=(q.dlq_depth) { (q.dlq_depth) } " dead letters"
            }
            table {
                thead { tr {
                    th { "Subscription" } th { "Topic" } th.num { "Depth" } th.num { "In flight" }
                    th.num { "Acked" } th.num { "Redelivered" } th.num { "Dead-lettered" }
                } }
                tbody {
                    @for s in &q.subscriptions {
                        tr {
                            td { (s.name) } td { (s.topic) } td.num { (s.depth) }
                            td.num { (s.in_flight) } td.num { (s.acked) }
                            td.num { (s.redelivered) } td.num { (s.dead_lettered) }
                        }
                    }
                }
            }
            (dead_letters(dead))
            form method="post" action="/ops/dlq/replay" {
                button #replay type="submit" disabled[dead.is_empty()] { "Replay dead letters" }
            }
        }
    }
}

/// The provider fault switches: the values now, a form to change them, and two shortcuts.
fn faults(f: &FaultSettings) -> Markup {
    let down = f.provider_failure_rate >= 1.0;
    html! {
        section.card {
            h2 { "Faults" }
            p { "Payment provider: "
                @if down { strong.warn #provider-state { "down" } }
                @else { span #provider-state { "up" } }
            }
            form method="post" action="/ops/faults" {
                label { "Provider failure rate (0 to 1) "
                    input #provider_failure_rate type="number" name="provider_failure_rate"
                        value=(f.provider_failure_rate) min="0" max="1" step="0.05" required; }
                label { "Provider latency (ms) "
                    input type="number" name="provider_latency_ms" value=(f.provider_latency_ms)
                        min="0" max="600000" required; }
                label { "Store latency (ms) "
                    input type="number" name="store_latency_ms" value=(f.store_latency_ms)
                        min="0" max="600000" required; }
                button type="submit" { "Apply" }
            }
            div.shortcuts {
                form.inline method="post" action="/ops/faults" {
                    input type="hidden" name="provider_failure_rate" value="1";
                    button.danger #provider-down type="submit" { "Provider down" }
                }
                form.inline method="post" action="/ops/faults" {
                    input type="hidden" name="provider_failure_rate" value="0";
                    input type="hidden" name="provider_latency_ms" value="0";
                    input type="hidden" name="store_latency_ms" value="0";
                    button #heal type="submit" { "Heal all" }
                }
            }
        }
    }
}

/// The dead letters, newest last.
fn dead_letters(dead: &[DeadLetter]) -> Markup {
    html! {
        div {
            h3 { "Dead letters" }
            @if dead.is_empty() {
                p #no-dead-letters { "None." }
            } @else {
                @if dead.len() > LISTED_DEAD_LETTERS {
                    p.muted { "The last " (LISTED_DEAD_LETTERS) " of " (dead.len()) "." }
                }
                table #dead-letters {
                    thead { tr { th { "Id" } th { "Subscription" } th { "Event" } th.num { "Deliveries" } th { "Last error" } } }
                    tbody {
                        @for d in dead.iter().rev().take(LISTED_DEAD_LETTERS).rev() {
                            tr {
                                td { (d.id) }
                                td { (d.subscription) }
                                td { code { (serde_json::to_string(&d.event).unwrap_or_default()) } }
                                td.num { (d.deliveries) }
                                td { (d.last_error) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ops/faults` form: the fields to change (absent ones stay).
#[derive(Debug, Deserialize)]
pub(super) struct FaultForm {
    provider_failure_rate: Option<f64>,
    provider_latency_ms: Option<u64>,
    store_latency_ms: Option<u64>,
}

/// `POST /ops/faults`: changes the injected faults, as `PUT /admin/faults` does.
pub(super) async fn set_faults(
    State(shop): State<Arc<Shop>>,
    _: Operator,
    PageForm(f): PageForm<FaultForm>,
) -> Response {
    let patch = FaultPatch {
        provider_failure_rate: f.provider_failure_rate,
        provider_latency_ms: f.provider_latency_ms,
        store_latency_ms: f.store_latency_ms,
    };
    match shop.operations.set_faults(patch) {
        Ok(_) => see_other("/ops?faults=changed", None),
        Err(e) => error_page(Area::Operator, e),
    }
}

/// `POST /ops/dlq/replay`: every dead letter back to its subscription.
pub(super) async fn replay(State(shop): State<Arc<Shop>>, _: Operator) -> Response {
    let replayed = shop.operations.replay(Replay { ids: None }).await;
    see_other(&format!("/ops?replayed={}", replayed.replayed), None)
}
