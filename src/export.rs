//! The spreadsheets handed to EPCI staff, at the edge (csv, rust_xlsxwriter; no I/O of its own):
//! the groupements de commandes of an EPCI as CSV, for scripts ([`pooled_purchases_csv`]), and
//! as an XLSX workbook, for people ([`pooled_purchases_xlsx`]), both from one list of typed
//! rows ([`pooled_rows`]); and what the EPCI's members run, as an XLSX workbook in the columns
//! of the inventory template, so that it can be sent back ([`inventory_xlsx`]).
//!
//! Why XLSX beside the CSV: French LibreOffice and Excel read the CSV cell `01001` as the number
//! 1001 and guess at dates. In the workbooks every cell has its type: codes (INSEE, SIREN,
//! generations) are text cells, dates are date cells shown `dd/mm/yyyy`, counts are numbers and
//! amounts numbers in euros (`# ##0,00 €` in a French spreadsheet). The header row is frozen
//! and filtered, every column has a width, and a sheet `Source` names the EPCI, the date, where
//! the data come from and whether they are simulated (a `simule` column says it per row, as in
//! the CSV); the printed pages carry the EPCI's name and repeat the header row.
//!
//! The cell formats and the header row are shared with the inventory template
//! ([`crate::inventory::template_xlsx`]): [`Styles`], [`header_row`].

use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use crate::core::catalog::Catalog;
use crate::core::domain::Siren;
use crate::core::fr;
use crate::core::history::AdoptionIndex;
use crate::core::inventory::COLUMNS;
use crate::core::pooling::{Concerned, Member, Need, PooledPurchases};
use crate::core::prices::EurHt;
use crate::core::territory::Territory;
use crate::error::{Error, Result};
use crate::inventory::{SHEET, members_by_name};

/// Number format of the date cells (a French spreadsheet shows `29/11/2026`).
pub const DATE_FORMAT: &str = "dd/mm/yyyy";

/// Number format of the amounts, euros with two decimals (`50 000,50 €` in a French
/// spreadsheet; the file stores the US notation, each spreadsheet shows its locale's).
pub const EURO_FORMAT: &str = "#,##0.00\\ \"€\"";

/// Name of the sheet that says what the workbook holds, for whom, when and from where.
pub const SOURCE_SHEET: &str = "Source";

/// Name of the data sheet of the pooled-purchases workbook.
pub const POOLED_SHEET: &str = "Groupements";

/// The cell formats of the workbooks: `header` (bold), `text` (number format `@`: what is
/// typed in stays text), `date` ([`DATE_FORMAT`]), `euros` ([`EURO_FORMAT`]), `count` (whole
/// numbers with digit groups), `decimal` (one decimal).
pub struct Styles {
    /// The header row and the titles: bold.
    pub header: Format,
    /// Codes and identifiers: text format (`@`).
    pub text: Format,
    /// Dates: [`DATE_FORMAT`].
    pub date: Format,
    /// Amounts in euros: [`EURO_FORMAT`].
    pub euros: Format,
    /// Counts (population, workstations): `#,##0`.
    pub count: Format,
    /// Means (a rating out of 5): `0.0`.
    pub decimal: Format,
}

impl Styles {
    /// The formats above.
    pub fn new() -> Styles {
        Styles {
            header: Format::new().set_bold(),
            text: Format::new().set_num_format("@"),
            date: Format::new().set_num_format(DATE_FORMAT),
            euros: Format::new().set_num_format(EURO_FORMAT),
            count: Format::new().set_num_format("#,##0"),
            decimal: Format::new().set_num_format("0.0"),
        }
    }
}

impl Default for Styles {
    fn default() -> Self {
        Styles::new()
    }
}

/// Writes `columns` as the header row (row 1, bold), sets each column's width (`widths[i]`, in
/// characters of the default font), freezes the header row (it stays in view when scrolling)
/// and repeats it on every printed page.
pub fn header_row(sheet: &mut Worksheet, columns: &[&str], widths: &[f64], st: &Styles) -> Result<(), XlsxError> {
    for (col, title) in columns.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, *title, &st.header)?;
    }
    for (col, width) in widths.iter().enumerate() {
        sheet.set_column_width(col as u16, *width)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.set_repeat_rows(0, 0)?;
    Ok(())
}

