//! The inventory spreadsheet of an EPCI, at the edge: the template handed out
//! ([`template_xlsx`], rust_xlsxwriter) and the filled file taken back ([`parse_inventory`]:
//! XLSX through calamine, or CSV), read into rows of text for the pure check of
//! [`crate::core::inventory`].
//!
//! An uploaded file is untrusted. Before calamine sees an XLSX (a zip of XML parts), every part
//! is decompressed once into a counting sink, never into memory: more than
//! [`MAX_DECOMPRESSED_BYTES`] in all, or a part that expands more than [`MAX_RATIO`] times past
//! its first MiB (a "zip bomb"), and the file is refused with 413. The sheet is then read cell
//! by cell (calamine's streaming cell reader, not its dense range, whose size a single far
//! cell would set), keeping at most [`MAX_ROWS`] rows of at most [`MAX_COLUMNS`] columns, each
//! cell cut to [`MAX_CELL_CHARS`] characters. Memory therefore stays bounded by the body limit
//! ([`MAX_UPLOAD_BYTES`]) and these caps, whatever sizes the file declares.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};

use calamine::{DataRef, Reader, Xlsx};
use chrono::NaiveDate;
use rust_xlsxwriter::{DataValidation, DataValidationErrorStyle, DataValidationRule, Formula, Workbook, XlsxError};

use crate::core::catalog::Catalog;
use crate::core::domain::Siren;
use crate::core::history::AdoptionIndex;
use crate::core::inventory::{COLUMNS, InventoryRow, REQUIRED_COLUMNS};
use crate::core::territory::{Commune, Territory, fold};
use crate::error::{Error, Result};
use crate::export::{Styles, header_row};

/// Largest accepted upload, bytes (5 MiB).
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;

/// Most bytes the parts of an XLSX may expand to, all parts together (20 MiB; a filled
/// template of 20,000 rows is about 5 MiB of XML).
pub const MAX_DECOMPRESSED_BYTES: u64 = 20 * 1024 * 1024;

/// Highest expansion ratio (decompressed / compressed size) of one part, checked once the part
/// has expanded past 1 MiB (spreadsheet XML compresses 5 to 30 times).
pub const MAX_RATIO: u64 = 250;

/// Most parts in an XLSX archive.
pub const MAX_ZIP_ENTRIES: usize = 1_000;

/// Most data rows in a file (blank rows not counted).
pub const MAX_ROWS: usize = 20_000;

/// Columns read (cells further right are ignored).
pub const MAX_COLUMNS: u32 = 32;

/// Characters kept of a cell (the longest identifier is 64).
pub const MAX_CELL_CHARS: usize = 100;

