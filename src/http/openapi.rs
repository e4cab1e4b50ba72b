//! The OpenAPI 3.1 document of the API, generated from the handlers and types by utoipa and
//! served at `GET /api/v1/openapi.json`.
//!
//! Each API module describes its own operations (`Doc`: summary, description, parameters,
//! request body, success answers with an example, the error statuses it can give with what
//! they mean there). [`document`] merges them and applies the API's conventions once, so that
//! no handler repeats them and a new route follows them without asking:
//!
//! - `servers` (the service's own origin), `info` (contact, licence), tags with descriptions,
//!   the `bearer` security scheme;
//! - `security: []` on every operation that does not declare its own (a public read); writes
//!   declare `security(("bearer" = []))`, reads that show more to a token
//!   `security((), ("bearer" = []))`;
//! - path and query parameters that mean the same thing everywhere get one schema by name,
//!   the one their parser accepts (`known_parameter`): `{code}` (code INSEE), `{siren}`,
//!   `{id}` (a record id), `category`, `as_of`, `Idempotency-Key`;
//! - every error status has an `application/problem+json` body and a description
//!   ([`ERROR_DESCRIPTIONS`]); 401 (a bad token, on any request) and 500 are added to every
//!   operation; the problem's `code` lists the codes of [`PROBLEM_TYPES`];
//! - response headers are described once by name (`response_header`): `Location`,
//!   `Idempotent-Replayed`, `WWW-Authenticate`, `Retry-After`, `ETag`, `Cache-Control`,
//!   `Content-Disposition`; every GET's 200 has its `ETag` and `Cache-Control`, and a 304;
//!   every operation a 429 (the limit on failed authentications) with `Retry-After`;
//! - each path says which methods it allows (the `Allow` header of its 405);
//! - the recommender's parameters come from [`PARAM_BOUNDS`], so that the document follows
//!   the code;
//! - tuples (`prefixItems`) say their length.
//!
//! `tests/openapi.rs` checks the document's structure (every response described, every path
//! parameter with a pattern, public reads with `security: []`, writes with the bearer
//! requirement, examples); `tests/contract/lint.sh` runs openapi-spec-validator, Redocly and
//! Spectral on it, and `tests/contract/schemathesis.sh` checks the running service against it.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::api;
use super::problem::Problem;
use super::respond::get_only;
use crate::core::domain::{INSEE_CODE_PATTERN, SIREN_PATTERN, SLUG_PATTERN};
use crate::core::recommend::{INTEGER_PARAMS, PARAM_BOUNDS, Params};
use crate::error::{Error, PROBLEM_TYPES};

/// The route of this document.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/openapi.json", openapi_json));
}

