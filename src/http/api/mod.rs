//! The JSON API, one module per resource. Each module has its own `configure` (its routes)
//! and its own `Doc` (its OpenAPI paths); [`configure`] nests them all and
//! [`crate::http::openapi`] merges their documents.

pub mod admin;
pub mod adoptions;
pub mod catalog;
pub mod examples;
pub mod health;
pub mod inventory;
pub mod pooling;
pub mod prices;
pub mod recommendations;
pub mod territory;
pub mod tokens;

use actix_web::web;

/// Registers the routes of every API resource. Recommendations come first after the health
/// probes (fixed paths, matched without a regex): actix-web tries the routes in order, and
/// each route with a `{segment}` it tries costs a regex match, so the most asked path is not
/// made to fail seven of them first. No two routes match the same path, so the order changes
/// nothing else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(recommendations::configure)
        .configure(territory::configure)
        .configure(adoptions::configure)
        .configure(pooling::configure)
        .configure(prices::configure)
        .configure(inventory::configure)
        .configure(catalog::configure)
        .configure(tokens::configure)
        .configure(admin::configure);
}