/// A typed cell of an exported row: how it is written to the workbook (its type and format)
/// and to the CSV (its text).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Nothing.
    Empty,
    /// Text.
    Text(String),
    /// A code or identifier (INSEE code, SIREN, generation `24.10`): a text cell in the
    /// workbook, never a number.
    Code(String),
    /// A date: a date cell ([`DATE_FORMAT`]); `YYYY-MM-DD` in the CSV.
    Date(NaiveDate),
    /// A whole number (population, workstations, number of reports).
    Count(u64),
    /// An amount in € HT: a number in euros ([`EURO_FORMAT`]); `52000,50` in the CSV.
    Euros(EurHt),
    /// A mean, shown with one decimal in the workbook; `3.5` in the CSV.
    Decimal(f64),
}

impl Cell {
    /// A date cell, or an empty one.
    pub fn date(d: Option<NaiveDate>) -> Cell {
        d.map_or(Cell::Empty, Cell::Date)
    }

    /// An amount cell, or an empty one.
    pub fn euros(a: Option<EurHt>) -> Cell {
        a.map_or(Cell::Empty, Cell::Euros)
    }

    /// `oui` or `non`, as the CSV's `simule` column.
    pub fn yes_no(b: bool) -> Cell {
        Cell::Text(if b { "oui" } else { "non" }.into())
    }

    /// The cell's text in the CSV: dates `YYYY-MM-DD`, amounts with a decimal comma and no
    /// digit groups (`52000`, `52000,50`: what a French spreadsheet reads as a number).
    pub fn csv_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) | Cell::Code(s) => s.clone(),
            Cell::Date(d) => d.to_string(),
            Cell::Count(n) => n.to_string(),
            Cell::Euros(a) => match a.cents() % 100 {
                0 => a.whole_euros().to_string(),
                c => format!("{},{c:02}", a.whole_euros()),
            },
            Cell::Decimal(x) => x.to_string(),
        }
    }

    /// Writes the cell at (`row`, `col`) with its type and format. Text is always written as a
    /// string, never as a formula (`-1+1` stays text).
    pub fn write(&self, sheet: &mut Worksheet, row: u32, col: u16, st: &Styles) -> Result<(), XlsxError> {
        match self {
            Cell::Empty => {}
            Cell::Text(s) => {
                sheet.write_string(row, col, s)?;
            }
            Cell::Code(s) => {
                sheet.write_string_with_format(row, col, s, &st.text)?;
            }
            Cell::Date(d) => {
                sheet.write_date_with_format(row, col, excel_date(*d)?, &st.date)?;
            }
            Cell::Count(n) => {
                sheet.write_number_with_format(row, col, *n as f64, &st.count)?;
            }
            Cell::Euros(a) => {
                sheet.write_number_with_format(row, col, a.euros(), &st.euros)?;
            }
            Cell::Decimal(x) => {
                sheet.write_number_with_format(row, col, *x, &st.decimal)?;
            }
        }
        Ok(())
    }
}

/// A date as the workbook stores it. Errors: a date outside 1900 to 9999.
fn excel_date(d: NaiveDate) -> Result<ExcelDateTime, XlsxError> {
    let year = u16::try_from(d.year()).map_err(|_| XlsxError::DateTimeRangeError(format!("year {}", d.year())))?;
    ExcelDateTime::from_ymd(year, d.month() as u8, d.day() as u8)
}

/// Columns of the pooled-purchases exports (CSV header and the workbook's header row), in
/// order.
pub const POOLED_COLUMNS: [&str; 20] = [
    "categorie",
    "libelle_categorie",
    "code_insee",
    "commune",
    "population",
    "besoin",
    "motif",
    "echeance",
    "option_produit",
    "option_generation",
    "coordonnateur",
    "procedure",
    "simule",
    "ligne",
    "statut_option",
    "montant_estime_eur_ht",
    "prix_unitaire_eur_ht",
    "base_estimation",
    "estimation_par",
    "estimation_du",
];

/// Widths of [`POOLED_COLUMNS`] in the workbook, characters (the header's length and its
/// filter button, or the usual content, whichever is wider).
const POOLED_WIDTHS: [f64; 20] = [20.0, 30.0, 12.0, 26.0, 12.0, 22.0, 70.0, 12.0, 26.0, 20.0, 26.0, 40.0, 9.0, 17.0, 22.0, 24.0, 23.0, 18.0, 28.0, 16.0];

