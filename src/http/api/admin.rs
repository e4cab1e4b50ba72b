//! Operator's routes (admin): `POST /api/v1/admin/backups`, a backup of the store streamed as
//! the answer.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Bytes};
use utoipa::OpenApi;

use crate::error::Error;
use crate::http::extract::{AdminToken, NoParams, Query};
use crate::http::problem::Problem;
use crate::http::respond::{Res, not_allowed, with_header};
use crate::service::Service;

/// Bytes of compressed backup per chunk sent to the client.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks waiting between the backup's thread and the client: memory stays bounded (at most
/// this many chunks) whatever the store's size; a slow client slows the backup down.
const CHANNEL_CHUNKS: usize = 8;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/admin/backups").route(web::post().to(create_backup)).default_service(web::to(|| not_allowed("POST"))));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(create_backup))]
pub struct Doc;

/// A backup file's bytes (gzip), for the OpenAPI document.
pub struct BackupFile;

impl utoipa::PartialSchema for BackupFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(utoipa::openapi::schema::KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for BackupFile {}

/// The writer the backup thread writes into: whole chunks of [`CHUNK_BYTES`] sent down a
/// bounded channel (blocking while it is full). Fails with `BrokenPipe` once the client has
/// gone (the response, and so the receiver, was dropped), which stops the backup.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, Error>>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Backs up the store (admin).
///
/// `POST /api/v1/admin/backups`: a backup of every record, streamed as the answer while the
/// service keeps serving writes. The file (`voisinage-YYYYMMDD-HHMMSS.jsonl.gz`, UTC) is gzip of
/// JSON Lines: a header (format `voisinage-backup`, version 1, creation time, catalogue version,
/// the high-water ids, the demo description), one line per record (adoptions, feedback, tokens
/// as the SHA-256 of their secret, never the secret, price estimates, idempotency keys), then a
/// footer with the counts per kind and the SHA-256 of the content. It holds every record
/// inserted before the request arrived and none inserted after; a change made meanwhile to an
/// earlier record (an adoption ended, a token revoked) may be in it. If the stream breaks, the
/// file has no footer and `voisinage restore` refuses it. It holds token hashes and free-text
/// comments: keep it private.
#[utoipa::path(post, path = "/api/v1/admin/backups", tag = "admin", operation_id = "create_backup", security(("bearer" = [])),
    responses((status = 200, description = "The backup file (gzip of JSON Lines: header, records, footer with counts and SHA-256), sent as an attachment `voisinage-YYYYMMDD-HHMMSS.jsonl.gz`",
            body = inline(BackupFile), content_type = "application/gzip",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"voisinage-YYYYMMDD-HHMMSS.jsonl.gz\"`"))),
        (status = 400, description = "`malformed-input`: a query parameter (this operation takes none)", body = Problem),
        (status = 403, description = "`forbidden`: not an `admin` token", body = Problem)))]
pub async fn create_backup(admin: AdminToken, s: web::Data<Service>, _no_query: Query<NoParams>) -> Res {
    let created = chrono::Utc::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, Error>>(CHANNEL_CHUNKS);
    let service = s.into_inner();
    actix_web::rt::task::spawn_blocking(move || {
        let mut out = ChunkWriter { buf: Vec::with_capacity(CHUNK_BYTES), tx: tx.clone() };
        let result = service.backup(&admin.0, created, &mut out).and_then(|_| std::io::Write::flush(&mut out).map_err(Error::Io));
        if let Err(e) = result {
            // Before the first byte, the answer is this error; after, the stream breaks off
            // (the file has no footer). A client that went away is no fault of the service.
            if matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe) {
                tracing::warn!("backup stopped: the client went away");
            } else {
                tracing::error!(error = %e.chain(), "backup failed");
            }
            let _ = tx.blocking_send(Err(e));
        }
    });
    // The first chunk, or the error that came before any byte (then a problem answer).
    let first = match rx.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(e)) => return Err(e),
        None => return Err(Error::Internal { context: "the backup stopped without a word".into(), source: None }),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter([Ok(first)]), rest);
    let mut r = HttpResponse::Ok().content_type("application/gzip").streaming(stream);
    // Already compressed: a compression middleware leaves an answer with a Content-Encoding
    // alone.
    r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("identity"));
    with_header(r, header::CONTENT_DISPOSITION, &format!("attachment; filename=\"{}\"", crate::backup::file_name(created)))
}