/// Media type of an XLSX workbook.
pub const XLSX_MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Name of the sheet read (else the workbook's first sheet) and written by the template.
pub const SHEET: &str = "Inventaire";

/// The start of every zip archive (an XLSX is one).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Reads an uploaded inventory into rows of text, one per non-blank line after the header row
/// (the first non-blank line, whose cells name the columns: see
/// [`crate::core::inventory::COLUMNS`]; case, accents, spaces and hyphens do not matter,
/// unknown columns are ignored).
///
/// The format is the content: a body starting with the zip signature is read as XLSX (sheet
/// `Inventaire`, else the first), anything else as CSV (UTF-8, optional BOM, `;`, `,` or tab
/// separated, guessed from the header line). `content_type` (the request's, parameters allowed)
/// must agree: XLSX, CSV, `text/plain`, `application/octet-stream`, or none.
///
/// In an XLSX, dates may be real dates, text (`2019-03-01`, `01/03/2019`) or bare day numbers
/// (Excel serials from 1980 to 2100); a `code_insee` typed as a number gets back its leading
/// zero (`1004` → `01004`).
///
/// Errors: `TooLarge` (413) for a body over [`MAX_UPLOAD_BYTES`], an archive that expands past
/// [`MAX_DECOMPRESSED_BYTES`] or [`MAX_RATIO`], more than [`MAX_ROWS`] rows;
/// `UnsupportedMediaType` (415) for another content type, an XLSX content type on a body that
/// is not a zip, a body that is neither a workbook nor UTF-8 text; `Malformed` (400) for an
/// empty body, a zip that is not a readable workbook, CSV that does not parse; `Invalid` (422)
/// for a missing required column or no data row.
pub fn parse_inventory(bytes: &[u8], content_type: Option<&str>) -> Result<Vec<InventoryRow>> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(Error::TooLarge(format!("le fichier dépasse {} octets", MAX_UPLOAD_BYTES)));
    }
    if bytes.is_empty() {
        return Err(Error::Malformed("le fichier est vide".into()));
    }
    let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let media = media.as_deref().filter(|m| !m.is_empty());
    let declared_xlsx = media == Some(XLSX_MEDIA_TYPE);
    if !matches!(media, None | Some(XLSX_MEDIA_TYPE | "text/csv" | "text/plain" | "application/octet-stream")) {
        return Err(Error::UnsupportedMediaType(format!(
            "type de contenu non pris en charge ({}) : envoyer le classeur XLSX ({XLSX_MEDIA_TYPE}) ou un fichier CSV (text/csv)",
            media.unwrap_or_default().chars().take(80).collect::<String>()
        )));
    }
    let rows = if bytes.starts_with(ZIP_MAGIC) {
        read_xlsx(bytes)?
    } else if declared_xlsx {
        return Err(Error::UnsupportedMediaType("le fichier n'est pas un classeur XLSX (ce n'est pas une archive zip)".into()));
    } else {
        read_csv(bytes)?
    };
    rows_of(rows)
}

/// A line of cells: its 1-based line number and its cells by column.
type Line = (u32, Vec<Cell>);

/// A cell's text, and whether the spreadsheet held it as a number or a date (not text).
#[derive(Clone, Debug, Default)]
struct Cell {
    text: String,
    kind: CellKind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum CellKind {
    #[default]
    Text,
    Number(f64),
    Date(NaiveDate),
}

/// The header line maps column names to positions; each later non-blank line becomes a row.
fn rows_of(lines: Vec<Line>) -> Result<Vec<InventoryRow>> {
    let mut lines = lines.into_iter().filter(|(_, cells)| cells.iter().any(|c| !c.text.is_empty()));
    let Some((_, header)) = lines.next() else { return Err(Error::Invalid("le fichier ne contient aucune ligne".into())) };
    let mut position: HashMap<&'static str, usize> = HashMap::new();
    for (i, cell) in header.iter().enumerate() {
        if let Some(col) = column_named(&cell.text)
            && position.insert(col, i).is_some()
        {
            // Two columns of the same name: which one would count?
            return Err(Error::Invalid(format!("la colonne {col} figure deux fois dans la ligne d'en-tête")));
        }
    }
    let missing: Vec<&str> = REQUIRED_COLUMNS.iter().copied().filter(|c| !position.contains_key(c)).collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "colonne(s) manquante(s) dans la ligne d'en-tête : {} (colonnes attendues : {})",
            missing.join(", "),
            COLUMNS.join(", ")
        )));
    }
    let mut rows = Vec::new();
    for (line, cells) in lines {
        let get = |col: &str| -> String {
            let Some(cell) = position.get(col).and_then(|&i| cells.get(i)) else { return String::new() };
            match (col, cell.kind) {
                ("depuis" | "fin_contrat", CellKind::Date(d)) => d.to_string(),
                // A bare day number in a date column: an Excel serial (1900 system).
                ("depuis" | "fin_contrat", CellKind::Number(n)) if (29_221.0..=73_051.0).contains(&n) && n.fract() == 0.0 => {
                    NaiveDate::from_ymd_opt(1899, 12, 30)
                        .and_then(|d| d.checked_add_days(chrono::Days::new(n as u64)))
                        .map_or(cell.text.clone(), |d| d.to_string())
                }
                ("code_insee", CellKind::Number(_)) if cell.text.len() == 4 => format!("0{}", cell.text),
                _ => cell.text.clone(),
            }
        };
        rows.push(InventoryRow {
            line,
            code_insee: get("code_insee"),
            category: get("categorie"),
            product: get("produit"),
            generation: get("generation"),
            since: get("depuis"),
            contract_end: get("fin_contrat"),
            workstations: get("postes"),
        });
    }
    if rows.is_empty() {
        return Err(Error::Invalid("le fichier ne contient aucune ligne de données après la ligne d'en-tête".into()));
    }
    Ok(rows)
}