/// What each column of the pooled-purchases workbook holds, in French (its `Source` sheet).
const POOLED_NOTES: [&str; 20] = [
    "identifiant de la catégorie du catalogue",
    "nom de la catégorie",
    "code INSEE de la commune (texte)",
    "nom de la commune",
    "population municipale",
    "aucun_produit, fin_de_support, fin_de_support_proche, reglementation, fin_de_contrat, peu_fiable ; deja_sur_option pour une commune déjà sur l'option",
    "le besoin en une phrase",
    "date qui fixe le calendrier (fin de support, de contrat, obligation), s'il y en a une",
    "produit de l'option proposée (éprouvée chez les membres et leurs voisines)",
    "génération de l'option proposée",
    "coordonnateur suggéré du groupement",
    "procédure de marché qu'exige le montant groupé, à la date de la situation",
    "oui : données simulées (démonstration), pas de vraies adoptions ni de vrais avis",
    "groupement (au moins deux communes), besoin_seul (une seule commune), hors_groupement (reste sur son produit)",
    "maturité de l'option : proven (éprouvée), newest_not_yet_proven, not_yet_proven, rated_poorly",
    "montant groupé estimé, € HT sur la durée du contrat (vide sans estimation complète de l'EPCI)",
    "prix estimé par l'EPCI pour une commune ou un poste, € HT",
    "par commune ou par poste",
    "qui a fait l'estimation",
    "date de l'estimation",
];

/// The `besoin` column: the kind of need, in French snake case.
fn need_kind(n: &Need) -> &'static str {
    match n {
        Need::NoProduct => "aucun_produit",
        Need::EndOfSupport { .. } => "fin_de_support",
        Need::EndsSoon { .. } => "fin_de_support_proche",
        Need::Regulation { .. } => "reglementation",
        Need::ContractEnds { .. } => "fin_de_contrat",
        Need::PoorRating { .. } => "peu_fiable",
    }
}

/// The member, need kind, reason and deadline of a member with a need.
fn need_row(m: &Concerned) -> (&Member, &'static str, String, Option<NaiveDate>) {
    (&m.member, need_kind(&m.need), m.reason.clone(), m.need.deadline())
}

/// The rows of the pooled-purchases exports, in [`POOLED_COLUMNS`]: one per member per
/// groupement (the members concerned, then those already on the option: `ligne` =
/// `groupement`), then the needs of one commune alone (`besoin_seul`), then the members whose
/// path stays in their product (`hors_groupement`). `population` is a count, `echeance` and
/// `estimation_du` dates, `montant_estime_eur_ht` (the pooled amount, empty without a complete
/// estimate) and `prix_unitaire_eur_ht` (the EPCI's price per commune or seat) amounts in €
/// HT; `simule` is `oui` when the store holds the simulated demo history (`simulated`).
pub fn pooled_rows(pp: &PooledPurchases, simulated: bool) -> Vec<[Cell; 20]> {
    let text = |s: &str| if s.is_empty() { Cell::Empty } else { Cell::Text(s.to_string()) };
    let mut out = Vec::new();
    let lists = pp.groupements.iter().map(|g| ("groupement", g)).chain(pp.single_needs.iter().map(|g| ("besoin_seul", g)));
    for (line, g) in lists {
        let (op, og) = g
            .option
            .as_ref()
            .map_or((Cell::Empty, Cell::Empty), |o| (text(&o.product_name), o.generation_label.as_deref().map_or(Cell::Empty, |l| Cell::Code(l.to_string()))));
        let status =
            g.option.as_ref().and_then(|o| serde_json::to_value(o.status).ok().and_then(|v| v.as_str().map(str::to_string))).map_or(Cell::Empty, Cell::Text);
        let procedure = g.volume.procedure.as_ref().map_or(Cell::Empty, |p| text(&p.procedure));
        let e = g.volume.estimate.as_ref();
        let rows = g
            .concerned
            .iter()
            .map(|m| (line, need_row(m)))
            .chain(g.already_on.iter().map(|m| (line, (m, "deja_sur_option", "Déjà sur l'option proposée.".to_string(), None))))
            .chain(g.own_path.iter().map(|m| ("hors_groupement", need_row(m))));
        for (line, (m, kind, reason, deadline)) in rows {
            out.push([
                Cell::Text(g.category.to_string()),
                text(&g.category_label),
                Cell::Code(m.code.to_string()),
                text(&m.name),
                Cell::Count(u64::from(m.population)),
                Cell::Text(kind.into()),
                text(&reason),
                Cell::date(deadline),
                op.clone(),
                og.clone(),
                text(&g.coordinator),
                procedure.clone(),
                Cell::yes_no(simulated),
                Cell::Text(line.into()),
                status.clone(),
                Cell::euros(g.volume.estimated_amount_eur_ht),
                Cell::euros(e.map(|e| e.amount_eur_ht)),
                e.map_or(Cell::Empty, |e| Cell::Text(e.basis.fr().into())),
                e.map_or(Cell::Empty, |e| text(&e.by.name)),
                Cell::date(e.map(|e| e.made_on)),
            ]);
        }
    }
    out
}

