//! The product catalogue: `GET /api/v1/catalog/categories`, `GET /api/v1/catalog/products`.
//! Sources: `catalog/` (products and regulatory dates from the project's catalogue facts;
//! generations and support dates from endoflife.date).

use actix_web::http::StatusCode;
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::catalog::{Category, Product};
use crate::core::domain::Slug;
use crate::http::extract::{NoParams, Query};
use crate::http::problem::Problem;
use crate::http::respond::{Res, get_only, json};
use crate::service::Service;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/catalog/categories", categories)).service(get_only("/api/v1/catalog/products", products));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(categories, products))]
pub struct Doc;

/// A catalogue category with its product count.
#[derive(Serialize, ToSchema)]
pub struct CategoryOut {
    #[serde(flatten)]
    category: Category,
    /// Products in this category.
    products: usize,
}

/// Answer of `GET /api/v1/catalog/categories`.
#[derive(Serialize, ToSchema)]
pub struct CategoriesOut {
    catalog_version: String,
    categories: Vec<CategoryOut>,
}

/// The catalogue's categories.
///
/// Each category with its slug, French label, kind and number of products, and the
/// catalogue's version.
#[utoipa::path(get, path = "/api/v1/catalog/categories", tag = "catalog", operation_id = "list_categories",
    responses((status = 200, description = "Every category", body = CategoriesOut, example = crate::http::api::examples::categories)))]
pub async fn categories(s: web::Data<Service>, _no_query: Query<NoParams>) -> Res {
    let c = s.catalog();
    let list: Vec<_> = c.categories.iter().map(|x| CategoryOut { category: x.clone(), products: c.products_in(&x.slug).count() }).collect();
    json(StatusCode::OK, &CategoriesOut { catalog_version: c.version.clone(), categories: list })
}

/// Answer of `GET /api/v1/catalog/products`.
#[derive(Serialize, ToSchema)]
pub struct ProductsOut<'a> {
    catalog_version: String,
    count: usize,
    products: Vec<&'a Product>,
}

/// Query of `GET /api/v1/catalog/products`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsQuery {
    /// Only the products of this category.
    category: Option<Slug>,
}

/// The catalogue's products, optionally of one category.
///
/// Each product with its categories, vendor, generations (with their releases and support
/// dates where the sources give them) and the source of each fact.
#[utoipa::path(get, path = "/api/v1/catalog/products", tag = "catalog", operation_id = "list_products",
    params(("category" = Option<String>, Query, description = "Only the products of this category (slug)")),
    responses((status = 200, description = "The products (here: `category=elections`)", body = ProductsOut, example = crate::http::api::examples::products),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such category", body = Problem)))]
pub async fn products(s: web::Data<Service>, q: Query<ProductsQuery>) -> Res {
    let c = s.catalog();
    if let Some(cat) = &q.category {
        c.category(cat)?;
    }
    let list: Vec<_> = c.products.iter().filter(|p| q.category.as_ref().is_none_or(|x| p.categories.contains(x))).collect();
    json(StatusCode::OK, &ProductsOut { catalog_version: c.version.clone(), count: list.len(), products: list })
}