/// The column a header cell names (case, accents, spaces and hyphens aside), if one of
/// [`COLUMNS`].
fn column_named(header: &str) -> Option<&'static str> {
    let name = fold(header.trim_start_matches('\u{feff}').trim()).replace([' ', '-'], "_");
    COLUMNS.iter().copied().find(|&c| c == name)
}

fn too_many_rows() -> Error {
    Error::TooLarge(format!("le fichier compte plus de {MAX_ROWS} lignes"))
}

/// A cell's text, trimmed and cut to [`MAX_CELL_CHARS`].
fn text_cell(s: &str) -> Cell {
    Cell { text: s.trim().chars().take(MAX_CELL_CHARS).collect(), kind: CellKind::Text }
}

/// Reads CSV text. Errors: `UnsupportedMediaType` for bytes that are not UTF-8 text,
/// `Malformed` for CSV that does not parse, `TooLarge` past [`MAX_ROWS`].
fn read_csv(bytes: &[u8]) -> Result<Vec<Line>> {
    let not_text = || Error::UnsupportedMediaType("le fichier n'est ni un classeur XLSX ni un fichier CSV en UTF-8".into());
    let text = std::str::from_utf8(bytes).map_err(|_| not_text())?;
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')) {
        return Err(not_text());
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or("");
    let delimiter = [b';', b',', b'\t'].into_iter().max_by_key(|&d| first.bytes().filter(|&b| b == d).count()).unwrap_or(b';');
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    // Line numbers from the byte offsets (the reader skips empty lines without counting them).
    let (mut seen_byte, mut seen_line) = (0usize, 1u32);
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(Error::Malformed(format!("CSV illisible : {e}"))),
        }
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if out.len() > MAX_ROWS {
            return Err(too_many_rows());
        }
        // The record's position is where the previous one ended: skip the empty lines between.
        let mut byte = record.position().map_or(seen_byte, |p| p.byte() as usize).clamp(seen_byte, text.len());
        seen_line += text.as_bytes()[seen_byte..byte].iter().filter(|&&b| b == b'\n').count() as u32;
        while let Some(&b) = text.as_bytes().get(byte).filter(|b| matches!(b, b'\r' | b'\n')) {
            seen_line += u32::from(b == b'\n');
            byte += 1;
        }
        seen_byte = byte;
        let line = seen_line;
        out.push((line, record.iter().take(MAX_COLUMNS as usize).map(text_cell).collect()));
    }
    Ok(out)
}

/// Refuses an archive whose parts expand too much, reading each one through a counting sink.
/// Errors: `Malformed` for an unreadable archive, `TooLarge` for a bomb.
fn check_archive(bytes: &[u8]) -> Result<()> {
    let bad = |e: zip::result::ZipError| Error::Malformed(format!("archive zip illisible, pas un classeur XLSX : {e}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(bad)?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(Error::TooLarge(format!("l'archive compte plus de {MAX_ZIP_ENTRIES} parties")));
    }
    if zip.index_for_name("[Content_Types].xml").is_none() || zip.index_for_name("xl/workbook.xml").is_none() {
        return Err(Error::UnsupportedMediaType("archive zip qui n'est pas un classeur XLSX (pas de xl/workbook.xml)".into()));
    }
    let bomb = || Error::TooLarge(format!("le classeur se décompresse en plus de {} Mio : refusé", MAX_DECOMPRESSED_BYTES / (1024 * 1024)));
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(bad)?;
        if part.size() > MAX_DECOMPRESSED_BYTES {
            return Err(bomb());
        }
        let compressed = part.compressed_size().max(1);
        let mut size: u64 = 0;
        loop {
            let n = part.read(&mut buf).map_err(|e| Error::Malformed(format!("partie {i} de l'archive illisible : {e}")))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            total += n as u64;
            if total > MAX_DECOMPRESSED_BYTES {
                return Err(bomb());
            }
            if size > 1024 * 1024 && size / compressed > MAX_RATIO {
                return Err(Error::TooLarge(format!("une partie du classeur se décompresse plus de {MAX_RATIO} fois : refusé (bombe de décompression ?)")));
            }
        }
    }
    Ok(())
}

