//! An EPCI's inventory of what its members run, as a spreadsheet:
//! `GET /api/v1/epcis/{siren}/inventory-template.xlsx` (public: the data is),
//! `GET /api/v1/epcis/{siren}/inventory.xlsx` (what they run, typed cells; public too) and
//! `POST /api/v1/epcis/{siren}/inventory[?dry_run=true]` (the filled file, XLSX or CSV; token
//! `epci:{siren}` or `admin`).
//!
//! The upload is all or nothing: 200 with the report when every row is accepted or skipped
//! (written, or checked only for a dry run); 422 `invalid-value` whose problem body carries the
//! same report (`report`) when any row has an error, and then nothing is written. The body is
//! read here up to [`MAX_UPLOAD_BYTES`] (413 past it), whatever the global JSON limit.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::domain::Siren;
use crate::core::inventory::InventoryReport;
use crate::error::{Error, problem::INVALID};
use crate::http::extract::{EpciWriter, NoParams, Query};
use crate::http::problem::Problem;
use crate::http::respond::{Res, attachment, blocking, get_only, json, not_allowed};
use crate::inventory::{MAX_UPLOAD_BYTES, XLSX_MEDIA_TYPE, parse_inventory};
use crate::service::Service;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/epcis/{siren}/inventory-template.xlsx", template))
        .service(get_only("/api/v1/epcis/{siren}/inventory.xlsx", export))
        .service(web::resource("/api/v1/epcis/{siren}/inventory").route(web::post().to(upload)).default_service(web::to(|| not_allowed("POST"))));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(template, export, upload), components(schemas(InventoryReport, InventoryProblem)))]
pub struct Doc;

/// The EPCI's inventory template (XLSX).
///
/// One row per member commune × catalogue category, pre-filled with what each runs; columns
/// `code_insee`, `commune`, `categorie`, `libelle_categorie`, `produit`, `generation`,
/// `depuis`, `fin_contrat`, `postes`; drop-down lists of the catalogue's products (per
/// category) and generations (per product). Public: the data is.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/inventory-template.xlsx", tag = "pooling", operation_id = "get_inventory_template",
    params(("siren" = String, Path, description = "SIREN of the EPCI")),
    responses((status = 200, description = "XLSX workbook (sheets Inventaire, Notice, and a hidden sheet of lists)", body = inline(SpreadsheetFile),
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", headers(("Content-Disposition" = String))),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such EPCI", body = Problem)))]
pub async fn template(s: web::Data<Service>, siren: web::Path<Siren>, _no_query: Query<NoParams>) -> Res {
    let siren = siren.into_inner();
    let st = s.clone();
    let body = blocking(move || st.inventory_template(&siren)).await?;
    attachment(XLSX_MEDIA_TYPE, &format!("inventaire-{siren}.xlsx"), body)
}

/// What the members of the EPCI run today (XLSX), one row per adoption in service, in the
/// template's columns (so that it can be sent back) followed by `libelle_produit`,
/// `fin_support`, `avis`, `fiabilite_moyenne`, `simule` ([`crate::export::inventory_xlsx`]).
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/inventory.xlsx", tag = "pooling", operation_id = "inventory_xlsx",
    description = "What the member communes run today, one row per adoption in service (members by name, categories in catalogue order), as a workbook: sheet `Inventaire` (header row frozen, with a filter; the template's columns `code_insee`, `commune`, `categorie`, `libelle_categorie`, `produit`, `generation`, `depuis`, `fin_contrat`, `postes`, then `libelle_produit`, `fin_support`, `avis`, `fiabilite_moyenne`, `simule`; codes and generations are text cells, dates date cells `dd/mm/yyyy`, counts and ratings numbers; `simule` = `oui` for the simulated demo records) and sheet `Source` (the EPCI, SIREN, date, counts, source, whether the data are simulated, and what each column holds). Sent back unchanged to `POST /api/v1/epcis/{siren}/inventory`, every row is skipped as already recorded.",
    params(("siren" = String, Path, description = "SIREN of the EPCI", example = "243500139")),
    responses((status = 200, description = "XLSX workbook (sheets Inventaire and Source), sent as an attachment `inventaire-en-service-{siren}.xlsx`", body = inline(SpreadsheetFile),
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"inventaire-en-service-{siren}.xlsx\"`"))),
        (status = 400, description = "A malformed SIREN (not 9 digits)", body = Problem),
        (status = 404, description = "No EPCI with this SIREN", body = Problem)))]
pub async fn export(s: web::Data<Service>, siren: web::Path<Siren>, _no_query: Query<NoParams>) -> Res {
    let siren = siren.into_inner();
    let st = s.clone();
    let body = blocking(move || st.inventory_xlsx(&siren)).await?;
    attachment(XLSX_MEDIA_TYPE, &format!("inventaire-en-service-{siren}.xlsx"), body)
}

/// A file's bytes (XLSX, or CSV sent as `application/octet-stream`), for the OpenAPI document:
/// not empty (400).
pub struct SpreadsheetFile;

impl utoipa::PartialSchema for SpreadsheetFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(utoipa::openapi::schema::KnownFormat::Binary)))
            .min_length(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for SpreadsheetFile {}

/// A CSV file's text, for the OpenAPI document: what [`parse_inventory`] reads as CSV, UTF-8
/// (the document's strings are) without control characters but tabs and line breaks (415
/// otherwise), not empty (400).
pub struct CsvText;

impl utoipa::PartialSchema for CsvText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .pattern(Some("^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"))
            .description(Some("CSV text: UTF-8, `;` or `,` separated, a header row naming the columns"))
            .into()
    }
}

impl utoipa::ToSchema for CsvText {}