/// The document's frame: title, description, tags, the problem schema and this document's own
/// path. The API modules' paths are merged in by [`document`].
#[derive(OpenApi)]
#[openapi(
    info(title = "voisinage", description = "What neighbouring communes already run, how reliable it proved, and groupements de commandes for EPCI.

**Access.** Reads are public (`security: []`); a few show more to a token covering the commune or EPCI (free-text comments and notes). \
Writes need a bearer token (`Authorization: Bearer vsn_…`) whose scope covers the object: `commune:{code}`, `epci:{siren}` or `admin`. \
A token that is malformed, unknown or revoked gets 401 on any request, with `WWW-Authenticate: Bearer realm=\"voisinage\"`.

**Errors.** Every error is an RFC 9457 `application/problem+json` body with a stable `code` (the `Problem` schema lists them): \
400 `malformed-input` for a value of the wrong shape (the parameter or field is named), a query parameter given twice or unknown, an unknown JSON field; \
422 `invalid-value` for a value in shape but refused by a rule that a schema cannot state (a range across fields, a date after today, what the catalogue lists); \
405 `method-not-allowed` with `Allow` for a method a path does not allow (each path says which); 408 `request-timeout` for a request that takes over 30 s; \
413 `payload-too-large` for a body over 32 KiB (an inventory upload: 5 MiB).

**HTTP.** Reads (GET, HEAD) answer a weak `ETag` with `Cache-Control: no-cache`, and 304 to an `If-None-Match` that lists it; \
answers are compressed (gzip, br, zstd) as `Accept-Encoding` asks; every answer carries `X-Request-Id` (the request's own, 1 to 200 visible \
ASCII characters, or one made), which the service's log lines of that request carry too. After 10 failed authentications in a minute from one \
address, requests from it with an `Authorization` header get 429 `too-many-requests` with `Retry-After`. Browsers may call the API from the \
origins the operator allows (CORS; none by default).

**Writes** are durable before their answer. `POST` adoptions and feedback accept an `Idempotency-Key`: a retry with the same key and body answers the first \
result again with `Idempotent-Replayed: true`.

GET paths also answer HEAD. The reference data served (INSEE COG 2026, IGN Admin Express) is under the Licence Ouverte 2.0; \
support dates come from endoflife.date (MIT)."),
    paths(openapi_json),
    components(schemas(Problem)),
    tags((name = "territory", description = "Communes, EPCI and the neighbour graph (INSEE COG 2026, IGN Admin Express 2018)"),
        (name = "adoptions", description = "What each commune runs, since when, and how it proved (feedback)"),
        (name = "recommendations", description = "Mature options proven nearby, with their evidence"),
        (name = "pooling", description = "Groupements de commandes for an EPCI: suggestions, exports, price estimates, inventory"),
        (name = "catalog", description = "The catalogue of categories and products, with their generations and support dates"),
        (name = "tokens", description = "Bearer tokens (admin only)"),
        (name = "admin", description = "The operator's routes (admin only): backups of the store"),
        (name = "service", description = "Liveness, metrics and this document"))
)]
struct ApiDoc;

/// The document: the frame, every API module's paths, then the conventions listed in the
/// module doc. Built once per call (cheap: a few hundred objects). Errors: `Internal` if it
/// cannot be serialised.
pub fn document() -> Result<Value, Error> {
    let mut doc = ApiDoc::openapi();
    for part in [
        api::health::Doc::openapi(),
        api::territory::Doc::openapi(),
        api::adoptions::Doc::openapi(),
        api::recommendations::Doc::openapi(),
        api::pooling::Doc::openapi(),
        api::prices::Doc::openapi(),
        api::inventory::Doc::openapi(),
        api::catalog::Doc::openapi(),
        api::tokens::Doc::openapi(),
        api::admin::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    let mut doc = serde_json::to_value(&doc).map_err(|e| Error::internal("serialising the OpenAPI document", e))?;
    frame(&mut doc);
    components(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            path_item(path, item);
        }
    }
    tuples(&mut doc);
    Ok(doc)
}

/// `servers`, contact, licence and version.
fn frame(doc: &mut Value) {
    doc["servers"] = json!([{"url": "/", "description": "The service that serves this document (its own origin)"}]);
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["info"]["contact"] = json!({"name": "voisinage maintainers"});
    // The licence of what the API serves: the reference data. The software's own licence is
    // not stated by the project yet.
    doc["info"]["license"] = json!({"name": "Licence Ouverte / Open Licence 2.0 (reference data)", "identifier": "etalab-2.0"});
}

/// The bearer scheme, and the problem's codes (from the one error table) and example.
fn components(doc: &mut Value) {
    let components = &mut doc["components"];
    components["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "vsn_ + 64 hex",
        "description": "A token made by `voisinage token create` or `POST /api/v1/tokens`; its scope (`commune:{code}`, `epci:{siren}`, `admin`) says what it may write",
    });
    let problem = &mut components["schemas"]["Problem"];
    problem["properties"]["code"]["enum"] = PROBLEM_TYPES.iter().map(|t| Value::from(t.code)).collect();
    problem["examples"] = json!([{
        "type": "/problems/invalid-value",
        "title": "Invalid value",
        "status": 422,
        "detail": "reliability must be 1 to 5, got 7",
        "code": "invalid-value",
    }]);
}