/// Reads the inventory sheet of an XLSX workbook, cell by cell. Errors: those of
/// [`check_archive`], `Malformed` for a workbook calamine cannot read, `TooLarge` past
/// [`MAX_ROWS`].
fn read_xlsx(bytes: &[u8]) -> Result<Vec<Line>> {
    check_archive(bytes)?;
    let bad = |e: calamine::XlsxError| Error::Malformed(format!("classeur XLSX illisible : {e}"));
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(bad)?;
    let names = book.sheet_names();
    let sheet = names
        .iter()
        .find(|n| n.as_str() == SHEET)
        .or_else(|| names.first())
        .cloned()
        .ok_or_else(|| Error::Malformed("le classeur n'a aucune feuille".into()))?;
    let mut cells = book.worksheet_cells_reader(&sheet).map_err(bad)?;
    let mut lines: BTreeMap<u32, Vec<Cell>> = BTreeMap::new();
    // Past the header row (the first with a cell), only the columns it names are kept: a short
    // shared string repeated in every cell of a wide sheet cannot fill memory.
    let mut header: Option<u32> = None;
    let mut keep: Option<Vec<bool>> = None;
    while let Some(c) = cells.next_cell().map_err(bad)? {
        let (row, col) = c.get_position();
        if col >= MAX_COLUMNS {
            continue;
        }
        if let Some(h) = header
            && row != h
            && keep.is_none()
        {
            keep = Some(lines.get(&h).map_or_else(Vec::new, |cells| cells.iter().map(|c| column_named(&c.text).is_some()).collect()));
        }
        if keep.as_ref().is_some_and(|k| !k.get(col as usize).copied().unwrap_or(false)) {
            continue;
        }
        let cell = match c.get_value() {
            DataRef::Empty => continue,
            DataRef::String(s) => text_cell(s),
            DataRef::SharedString(s) => text_cell(s),
            DataRef::Int(i) => Cell { text: i.to_string(), kind: CellKind::Number(*i as f64) },
            DataRef::Float(f) => Cell { text: number_text(*f), kind: CellKind::Number(*f) },
            DataRef::Bool(b) => text_cell(if *b { "VRAI" } else { "FAUX" }),
            DataRef::DateTime(d) => {
                let (y, m, day, ..) = d.to_ymd_hms_milli();
                match NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(day)) {
                    Some(date) => Cell { text: date.to_string(), kind: CellKind::Date(date) },
                    None => text_cell(&d.as_f64().to_string()),
                }
            }
            DataRef::DateTimeIso(s) => text_cell(s.get(..10).unwrap_or(s)),
            DataRef::DurationIso(s) => text_cell(s),
            DataRef::Error(e) => text_cell(&format!("#{e:?}")),
        };
        if cell.text.is_empty() {
            continue;
        }
        if !lines.contains_key(&row) && lines.len() > MAX_ROWS {
            return Err(too_many_rows());
        }
        header.get_or_insert(row);
        let line = lines.entry(row).or_default();
        if line.len() <= col as usize {
            line.resize(col as usize + 1, Cell::default());
        }
        line[col as usize] = cell;
    }
    Ok(lines.into_iter().map(|(row, cells)| (row + 1, cells)).collect())
}

/// A number as a person wrote it: `12` rather than `12.0`.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { f.to_string() }
}

/// The name of the list of a category's products or of a product's generations in the template
/// (`p_etat_civil`, `g_windows`): a defined name, so letters, digits and `_` only.
fn list_name(prefix: &str, id: &str) -> String {
    format!("{prefix}_{}", id.replace('-', "_"))
}

