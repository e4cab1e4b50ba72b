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

/// Registers the routes of every API resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(territory::configure)
        .configure(adoptions::configure)
        .configure(recommendations::configure)
        .configure(pooling::configure)
        .configure(prices::configure)
        .configure(inventory::configure)
        .configure(catalog::configure)
        .configure(tokens::configure)
        .configure(admin::configure);
}