/// The methods of a path item, in the order of [`METHODS`].
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// One path: the `Allow` of its 405 in its description, then each operation.
fn path_item(path: &str, item: &mut Value) {
    let Some(item) = item.as_object_mut() else { return };
    let mut allow: Vec<String> = Vec::new();
    for m in METHODS {
        if item.contains_key(m) {
            allow.push(m.to_uppercase());
            if m == "get" {
                allow.push("HEAD".into());
            }
        }
    }
    item.insert(
        "description".into(),
        Value::from(format!("Allows {}; any other method gets 405 `method-not-allowed` with `Allow: {}`.", allow.join(", "), allow.join(", "))),
    );
    for m in METHODS {
        if let Some(op) = item.get_mut(m).and_then(Value::as_object_mut) {
            operation(path, m, op);
        }
    }
}

/// One operation: security, parameters, responses; a read's 200 with its `ETag` and
/// `Cache-Control`, and its 304.
fn operation(path: &str, method: &str, op: &mut Map<String, Value>) {
    // An operation that declares no security is a public read.
    op.entry("security").or_insert_with(|| json!([]));
    if path == "/api/v1/communes/{code}/recommendations" {
        let params = op.entry("parameters").or_insert_with(|| json!([]));
        if let Some(params) = params.as_array_mut() {
            let defaults = serde_json::to_value(Params::default()).unwrap_or_default();
            params.extend(PARAM_BOUNDS.iter().map(|&(name, lo, hi)| recommender_parameter(name, lo, hi, &defaults)));
        }
    }
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut() {
            known_parameter(p);
        }
    }
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    responses.entry("401").or_insert_with(|| json!({"headers": {"WWW-Authenticate": {}}}));
    responses.entry("429").or_insert_with(|| json!({"headers": {"Retry-After": {}}}));
    responses.entry("500").or_insert_with(|| json!({}));
    for (status, r) in responses.iter_mut() {
        response(status, r);
    }
    if method == "get" {
        if let Some(headers) = responses.get_mut("200").map(|r| r.as_object_mut().map(|r| r.entry("headers").or_insert_with(|| json!({}))))
            && let Some(h) = headers.and_then(Value::as_object_mut)
        {
            h.insert("ETag".into(), response_header("ETag").unwrap_or_default());
            h.entry("Cache-Control").or_insert_with(|| {
                json!({"description": "`no-cache` (`private, no-cache` for a request with a token or a cookie): a cache may keep the answer but must \
                    revalidate it (`If-None-Match`) every time, as any write may change it", "required": true,
                    "schema": {"type": "string", "enum": ["no-cache", "private, no-cache"]}})
            });
        }
        responses.insert(
            "304".into(),
            json!({"description": "Not modified: the request's `If-None-Match` lists this answer's `ETag` (weak comparison) or `*`; no body",
                "headers": {"ETag": response_header("ETag"), "Cache-Control": {"description": "As on the 200", "required": true,
                    "schema": {"type": "string", "enum": ["no-cache", "private, no-cache"]}}}}),
        );
    }
}

/// A recommender parameter of [`PARAM_BOUNDS`] as a query parameter, its default as example.
fn recommender_parameter(name: &str, lo: f64, hi: f64, defaults: &Value) -> Value {
    let schema = if INTEGER_PARAMS.contains(&name) {
        json!({"type": "integer", "minimum": lo as i64, "maximum": hi as i64})
    } else {
        json!({"type": "number", "minimum": lo, "maximum": hi})
    };
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": format!("Recommender parameter, {lo} to {hi} (default in the answer's `params`; out of bounds: 422)"),
        "schema": schema,
        "example": defaults[name],
    })
}