/// The inventory template of EPCI `siren`: an XLSX workbook with
/// - sheet `Inventaire`: a header row ([`COLUMNS`]: `code_insee`, `commune`, `categorie`,
///   `libelle_categorie`, `produit`, `generation`, `depuis`, `fin_contrat`, `postes`), then one
///   row per member commune (seeded members, by name) × catalogue category (catalogue order),
///   pre-filled with each adoption in service on `today` (one row each; one empty row where
///   nothing is recorded). `code_insee`, `generation` and the dates are text cells (so that
///   `01004` and `24.10` keep their form); drop-down lists offer the products of the row's
///   category and the generations of the row's product (warning only: a release such as
///   `11-24h2-w` may be typed); `postes` accepts a whole number from 0 to 100,000;
/// - sheet `Notice`: how to fill it, in French;
/// - hidden sheet `Listes`: the lists (a column per category, then per product with
///   generations, each a defined name: `p_{category}`, `g_{product}`, `-` written `_`).
///
/// Errors: `NotFound` for an unknown EPCI, `Internal` if the workbook cannot be written.
pub fn template_xlsx(territory: &Territory, catalog: &Catalog, index: &AdoptionIndex, siren: &Siren, today: NaiveDate) -> Result<Vec<u8>> {
    let epci = territory.epci(siren)?;
    build_template(territory, catalog, index, siren, &epci.name, today).map_err(|e| Error::internal("writing the inventory template", e))
}

/// The seeded members of EPCI `siren`, by name (accents and case aside), then code: the order of
/// the inventory template and of the inventory export.
pub fn members_by_name<'t>(territory: &'t Territory, siren: &Siren) -> Vec<&'t Commune> {
    let mut members: Vec<&Commune> = territory.members(siren).iter().map(|&m| territory.commune(m)).collect();
    members.sort_by_key(|c| (fold(&c.name), c.code));
    members
}