/// Query of the upload.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `true`: check every row and answer the report, write nothing.
    #[serde(default)]
    dry_run: Option<bool>,
}

/// The 422 answer of an upload with a bad row: a problem (`invalid-value`) with the report.
#[derive(Serialize, ToSchema)]
pub struct InventoryProblem {
    /// The problem fields (`type`, `title`, `status`, `detail`, `code`).
    #[serde(flatten)]
    problem: Problem,
    /// Every row's outcome; nothing was written. Absent from a 422 about the file itself (no
    /// header row with the required columns, no data row).
    #[schema(required = false)]
    report: InventoryReport,
}

/// Uploads the EPCI's filled inventory, all or nothing.
///
/// Token `epci:{siren}` or `admin` (a commune's token gets 403). The body is the file itself: XLSX (a body starting with the zip signature is read as
/// one) or CSV (UTF-8, optional BOM, `;` or `,`), at most 5 MiB; an XLSX may expand to at most
/// 20 MiB and hold at most 20,000 rows (413 past these limits). Every row is checked against
/// the territory (a member of this EPCI) and the catalogue with the rules of
/// `POST /api/v1/communes/{code}/adoptions`; nothing is written unless every row is valid.
/// A row without a product is skipped; one already recorded (same product, generation and
/// start) is skipped as "déjà enregistrée".
#[utoipa::path(post, path = "/api/v1/epcis/{siren}/inventory", tag = "pooling", operation_id = "upload_inventory", security(("bearer" = [])),
    params(("siren" = String, Path, description = "SIREN of the EPCI"),
        ("dry_run" = Option<bool>, Query, description = "Check only: answer the report, write nothing", example = true)),
    request_body(description = "The filled template",
        content((inline(SpreadsheetFile) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (inline(CsvText) = "text/csv", example = json!("code_insee;categorie;produit;generation;depuis;fin_contrat;postes\n29011;elections;openelec;;2021-01-04;;2\n29061;bureautique;;;;;\n")),
            (inline(SpreadsheetFile) = "application/octet-stream"))),
    responses((status = 200, description = "Every row accepted or skipped: written (or checked, for a dry run)", body = InventoryReport, example = json!({
            "siren": "242900314", "dry_run": true, "written": false, "rows": 2, "accepted": 1, "skipped": 1, "errors": 0, "lines": [
                {"row": 2, "code_insee": "29011", "category": "elections", "status": "accepted", "field": null,
                    "reason": "acceptée : openElec depuis le 4 janvier 2021", "adoption": null},
                {"row": 3, "code_insee": "29061", "category": "bureautique", "status": "skipped", "field": null,
                    "reason": "aucun produit déclaré : ligne ignorée", "adoption": null}]})),
        (status = 400, description = "`malformed-input`: an unreadable workbook, a part that expands past its declared size, a query parameter of the wrong shape", body = Problem),
        (status = 403, description = "`forbidden`: a token other than the EPCI's own or `admin`", body = Problem),
        (status = 404, description = "`not-found`: no such EPCI", body = Problem),
        (status = 413, description = "`payload-too-large`: a body over 5 MiB, an XLSX that expands past 20 MiB or holds over 20,000 rows", body = Problem),
        (status = 415, description = "`unsupported-media-type`: a body that is neither an XLSX workbook nor UTF-8 CSV", body = Problem),
        (status = 422, description = "`invalid-value`: a row has an error (nothing written; the report says which and why), or the file has no header row with the required columns or no data row",
            body = InventoryProblem, example = json!({
            "type": "/problems/invalid-value", "title": "Invalid value", "status": 422, "code": "invalid-value",
            "detail": "1 ligne(s) en erreur sur 2 : rien n'a été enregistré (voir report.lines : colonne et raison de chaque erreur)",
            "report": {"siren": "242900314", "dry_run": true, "written": false, "rows": 2, "accepted": 1, "skipped": 0, "errors": 1, "lines": [
                {"row": 2, "code_insee": "29011", "category": "elections", "status": "accepted", "field": null,
                    "reason": "acceptée : openElec depuis le 4 janvier 2021", "adoption": null},
                {"row": 3, "code_insee": "35238", "category": "elections", "status": "error", "field": "code_insee",
                    "reason": "Rennes (35238) n'est pas membre de Brest Métropole (elle est membre de Rennes Métropole)", "adoption": null}]}}))))]
pub async fn upload(w: EpciWriter, s: web::Data<Service>, req: HttpRequest, q: Query<UploadQuery>, payload: web::Payload) -> Res {
    let dry_run = q.dry_run.unwrap_or(false);
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES as u64) {
        return Err(Error::TooLarge(format!("le fichier dépasse {MAX_UPLOAD_BYTES} octets")));
    }
    let body = match payload.to_bytes_limited(MAX_UPLOAD_BYTES).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(Error::Malformed(format!("corps de la requête illisible : {e}"))),
        Err(_) => return Err(Error::TooLarge(format!("le fichier dépasse {MAX_UPLOAD_BYTES} octets"))),
    };
    let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?").to_string());
    let EpciWriter { principal, siren } = w;
    let report = blocking(move || {
        let rows = parse_inventory(&body, content_type.as_deref())?;
        s.import_inventory(&principal, &siren, &rows, dry_run)
    })
    .await?;
    if report.errors == 0 {
        return json(StatusCode::OK, &report);
    }
    let detail =
        format!("{} ligne(s) en erreur sur {} : rien n'a été enregistré (voir report.lines : colonne et raison de chaque erreur)", report.errors, report.rows);
    let body = InventoryProblem { problem: Problem::new(INVALID, detail), report };
    let mut r = json(StatusCode::UNPROCESSABLE_ENTITY, &body)?;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    Ok(r)
}