/// A CSV cell that a spreadsheet will not read as a formula: text starting with `=`, `+`, `-`,
/// `@`, tab or carriage return gets a leading `'` (OWASP "CSV injection"). Numbers are left as
/// they are.
fn inert(cell: &str) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err();
    if risky { format!("'{cell}") } else { cell.to_string() }
}

/// The pooled purchases as CSV, for scripts: UTF-8 with BOM, `;` separator, the header
/// [`POOLED_COLUMNS`] then [`pooled_rows`] (dates `YYYY-MM-DD`, amounts with a decimal comma),
/// every cell made inert. Errors: `Internal` if the CSV cannot be written.
pub fn pooled_purchases_csv(pp: &PooledPurchases, simulated: bool) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().delimiter(b';').from_writer(Vec::from("\u{feff}".as_bytes()));
    let csv_err = |e: csv::Error| Error::internal("writing the CSV export", e);
    w.write_record(POOLED_COLUMNS).map_err(csv_err)?;
    for row in pooled_rows(pp, simulated) {
        w.write_record(row.iter().map(|c| inert(&c.csv_text()))).map_err(csv_err)?;
    }
    w.into_inner().map_err(|e| Error::internal("writing the CSV export", e.into_error()))
}

/// `&` doubled, as a print header needs, and the text cut to 80 characters (a header holds at
/// most 255).
fn print_header_text(s: &str) -> String {
    s.chars().take(80).collect::<String>().replace('&', "&&")
}

/// Fills the `Source` sheet: a bold title, then label / value rows (values typed: a SIREN as
/// text, a date as a date cell), then, after an empty row, the columns and what they hold.
fn source_sheet(book: &mut Workbook, title: &str, facts: &[(&str, Cell)], columns: &[(&str, &str)], st: &Styles) -> Result<(), XlsxError> {
    let sheet = book.add_worksheet();
    sheet.set_name(SOURCE_SHEET)?;
    sheet.set_column_width(0, 24.0)?;
    sheet.set_column_width(1, 110.0)?;
    sheet.write_string_with_format(0, 0, title, &st.header)?;
    let mut row = 2;
    for (label, value) in facts {
        sheet.write_string_with_format(row, 0, *label, &st.header)?;
        value.write(sheet, row, 1, st)?;
        row += 1;
    }
    row += 1;
    sheet.write_string_with_format(row, 0, "Colonne", &st.header)?;
    sheet.write_string_with_format(row, 1, "Contenu", &st.header)?;
    for (name, note) in columns {
        row += 1;
        sheet.write_string(row, 0, *name)?;
        sheet.write_string(row, 1, *note)?;
    }
    Ok(())
}

/// What the data are: simulated (the demo history) or recorded.
fn data_fact(simulated: bool) -> Cell {
    Cell::Text(if simulated {
        "DONNÉES SIMULÉES : historique généré pour la démonstration, pas de vraies adoptions ni de vrais avis sur les produits.".into()
    } else {
        "Adoptions et avis enregistrés par les communes et l'EPCI dans voisinage.".into()
    })
}

/// The pooled purchases as an XLSX workbook, for people:
/// - sheet `Groupements`: the header [`POOLED_COLUMNS`] (frozen, with a filter), then
///   [`pooled_rows`] with typed cells (`code_insee` and `option_generation` text,
///   `population` a number, `echeance` and `estimation_du` dates `dd/mm/yyyy`, the two amounts
///   numbers in euros);
/// - sheet `Source`: the EPCI's name and SIREN, the date of the situation (`as_of`), the
///   horizon in months, the source (the API route), whether the data are simulated, and what
///   each column holds.
///
/// Errors: `Internal` if the workbook cannot be written.
pub fn pooled_purchases_xlsx(pp: &PooledPurchases, simulated: bool) -> Result<Vec<u8>> {
    build_pooled(pp, simulated).map_err(|e| Error::internal("writing the XLSX export of the pooled purchases", e))
}