fn build_template(territory: &Territory, catalog: &Catalog, index: &AdoptionIndex, siren: &Siren, name: &str, today: NaiveDate) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let st = Styles::new();
    let (text, bold) = (&st.text, &st.header);

    let sheet = book.add_worksheet();
    sheet.set_name(SHEET)?;
    sheet.set_active(true);
    header_row(sheet, &COLUMNS, &[10.0, 24.0, 20.0, 30.0, 24.0, 14.0, 12.0, 12.0, 8.0], &st)?;
    for col in [0u16, 5, 6, 7] {
        sheet.set_column_format(col, text)?;
    }
    let members = members_by_name(territory, siren);
    let mut row: u32 = 1;
    for c in &members {
        for cat in &catalog.categories {
            let running: Vec<_> = index.active(&c.code, &cat.slug, today).collect();
            let mut write_row = |a: Option<&crate::core::history::Adoption>| -> Result<(), XlsxError> {
                sheet.write_string_with_format(row, 0, c.code.as_str(), text)?;
                sheet.write_string(row, 1, &*c.name)?;
                sheet.write_string(row, 2, cat.slug.as_str())?;
                sheet.write_string(row, 3, &cat.label)?;
                if let Some(a) = a {
                    sheet.write_string(row, 4, a.product.as_str())?;
                    if let Some(g) = &a.generation {
                        sheet.write_string_with_format(row, 5, g.as_str(), text)?;
                    }
                    sheet.write_string_with_format(row, 6, a.since.to_string(), text)?;
                    if let Some(d) = a.contract_end {
                        sheet.write_string_with_format(row, 7, d.to_string(), text)?;
                    }
                    if let Some(w) = a.workstations {
                        sheet.write_number(row, 8, f64::from(w))?;
                    }
                }
                row += 1;
                Ok(())
            };
            if running.is_empty() {
                write_row(None)?;
            }
            for a in running {
                write_row(Some(a))?;
            }
        }
    }
    // Room for rows added by hand (a second product in a category).
    let last = row + 500;
    let products = DataValidation::new()
        .allow_list_formula(Formula::new("=INDIRECT(\"p_\"&SUBSTITUTE($C2,\"-\",\"_\"))"))
        .set_error_style(DataValidationErrorStyle::Warning)
        .set_input_title("Produit")?
        .set_input_message("Identifiant du produit au catalogue, pour la catégorie de la ligne. Vide : rien à déclarer.")?;
    sheet.add_data_validation(1, 4, last, 4, &products)?;
    let generations = DataValidation::new()
        .allow_list_formula(Formula::new("=INDIRECT(\"g_\"&SUBSTITUTE($E2,\"-\",\"_\"))"))
        .set_error_style(DataValidationErrorStyle::Warning)
        .set_input_title("Génération")?
        .set_input_message("Génération du produit (ou l'une de ses versions). Obligatoire quand le catalogue en liste.")?;
    sheet.add_data_validation(1, 5, last, 5, &generations)?;
    let date = DataValidation::new().set_input_title("Date")?.set_input_message("AAAA-MM-JJ (par exemple 2019-03-01)")?;
    sheet.add_data_validation(1, 6, last, 7, &date)?;
    let seats = DataValidation::new()
        .allow_whole_number(DataValidationRule::Between(0, 100_000))
        .set_input_title("Postes")?
        .set_input_message("Nombre de postes concernés, de 0 à 100 000 (facultatif).")?;
    sheet.add_data_validation(1, 8, last, 8, &seats)?;
    sheet.autofilter(0, 0, row.saturating_sub(1).max(1), (COLUMNS.len() - 1) as u16)?;

    let notice = book.add_worksheet();
    notice.set_name("Notice")?;
    notice.set_column_width(0, 110.0)?;
    let lines = [
        format!("Inventaire des logiciels et équipements — {name} (SIREN {siren}), modèle du {today}"),
        String::new(),
        "Une ligne par commune membre et par catégorie ; ce qui est déjà enregistré est pré-rempli (renvoyé tel quel, rien n'est écrit en double).".into(),
        "produit : identifiant du catalogue (liste déroulante selon la catégorie). Laisser vide : rien à déclarer pour cette catégorie.".into(),
        "generation : génération ou version du produit (liste déroulante) ; obligatoire quand le catalogue en liste pour ce produit.".into(),
        "depuis : date de mise en service, AAAA-MM-JJ (pas dans le futur) ; fin_contrat : fin du contrat en cours (facultatif) ; postes : 0 à 100 000 (facultatif).".into(),
        "Deux produits dans une même catégorie : copier la ligne. Ne pas modifier code_insee ni categorie.".into(),
        "Renvoyer le fichier (XLSX, ou CSV en UTF-8 séparé par des points-virgules) : chaque ligne est vérifiée ; si une seule est en erreur, rien n'est enregistré et le rapport dit, ligne par ligne, la colonne et la raison.".into(),
    ];
    for (i, l) in lines.iter().enumerate() {
        if i == 0 {
            notice.write_string_with_format(i as u32, 0, l, bold)?;
        } else {
            notice.write_string(i as u32, 0, l)?;
        }
    }
    // The lists, on a hidden last sheet: a column per category (its products), then a column
    // per product with known generations (newest first), each a defined name.
    let lists = book.add_worksheet();
    lists.set_name("Listes")?;
    let mut names: Vec<(String, String)> = Vec::new();
    let mut col: u16 = 0;
    for cat in &catalog.categories {
        let products: Vec<&str> = catalog.products_in(&cat.slug).map(|p| p.id.as_str()).collect();
        if products.is_empty() {
            continue;
        }
        lists.write_string(0, col, cat.slug.as_str())?;
        for (i, p) in products.iter().enumerate() {
            lists.write_string_with_format(i as u32 + 1, col, *p, text)?;
        }
        names.push((list_name("p", cat.slug.as_str()), range("Listes", col, products.len() as u32)));
        col += 1;
    }
    for p in catalog.products.iter().filter(|p| !p.generations.is_empty()) {
        lists.write_string(0, col, p.id.as_str())?;
        for (i, g) in p.generations.iter().rev().enumerate() {
            lists.write_string_with_format(i as u32 + 1, col, g.id.as_str(), text)?;
        }
        names.push((list_name("g", p.id.as_str()), range("Listes", col, p.generations.len() as u32)));
        col += 1;
    }
    lists.set_hidden(true);
    for (n, r) in &names {
        book.define_name(n, r)?;
    }
    book.save_to_buffer()
}