/// Gives a parameter that means the same thing on every route (by location and name: path
/// `code`, `siren`, `id` and `feedback_id`, query `category`, `as_of`, header `Idempotency-Key`) the schema its
/// parser accepts, and an example (Brest, 29019, in Brest Métropole, 242900314). Other
/// parameters keep what their annotation says.
fn known_parameter(p: &mut Value) {
    let (location, name) = (p["in"].as_str().unwrap_or_default(), p["name"].as_str().unwrap_or_default());
    let (schema, example) = match (location, name) {
        ("path", "code") => (
            json!({"type": "string", "pattern": INSEE_CODE_PATTERN, "description": "Code INSEE (COG): 5 digits, or 2A/2B and 3 digits (either case)"}),
            json!("29019"),
        ),
        ("path", "siren") => (json!({"type": "string", "pattern": SIREN_PATTERN, "description": "SIREN: 9 digits"}), json!("242900314")),
        // A record id: a whole number from 1 (`RecordId`), up to the largest 64-bit unsigned.
        ("path", "id" | "feedback_id") => (json!({"type": "integer", "minimum": 1, "maximum": u64::MAX}), json!(1)),
        ("query", "category") => (json!({"type": "string", "pattern": SLUG_PATTERN}), json!("elections")),
        ("query", "as_of") => (json!({"type": "string", "format": "date"}), json!("2025-06-30")),
        ("header", "Idempotency-Key") => {
            (json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]{1,255}$"}), json!("b3c1f0e2-7d4a-4c1e-9a57-2f0d6e8c9b31"))
        }
        _ => return,
    };
    p["schema"] = schema;
    p["example"] = example;
}

/// What an error status means, for an operation that does not say more.
pub const ERROR_DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "400",
        "`malformed-input`: a value of the wrong shape (a path segment, a query parameter, a header, a body field: `detail` names it), a query \
         parameter given twice or unknown, JSON that does not parse or has an unknown field",
    ),
    ("401", "`unauthorized`: a token that is malformed, unknown or revoked (on any request), or no token (on a write)"),
    ("403", "`forbidden`: the token's scope does not cover this object"),
    ("404", "`not-found`: no such commune, EPCI, product, category or record"),
    ("409", "`conflict`: the request conflicts with what is stored"),
    ("413", "`payload-too-large`: a body over 32 KiB"),
    ("415", "`unsupported-media-type`: a body not sent as `application/json`"),
    ("422", "`invalid-value`: a value in shape but out of its range, or refused by a rule across fields"),
    (
        "429",
        "`too-many-requests`: too many failed authentications from this client address (10 a minute); any request with an `Authorization` \
         header is refused, before its token is checked, for the `Retry-After` seconds",
    ),
    ("500", "`storage` or `internal`: the store or the service failed (the detail says no more; the cause is in the service's log)"),
];

/// One response: an error's problem body and description; its headers described.
fn response(status: &str, r: &mut Value) {
    let Some(r) = r.as_object_mut() else { return };
    if status.starts_with('4') || status.starts_with('5') {
        let content = r.entry("content").or_insert_with(|| json!({}));
        if let Some(content) = content.as_object_mut() {
            if let Some(c) = content.remove("application/json") {
                content.insert("application/problem+json".into(), c);
            }
            content.entry("application/problem+json").or_insert_with(|| json!({"schema": {"$ref": "#/components/schemas/Problem"}}));
        }
        let described = r.get("description").and_then(Value::as_str).is_some_and(|d| !d.is_empty());
        if !described && let Some((_, d)) = ERROR_DESCRIPTIONS.iter().find(|(s, _)| *s == status) {
            r.insert("description".into(), Value::from(*d));
        }
    }
    for (code, name) in [("401", "WWW-Authenticate"), ("429", "Retry-After")] {
        if status == code {
            let headers = r.entry("headers").or_insert_with(|| json!({}));
            if let Some(h) = headers.as_object_mut() {
                h.entry(name).or_insert_with(|| json!({}));
            }
        }
    }
    if let Some(headers) = r.get_mut("headers").and_then(Value::as_object_mut) {
        for (name, h) in headers.iter_mut() {
            if let Some(known) = response_header(name) {
                *h = known;
            }
        }
    }
}