fn build_pooled(pp: &PooledPurchases, simulated: bool) -> Result<Vec<u8>, XlsxError> {
    let st = Styles::new();
    let mut book = Workbook::new();
    let sim = if simulated { " (données simulées)" } else { "" };
    let title = format!("Groupements de commandes proposés — {} (SIREN {}){sim}", pp.name, pp.epci);
    book.set_properties(
        &DocProperties::new()
            .set_title(&title)
            .set_subject(format!("Situation au {}, horizon de {} mois", fr::date(pp.as_of), pp.horizon_months))
            .set_author("voisinage")
            .set_company(&pp.name),
    );
    let rows = pooled_rows(pp, simulated);
    let sheet = book.add_worksheet();
    sheet.set_name(POOLED_SHEET)?;
    sheet.set_active(true);
    sheet.set_landscape();
    sheet.set_header(format!("&L{}&RGroupements de commandes au {}{sim}", print_header_text(&pp.name), fr::date(pp.as_of)));
    header_row(sheet, &POOLED_COLUMNS, &POOLED_WIDTHS, &st)?;
    for (i, row) in rows.iter().enumerate() {
        for (col, cell) in row.iter().enumerate() {
            cell.write(sheet, i as u32 + 1, col as u16, &st)?;
        }
    }
    sheet.autofilter(0, 0, rows.len().max(1) as u32, (POOLED_COLUMNS.len() - 1) as u16)?;
    let facts = [
        ("EPCI", Cell::Text(pp.name.clone())),
        ("SIREN", Cell::Code(pp.epci.to_string())),
        ("Situation au", Cell::Date(pp.as_of)),
        ("Horizon (mois)", Cell::Count(u64::from(pp.horizon_months))),
        ("Lignes", Cell::Count(rows.len() as u64)),
        ("Source", Cell::Text(format!("voisinage, GET /api/v1/epcis/{}/pooled-purchases (les mêmes lignes que le CSV)", pp.epci))),
        ("Données", data_fact(simulated)),
    ];
    let columns: Vec<(&str, &str)> = POOLED_COLUMNS.iter().copied().zip(POOLED_NOTES).collect();
    source_sheet(&mut book, &title, &facts, &columns, &st)?;
    book.save_to_buffer()
}

/// Columns of the inventory export after the template's [`COLUMNS`] (the upload ignores
/// them): the product's name and generation, the generation's end of support, the number of
/// reports, their mean reliability, and whether the record is simulated.
pub const INVENTORY_EXTRA_COLUMNS: [&str; 5] = ["libelle_produit", "fin_support", "avis", "fiabilite_moyenne", "simule"];

/// Widths of the inventory export's columns, characters.
const INVENTORY_WIDTHS: [f64; 14] = [12.0, 26.0, 20.0, 30.0, 24.0, 14.0, 12.0, 13.0, 9.0, 34.0, 13.0, 8.0, 19.0, 9.0];

/// What each column of the inventory export holds, in French.
const INVENTORY_NOTES: [&str; 14] = [
    "code INSEE de la commune (texte)",
    "nom de la commune (non relu à l'envoi)",
    "identifiant de la catégorie du catalogue",
    "nom de la catégorie (non relu à l'envoi)",
    "identifiant du produit au catalogue",
    "génération ou version du produit (texte)",
    "date de mise en service",
    "fin du contrat en cours, si elle est enregistrée",
    "nombre de postes concernés, s'il est enregistré",
    "produit et génération en clair (non relu à l'envoi)",
    "fin de support de la génération, si elle est connue (vide : pas de date publiée, ou génération encore publiée)",
    "nombre d'avis enregistrés sur ce produit par la commune (non relu à l'envoi)",
    "fiabilité moyenne de ces avis, de 1 à 5 (non relu à l'envoi)",
    "oui : donnée simulée (démonstration), pas une vraie adoption (non relu à l'envoi)",
];

