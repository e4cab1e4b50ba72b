//! Answers of the service used as examples in the OpenAPI document, too long to write in the
//! handlers' annotations: saved from the demo service (seed 2026, Brittany) as JSON files in
//! `examples/` beside this module. Spectral checks each against its schema
//! (`tests/contract/lint.sh`); `tests/openapi.rs` checks that every one parses.

use serde_json::Value;

macro_rules! examples {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $name() -> Value {
                serde_json::from_str(include_str!(concat!("examples/", $file))).unwrap_or(Value::Null)
            }
        )*
        /// Every example, by name (for the tests).
        pub const ALL: &[(&str, fn() -> Value)] = &[$((stringify!($name), $name)),*];
    };
}

examples! {
    /// `GET /api/v1/epcis`: the 61 EPCI of Brittany.
    epcis = "epcis.json";
    /// `GET /api/v1/catalog/categories`.
    categories = "categories.json";
    /// `GET /api/v1/catalog/products?category=elections`.
    products = "products.json";
    /// `GET /api/v1/communes/29019/recommendations?category=elections&limit=1` (Brest).
    recommendations = "recommendations.json";
    /// `GET /api/v1/epcis/200068120/pooled-purchases` (Quimper Bretagne Occidentale; one need
    /// of a single commune and three evidence lines per option kept).
    pooled_purchases = "pooled-purchases.json";
    /// `GET /api/v1/epcis/242900314/map.geojson` (Brest Métropole; the feature of Bohars kept).
    map = "map.geojson.json";
    /// `GET /health` on the demo.
    health = "health.json";
}