/// The header object of a response header the service sends, described once by name
/// (`Location`, `Idempotent-Replayed`, `Retry-After`, `WWW-Authenticate`, `ETag`,
/// `Cache-Control` of a secret, `Content-Disposition`): description, schema, and whether every response that documents it
/// carries it (all but `Idempotent-Replayed`). `None` for another name.
fn response_header(name: &str) -> Option<Value> {
    let (description, schema, required) = match name {
        "Location" => (
            "Where the created record is read: `/api/v1/communes/{code}/adoptions/{id}` (an adoption), \
             `/api/v1/communes/{code}/adoptions/{id}/feedback/{feedback_id}` (feedback), `/api/v1/epcis/{siren}/price-estimates/{id}` \
             (a price estimate), `/api/v1/tokens/{id}` (a token)",
            json!({"type": "string", "pattern": "^/api/v1/(?:communes/(?:[0-9]{5}|2[AB][0-9]{3})/adoptions/[1-9][0-9]*(?:/feedback/[1-9][0-9]*)?|epcis/[0-9]{9}/price-estimates/[1-9][0-9]*|tokens/[1-9][0-9]*)$"}),
            true,
        ),
        "Idempotent-Replayed" => (
            "`true` when this answer replays the first result of a request with the same `Idempotency-Key` and body (nothing was written again); absent otherwise",
            json!({"type": "string", "enum": ["true"]}),
            false,
        ),
        "Retry-After" => ("Seconds to wait before trying again", json!({"type": "string", "pattern": "^[0-9]+$"}), true),
        "WWW-Authenticate" => ("The scheme to authenticate with", json!({"type": "string", "enum": ["Bearer realm=\"voisinage\""]}), true),
        "ETag" => (
            "Weak entity tag of the answer (`W/\"` + 32 hex digits + `\"`): send it back in `If-None-Match` to get 304 while the answer is unchanged",
            json!({"type": "string", "pattern": "^W/\"[0-9a-f]{32}\"$"}),
            true,
        ),
        "Cache-Control" => ("`no-store`: the answer holds a secret", json!({"type": "string", "enum": ["no-store"]}), true),
        "Content-Disposition" => {
            ("A file to save, with its name (`attachment; filename=\"…\"`)", json!({"type": "string", "pattern": "^attachment; filename=\"[^\"]+\"$"}), true)
        }
        _ => return None,
    };
    Some(json!({"description": description, "required": required, "schema": schema}))
}

/// A tuple (`prefixItems` with `items: false`, as utoipa writes a Rust tuple) says its length
/// instead, with `items: {}`: the same values, in the form linters read.
fn tuples(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("items") == Some(&Value::Bool(false))
                && let Some(n) = o.get("prefixItems").and_then(Value::as_array).map(Vec::len)
            {
                o.insert("items".into(), json!({}));
                o.insert("minItems".into(), json!(n));
                o.insert("maxItems".into(), json!(n));
            }
            o.values_mut().for_each(tuples);
        }
        Value::Array(a) => a.iter_mut().for_each(tuples),
        _ => {}
    }
}

/// This document.
///
/// The OpenAPI 3.1 document of the API, generated from the code: every route with its
/// parameters, bodies, answers, examples and errors.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service", operation_id = "openapi_document",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object,
        example = json!({"openapi": "3.1.0", "info": {"title": "voisinage", "version": "0.1.0"}, "servers": [{"url": "/"}], "paths": {}}))))]
pub async fn openapi_json() -> HttpResponse {
    match document().and_then(|d| serde_json::to_vec(&d).map_err(|e| Error::internal("serialising the OpenAPI document", e))) {
        Ok(body) => HttpResponse::Ok().insert_header(ContentType::json()).body(body),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}