/// What the members of EPCI `siren` run on `today`, as an XLSX workbook:
/// - sheet `Inventaire`: the header [`COLUMNS`] then [`INVENTORY_EXTRA_COLUMNS`] (frozen,
///   with a filter), then one row per adoption in service, members by name and categories in
///   catalogue order (a commune with nothing recorded in a category has no row):
///   `code_insee` and `generation` text cells, `depuis`, `fin_contrat` and `fin_support` dates
///   `dd/mm/yyyy`, `postes` and `avis` whole numbers, `fiabilite_moyenne` a number (empty
///   without a report), `simule` `oui`/`non`;
/// - sheet `Source`: the EPCI, its SIREN, the date, the counts, the source, whether the data
///   are simulated, and what each column holds.
///
/// The data sheet is the template's: sent back to `POST /api/v1/epcis/{siren}/inventory`
/// unchanged, every row is skipped as already recorded; a row added or edited there is checked
/// like a template row.
///
/// Errors: `NotFound` for an unknown EPCI, `Internal` if the workbook cannot be written.
pub fn inventory_xlsx(territory: &Territory, catalog: &Catalog, index: &AdoptionIndex, siren: &Siren, today: NaiveDate) -> Result<Vec<u8>> {
    let epci = territory.epci(siren)?;
    build_inventory(territory, catalog, index, siren, &epci.name, today).map_err(|e| Error::internal("writing the XLSX export of the inventory", e))
}

