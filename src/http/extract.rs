//! Typed input at the edge: who the caller is ([`Viewer`], [`CommuneWriter`], [`EpciWriter`],
//! [`AdminToken`]),
//! a JSON object body read into a typed request struct ([`Body`]) and the `Idempotency-Key`
//! header ([`IdempotencyKey`]). Paths are read as `web::Path<InseeCode>`, `web::Path<Siren>` or
//! `web::Path<(InseeCode, u64)>`, through the newtypes' own parsers.
//!
//! The caller extractors come first among a handler's arguments, so that a refused request is
//! refused before its body is read.

use std::future::{Future, Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::core::auth::Principal;
use crate::core::domain::{InseeCode, Siren};
use crate::error::Error;
use crate::service::Service;
use crate::store::Idempotency;

fn principal(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().copied()
}

fn required(req: &HttpRequest) -> Result<Principal, Error> {
    principal(req).ok_or_else(|| Error::Unauthorized("this request needs a bearer token (Authorization: Bearer vsn_...)".into()))
}

fn service(req: &HttpRequest) -> Result<&web::Data<Service>, Error> {
    req.app_data::<web::Data<Service>>().ok_or_else(|| Error::Internal { context: "service missing from app data".into(), source: None })
}

/// The authenticated caller, if any (reads that show more to an authorised caller, such as
/// free-text comments).
pub struct Viewer(pub Option<Principal>);

impl FromRequest for Viewer {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Viewer(principal(req))))
    }
}

/// A caller allowed to write the data of the commune named by the path's `{code}`: 400 for a
/// malformed code, 401 without a valid token, 404 for an unknown commune, 403 when the token's
/// scope does not cover it (logged at warn on the audit target).
pub struct CommuneWriter {
    /// Who writes.
    pub principal: Principal,
    /// The commune written to (as given in the path).
    pub code: InseeCode,
}

impl FromRequest for CommuneWriter {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(commune_writer(req).map_err(|e| {
            if let Error::Forbidden(_) = &e {
                tracing::warn!(target: "voisinage::audit", token = principal(req).map(|p| p.token_id), path = req.path(), "write refused: scope does not cover the commune");
            }
            e.into()
        }))
    }
}

fn commune_writer(req: &HttpRequest) -> Result<CommuneWriter, Error> {
    // Who asks comes first: without a token, 401 whatever the path holds.
    let principal = required(req)?;
    let code = InseeCode::parse(req.match_info().get("code").unwrap_or_default())?;
    service(req)?.authorize_commune(&principal, &code)?;
    Ok(CommuneWriter { principal, code })
}

/// A caller allowed to write the data of the EPCI named by the path's `{siren}` itself (its
/// price estimates, its inventory upload: a token `epci:{siren}` or `admin`): 400 for a
/// malformed SIREN, 401 without a valid token, 404 for an unknown EPCI, 403 for another scope
/// (a commune's, another EPCI's; logged at warn on the audit target).
pub struct EpciWriter {
    /// Who writes.
    pub principal: Principal,
    /// The EPCI written to.
    pub siren: Siren,
}

impl FromRequest for EpciWriter {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(epci_writer(req).map_err(|e| {
            if let Error::Forbidden(_) = &e {
                tracing::warn!(target: "voisinage::audit", token = principal(req).map(|p| p.token_id), path = req.path(), "write refused: scope does not cover the EPCI");
            }
            e.into()
        }))
    }
}

fn epci_writer(req: &HttpRequest) -> Result<EpciWriter, Error> {
    let principal = required(req)?;
    let siren = Siren::parse(req.match_info().get("siren").unwrap_or_default())?;
    service(req)?.authorize_epci(&principal, &siren)?;
    Ok(EpciWriter { principal, siren })
}

/// A caller holding an `admin` token: 401 without a valid token, 403 for another scope.
pub struct AdminToken(pub Principal);

impl FromRequest for AdminToken {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(required(req).and_then(|p| p.must_be_admin().map(|()| AdminToken(p))).map_err(Into::into))
    }
}

/// A JSON object body read into the request struct `T`. The body must be a JSON object with
/// unique top-level keys (`{"scope": "admin", "scope": "..."}` is refused, rather than read as
/// its last value, so that every reader of the request sees the same thing; an array or a
/// scalar is refused even where serde would map it onto the fields by position). A field that
/// does not fit is named in the 400: `invalid JSON body at 'reliability': invalid type:
/// floating point `3.5`, expected a whole number`. 415 for another content type, 413 over
/// [`super::MAX_BODY_BYTES`].
pub struct Body<T> {
    /// The request struct.
    pub value: T,
    /// FNV-1a hash of the object (keys sorted), the idempotency fingerprint of the request.
    pub fingerprint: u64,
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<JsonObject>::from_request(req, payload);
        Box::pin(async move {
            let object = json.await?.into_inner().0;
            let fingerprint = {
                use std::hash::Hasher;
                let mut h = fnv::FnvHasher::default();
                h.write(serde_json::to_string(&object).unwrap_or_default().as_bytes());
                h.finish()
            };
            let value = serde_path_to_error::deserialize(serde_json::Value::Object(object)).map_err(|e| field_error("JSON body", &e))?;
            Ok(Body { value, fingerprint })
        })
    }
}