/// `=Sheet!$X$2:$X$n+1`: the `n` cells under the header of column `col`.
fn range(sheet: &str, col: u16, n: u32) -> String {
    let c = rust_xlsxwriter::column_number_to_name(col);
    format!("={sheet}!${c}$2:${c}${}", n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_semicolons_and_french_headers() {
        let csv = "\u{feff}Code INSEE;Catégorie;Produit;Génération;Depuis;Postes\n35238;elections;openelec;;01/03/2019;12\n;;;;;\n35051;site-web;;;;\n";
        let rows = parse_inventory(csv.as_bytes(), Some("text/csv; charset=utf-8")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(
            (rows[0].code_insee.as_str(), rows[0].product.as_str(), rows[0].since.as_str(), rows[0].workstations.as_str()),
            ("35238", "openelec", "01/03/2019", "12")
        );
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].category, "site-web");
        // Empty lines count in the line numbers, as a spreadsheet numbers them (found by the
        // bad-input session: the row after 2 empty lines was reported as line 2).
        let rows = parse_inventory(
            b"code_insee;categorie;produit;depuis\n\n\n35238;elections;nope;2019-03-01\r\n\"29019\";\"elec\ntions\";x;y\n35051;elections;;\n",
            None,
        )
        .unwrap();
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [4, 5, 7]);
        // A column named twice is refused rather than read from one of them.
        let e = parse_inventory(b"code_insee;categorie;produit;depuis;code_insee\n29195;elections;;;29019\n", None).unwrap_err();
        assert_eq!((e.status(), e.to_string().contains("la colonne code_insee figure deux fois")), (422, true), "{e}");
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_inventory(b"", None).unwrap_err().status(), 400);
        assert_eq!(parse_inventory(b"\x89PNG\r\n\x1a\n\0\0", Some("image/png")).unwrap_err().status(), 415);
        assert_eq!(parse_inventory(b"\x89PNG\r\n\x1a\n\0\0", None).unwrap_err().status(), 415);
        assert_eq!(parse_inventory(b"code_insee;categorie", Some(XLSX_MEDIA_TYPE)).unwrap_err().status(), 415);
        assert_eq!(parse_inventory(b"a;b\n1;2\n", Some("text/csv")).unwrap_err().status(), 422);
        assert_eq!(parse_inventory(b"PK\x03\x04garbage", None).unwrap_err().status(), 400);
        let many = format!("code_insee;categorie;produit;depuis\n{}", "35238;elections;;\n".repeat(MAX_ROWS + 1));
        assert_eq!(parse_inventory(many.as_bytes(), None).unwrap_err().status(), 413);
    }

    /// A part whose declared size lies (1 KiB declared, 64 MiB inside) is not believed: it is
    /// read only up to what it declares, then refused.
    #[test]
    fn a_part_lying_about_its_size_is_measured_not_trusted() {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflate = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [("[Content_Types].xml", &b"<Types/>"[..]), ("xl/workbook.xml", b"<workbook/>")] {
            zip.start_file(name, deflate).unwrap();
            zip.write_all(body).unwrap();
        }
        zip.start_file("xl/worksheets/sheet1.xml", deflate).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..64 {
            zip.write_all(&chunk).unwrap();
        }
        let mut bytes = zip.finish().unwrap().into_inner();
        let size = (64u32 << 20).to_le_bytes();
        // Local header (size at offset 22) and central directory entry (offset 24) of the sheet.
        for (signature, offset) in [(&b"PK\x03\x04"[..], 22), (b"PK\x01\x02", 24)] {
            let at = (0..bytes.len() - 4).filter(|&i| &bytes[i..i + 4] == signature).nth(2).unwrap();
            assert_eq!(bytes[at + offset..at + offset + 4], size);
            bytes[at + offset..at + offset + 4].copy_from_slice(&1024u32.to_le_bytes());
        }
        let e = parse_inventory(&bytes, Some(XLSX_MEDIA_TYPE)).unwrap_err();
        // The zip reader stops at the declared size (and the counting sink would stop at the cap).
        assert_eq!(e.status(), 400, "{e}");
        assert!(e.to_string().contains("larger than its declared uncompressed size"), "{e}");
    }
}