fn build_inventory(territory: &Territory, catalog: &Catalog, index: &AdoptionIndex, siren: &Siren, name: &str, today: NaiveDate) -> Result<Vec<u8>, XlsxError> {
    let st = Styles::new();
    let members = members_by_name(territory, siren);
    let mut rows: Vec<([Cell; 14], bool)> = Vec::new();
    for c in &members {
        for cat in &catalog.categories {
            for a in index.active(&c.code, &cat.slug, today) {
                let product = catalog.product(&a.product).ok();
                let end = product.zip(a.generation.as_ref()).and_then(|(p, g)| p.generation(g)).and_then(|g| g.end_of_support);
                let ratings = index.ratings(a.id, today);
                rows.push((
                    [
                        Cell::Code(c.code.to_string()),
                        Cell::Text(c.name.to_string()),
                        Cell::Text(cat.slug.to_string()),
                        Cell::Text(cat.label.clone()),
                        Cell::Text(a.product.to_string()),
                        a.generation.as_ref().map_or(Cell::Empty, |g| Cell::Code(g.to_string())),
                        Cell::Date(a.since),
                        Cell::date(a.contract_end),
                        a.workstations.map_or(Cell::Empty, |w| Cell::Count(u64::from(w))),
                        Cell::Text(catalog.label(&a.product, a.generation.as_ref())),
                        Cell::date(end),
                        Cell::Count(u64::from(ratings.n)),
                        if ratings.n > 0 { Cell::Decimal((ratings.mean_reliability * 10.0).round() / 10.0) } else { Cell::Empty },
                        Cell::yes_no(a.simulated),
                    ],
                    a.simulated,
                ));
            }
        }
    }
    let simulated = rows.iter().filter(|(_, s)| *s).count();
    let sim = if simulated > 0 { " (données simulées)" } else { "" };
    let title = format!("Inventaire des logiciels et équipements en service — {name} (SIREN {siren}){sim}");
    let mut book = Workbook::new();
    book.set_properties(
        &DocProperties::new().set_title(&title).set_subject(format!("Situation au {}", fr::date(today))).set_author("voisinage").set_company(name),
    );
    let columns: Vec<&str> = COLUMNS.iter().chain(INVENTORY_EXTRA_COLUMNS.iter()).copied().collect();
    let sheet = book.add_worksheet();
    sheet.set_name(SHEET)?;
    sheet.set_active(true);
    sheet.set_landscape();
    sheet.set_header(format!("&L{}&RInventaire au {}{sim}", print_header_text(name), fr::date(today)));
    header_row(sheet, &columns, &INVENTORY_WIDTHS, &st)?;
    for (i, (row, _)) in rows.iter().enumerate() {
        for (col, cell) in row.iter().enumerate() {
            cell.write(sheet, i as u32 + 1, col as u16, &st)?;
        }
    }
    sheet.autofilter(0, 0, rows.len().max(1) as u32, (columns.len() - 1) as u16)?;
    let data = match simulated {
        0 => data_fact(false),
        n if n == rows.len() => data_fact(true),
        n => Cell::Text(format!(
            "{} adoptions enregistrées dans voisinage, dont {n} SIMULÉES pour la démonstration (colonne simule : oui), qui ne sont pas de vraies adoptions.",
            rows.len()
        )),
    };
    let facts = [
        ("EPCI", Cell::Text(name.to_string())),
        ("SIREN", Cell::Code(siren.to_string())),
        ("Situation au", Cell::Date(today)),
        ("Communes membres", Cell::Count(members.len() as u64)),
        ("Adoptions en service", Cell::Count(rows.len() as u64)),
        ("Source", Cell::Text(format!("voisinage, GET /api/v1/epcis/{siren}/inventory.xlsx"))),
        ("Données", data),
        (
            "Renvoyer le fichier",
            Cell::Text(format!(
                "La feuille {SHEET} a les colonnes du modèle d'inventaire : renvoyée telle quelle, rien n'est écrit en double (lignes « déjà enregistrées ») ; une ligne ajoutée est vérifiée comme dans le modèle. Les colonnes après postes ne sont pas relues."
            )),
        ),
    ];
    let notes: Vec<(&str, &str)> = columns.iter().copied().zip(INVENTORY_NOTES).collect();
    source_sheet(&mut book, &title, &facts, &notes, &st)?;
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use calamine::{Data, Reader, Xlsx};

    use super::*;
    use crate::core::auth::TokenScope;
    use crate::core::catalog::Threshold;
    use crate::core::domain::{InseeCode, Slug};
    use crate::core::pooling::{EstimateUsed, Groupement, Volume};
    use crate::core::prices::{EstimateAuthor, PriceBasis};

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn member(code: &str, name: &str, population: u32) -> Member {
        Member { code: InseeCode::parse(code).unwrap(), name: name.into(), population }
    }

    /// A groupement of two Ain communes (codes with a leading zero, which no Brittany code has)
    /// priced at 25,000.25 € HT per commune, one of them with a reason a spreadsheet would
    /// compute.
    fn ain() -> PooledPurchases {
        let end = Need::EndsSoon { product: Slug::parse("openelec").unwrap(), generation: None, date: day(2027, 3, 31) };
        let concerned = |m: Member, need: Need, reason: &str| Concerned { member: m, need, reason: reason.into(), workstations: None };
        let g = Groupement {
            category: Slug::parse("elections").unwrap(),
            category_label: "Élections".into(),
            option: None,
            concerned: vec![
                concerned(member("01001", "L'Abergement-Clémenciat", 859), end.clone(), "Fin de support le 31 mars 2027."),
                concerned(member("01002", "L'Abergement-de-Varey", 267), Need::NoProduct, "=SOMME(1;1)"),
            ],
            already_on: vec![member("01004", "Ambérieu-en-Bugey", 14_514)],
            volume: Volume {
                communes: 2,
                population: 1_126,
                workstations: None,
                estimated_amount_eur_ht: Some(EurHt::from_cents(5_000_050)),
                partial_amount_eur_ht: None,
                missing_workstations: Vec::new(),
                procedure: Some(Threshold {
                    id: "mapa".into(),
                    procedure: "MAPA sans publicité obligatoire".into(),
                    applies_to: "supplies_services".into(),
                    from_eur_ht: 40_000,
                    below_eur_ht: Some(90_000),
                    valid_from: day(2020, 1, 1),
                    valid_until: None,
                    reference: "R2123-1".into(),
                    to_check: false,
                }),
                estimate: Some(EstimateUsed {
                    id: 1,
                    amount_eur_ht: EurHt::from_cents(2_500_025),
                    basis: PriceBasis::PerCommune,
                    made_on: day(2026, 3, 1),
                    by: EstimateAuthor { token_id: 2, scope: TokenScope::parse("epci:200029999").unwrap(), name: "CC de l'Ain & Co".into() },
                }),
                note: None,
            },
            earliest_deadline: Some(day(2027, 3, 31)),
            coordinator: "L'Abergement-Clémenciat".into(),
            due_together: Vec::new(),
            value: 2.5,
            rank_reason: String::new(),
            own_path: Vec::new(),
        };
        PooledPurchases {
            epci: Siren::parse("200029999").unwrap(),
            name: "CC de l'Ain & Co".into(),
            as_of: day(2026, 11, 29),
            horizon_months: 24,
            members_in_scope: 3,
            groupements: vec![g],
            single_needs: Vec::new(),
            to_check: Vec::new(),
        }
    }

    fn part(bytes: &[u8], name: &str) -> String {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut s = String::new();
        zip.by_name(name).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    fn ymd(d: &Data) -> (u16, u8, u8) {
        match d {
            Data::DateTime(x) => {
                let (y, m, d, ..) = x.to_ymd_hms_milli();
                (y, m, d)
            }
            other => panic!("not a date cell: {other:?}"),
        }
    }

    #[test]
    fn the_workbook_types_codes_as_text_dates_as_dates_and_amounts_as_euros() {
        let bytes = pooled_purchases_xlsx(&ain(), true).unwrap();
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.clone())).unwrap();
        assert_eq!(book.sheet_names(), [POOLED_SHEET, SOURCE_SHEET]);
        let sheet = book.worksheet_range(POOLED_SHEET).unwrap();
        assert_eq!(sheet.height(), 4, "header, 2 members concerned, 1 already on the option");
        let header: Vec<String> = sheet.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
        assert_eq!(header, POOLED_COLUMNS);
        let r = &sheet.rows().nth(1).unwrap();
        assert_eq!(r[2], Data::String("01001".into()), "the leading zero stays");
        assert_eq!(r[4], Data::Float(859.0));
        assert_eq!(r[5], Data::String("fin_de_support_proche".into()));
        assert_eq!(ymd(&r[7]), (2027, 3, 31));
        assert_eq!(r[12], Data::String("oui".into()));
        assert_eq!(r[13], Data::String("groupement".into()));
        assert_eq!(r[15], Data::Float(50_000.5));
        assert_eq!(r[16], Data::Float(25_000.25));
        assert_eq!(r[17], Data::String("par commune".into()));
        assert_eq!(ymd(&r[19]), (2026, 3, 1));
        let r = &sheet.rows().nth(2).unwrap();
        assert_eq!((&r[2], &r[6], &r[7]), (&Data::String("01002".into()), &Data::String("=SOMME(1;1)".into()), &Data::Empty), "text, never a formula");
        let r = &sheet.rows().nth(3).unwrap();
        assert_eq!((&r[2], &r[5]), (&Data::String("01004".into()), &Data::String("deja_sur_option".into())));

        let source = book.worksheet_range(SOURCE_SHEET).unwrap();
        let fact = |label: &str| source.rows().find(|r| r[0] == Data::String(label.into())).map(|r| r[1].clone()).unwrap();
        assert_eq!(
            source.get_value((0, 0)),
            Some(&Data::String("Groupements de commandes proposés — CC de l'Ain & Co (SIREN 200029999) (données simulées)".into()))
        );
        assert_eq!(fact("SIREN"), Data::String("200029999".into()));
        assert_eq!(ymd(&fact("Situation au")), (2026, 11, 29));
        assert_eq!(fact("Horizon (mois)"), Data::Float(24.0));
        assert!(fact("Données").to_string().starts_with("DONNÉES SIMULÉES"));

        // What calamine does not tell: the frozen header row, the widths, the formats.
        let xml = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(xml.contains(r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#), "{xml}");
        assert!(xml.contains(r#"<col min="7" max="7" width="70.7109375" customWidth="1"/>"#), "{xml}");
        assert!(xml.contains("<autoFilter ref=\"A1:T4\"/>"), "{xml}");
        assert!(
            xml.contains("<oddHeader>&amp;LCC de l'Ain &amp;&amp; Co&amp;RGroupements de commandes au 29 novembre 2026 (données simulées)</oddHeader>"),
            "{xml}"
        );
        let styles = part(&bytes, "xl/styles.xml");
        assert!(styles.contains(r#"formatCode="dd/mm/yyyy""#) && styles.contains(r##"formatCode="#,##0.00\ &quot;€&quot;""##), "{styles}");
    }

    #[test]
    fn the_csv_has_the_same_rows_as_text_for_scripts() {
        let csv = String::from_utf8(pooled_purchases_csv(&ain(), false).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].trim_start_matches('\u{feff}'), POOLED_COLUMNS.join(";"));
        assert_eq!(
            lines[1],
            "elections;Élections;01001;L'Abergement-Clémenciat;859;fin_de_support_proche;Fin de support le 31 mars 2027.;2027-03-31;;;L'Abergement-Clémenciat;MAPA sans publicité obligatoire;non;groupement;;50000,50;25000,25;par commune;CC de l'Ain & Co;2026-03-01"
        );
        assert!(lines[2].contains(r#";"'=SOMME(1;1)";"#), "inert: {}", lines[2]);
    }

    #[test]
    fn csv_text_of_cells() {
        assert_eq!(Cell::Euros(EurHt::from_whole_euros(52_000)).csv_text(), "52000");
        assert_eq!(Cell::Euros(EurHt::from_cents(5_200_005)).csv_text(), "52000,05");
        assert_eq!(Cell::Date(day(2019, 3, 1)).csv_text(), "2019-03-01");
        assert_eq!(Cell::Code("01001".into()).csv_text(), "01001");
        assert_eq!(Cell::Empty.csv_text(), "");
    }
}