/// The query string read into the query struct `T` (`serde_urlencoded`). A parameter that
/// does not fit is named in the 400: `invalid query string at 'hops': invalid digit found in
/// string`.
pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Query::parse(req.query_string()).map_err(Into::into))
    }
}

impl<T: DeserializeOwned> Query<T> {
    /// Reads a query string. Errors: `Malformed` for a parameter given twice (`?z=1&z=2`: which
    /// one would count?) or one that does not fit, naming it.
    pub fn parse(query: &str) -> Result<Self, Error> {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(name.clone()) {
                return Err(Error::Malformed(format!("query parameter '{}' is given more than once", name.chars().take(40).collect::<String>())));
            }
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| field_error("query string", &e))
    }
}

/// The query of a route that takes no query parameter: any parameter is 400 `malformed-input`
/// (`unknown field 'as_of', there are none`), rather than silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// A record id in a path (an adoption, a token): a whole number from 1. Errors: `Malformed`
/// naming what it should be, rather than the Rust type.
#[derive(Clone, Copy, Debug)]
pub struct RecordId(pub u64);

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse::<u64>()
            .ok()
            .filter(|n| *n > 0 && s.bytes().all(|b| b.is_ascii_digit()))
            .map(RecordId)
            .ok_or_else(|| serde::de::Error::custom(format!("'{}' is not a record id (a whole number from 1)", s.chars().take(20).collect::<String>())))
    }
}

/// An integer of a JSON body, read as JSON Schema reads `integer`: a number without a
/// fractional part, written `4`, `4.0` or `4e0` alike (the OpenAPI document says `integer`,
/// and a client generated from it may send any of these). Errors (400 through [`Body`]): a
/// fraction (`invalid type: floating point `3.5`, expected a whole number`), a string, a whole
/// number outside the 64-bit range. Bounds are the field's own (422).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WholeNumber(pub i64);

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Unexpected;
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = WholeNumber;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<WholeNumber, E> {
                i64::try_from(v).map(WholeNumber).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"a whole number below 2^63"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<WholeNumber, E> {
                // -2^63 and 2^63 are exact in f64: every whole value in between converts exactly.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if v.fract() != 0.0 || !v.is_finite() {
                    Err(E::invalid_type(Unexpected::Float(v), &self))
                } else if (-LIMIT..LIMIT).contains(&v) {
                    Ok(WholeNumber(v as i64))
                } else {
                    Err(E::invalid_value(Unexpected::Float(v), &"a whole number within ±2^63"))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A 400 naming the field that does not fit, if the error is about one.
fn field_error<E: std::fmt::Display>(what: &str, e: &serde_path_to_error::Error<E>) -> Error {
    let at = e.path().to_string();
    if at == "." { Error::Malformed(format!("invalid {what}: {}", e.inner())) } else { Error::Malformed(format!("invalid {what} at '{at}': {}", e.inner())) }
}

/// A JSON object whose top-level keys are unique.
struct JsonObject(serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<JsonObject, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate key '{}'", k.chars().take(40).collect::<String>())));
                    }
                    out.insert(k, v);
                }
                Ok(JsonObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The request's `Idempotency-Key` header (1 to 255 visible ASCII characters; 400 otherwise),
/// scoped to the request's method, path and token: another token reusing a key gets its own
/// write, not a replay.
pub struct IdempotencyKey(Option<(String, String)>);

impl IdempotencyKey {
    /// The key with the body's fingerprint, as the store keeps it; `None` without the header.
    pub fn with_fingerprint(self, fingerprint: u64) -> Option<Idempotency> {
        self.0.map(|(scope, key)| Idempotency { scope, key, fingerprint })
    }
}

impl FromRequest for IdempotencyKey {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(idempotency_key(req).map_err(Into::into))
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<IdempotencyKey, Error> {
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(IdempotencyKey(None)) };
    let key = v
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|c| (0x21..=0x7e).contains(&c)))
        .ok_or_else(|| Error::Malformed("Idempotency-Key must be 1 to 255 visible ASCII characters".into()))?;
    let token = principal(req).map_or(0, |p| p.token_id);
    Ok(IdempotencyKey(Some((format!("{} {} token:{token}", req.method(), req.path()), key.to_string()))))
}

/// Checks that an integer input lies in `lo..=hi`. Errors: `Invalid` (422) naming the field.
pub fn in_range(name: &str, v: i64, lo: i64, hi: i64) -> Result<i64, Error> {
    if (lo..=hi).contains(&v) { Ok(v) } else { Err(Error::Invalid(format!("{name} must be {lo} to {hi}, got {v}"))) }
}

/// The `horizon` query parameter of the pooled purchases and their exports and pages: months
/// ahead, 1 to 120, default [`crate::core::pooling::DEFAULT_HORIZON_MONTHS`] (24).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HorizonQuery {
    /// Months ahead; 400 when not an integer.
    pub horizon: Option<i64>,
    /// Ask the question at this past date (`YYYY-MM-DD`); 400 when not a date, 422 after the
    /// reference date.
    pub as_of: Option<chrono::NaiveDate>,
}

impl HorizonQuery {
    /// The horizon in months. Errors: `Invalid` (422) out of 1 to 120.
    pub fn months(&self) -> Result<u32, Error> {
        Ok(in_range("horizon", self.horizon.unwrap_or(i64::from(crate::core::pooling::DEFAULT_HORIZON_MONTHS)), 1, 120)? as u32)
    }
}
