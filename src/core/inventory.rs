//! Checking an EPCI's inventory upload: the rows of a filled spreadsheet (one row per member
//! commune × category: what it runs, since when), checked against the territory (the commune
//! is a member of this EPCI) and the catalogue, with the rules of
//! [`NewAdoption::check`] (the same as the API's), and reported row by row in French.
//!
//! Pure: the rows arrive as text (read from XLSX or CSV by [`crate::inventory`]), the answer is
//! a report and the adoptions to record. Writing them, all or nothing, is the service's job
//! ([`crate::service::Service::import_inventory`]).
//!
//! Per row, the outcome is one of:
//! - `accepted`: a valid adoption to record;
//! - `skipped`: nothing declared (no product, nothing else filled), or the same adoption
//!   (commune, category, product, generation, start date) already recorded ("déjà
//!   enregistrée": the template pre-fills what each commune runs, so a template sent back
//!   unchanged is accepted and writes nothing);
//! - `error`: the column at fault and the reason. Another overlapping adoption of the same
//!   product generation (a different start date), or the same adoption twice in the file, is an
//!   error.

use chrono::NaiveDate;
use serde::Serialize;

use crate::core::catalog::Catalog;
use crate::core::domain::{GenerationId, InseeCode, Siren, Slug};
use crate::core::history::{AdoptionIndex, MAX_WORKSTATIONS, NewAdoption};
use crate::core::territory::Territory;

/// Columns of the inventory spreadsheet, in template order (the header row). `code_insee`,
/// `categorie`, `produit` and `depuis` are required in the header; the others may be absent.
/// `commune` and `libelle_categorie` are read for nothing (help for the person filling it).
pub const COLUMNS: [&str; 9] = ["code_insee", "commune", "categorie", "libelle_categorie", "produit", "generation", "depuis", "fin_contrat", "postes"];

/// Columns the header row must hold.
pub const REQUIRED_COLUMNS: [&str; 4] = ["code_insee", "categorie", "produit", "depuis"];

/// One row of an uploaded inventory, as text (cells trimmed; empty cells are empty strings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryRow {
    /// Line number in the spreadsheet or CSV file (1 = the header row).
    pub line: u32,
    /// `code_insee`: code INSEE of the commune.
    pub code_insee: String,
    /// `categorie`: catalogue category id (`etat-civil`).
    pub category: String,
    /// `produit`: catalogue product id (`openelec`); empty = nothing declared.
    pub product: String,
    /// `generation`: generation or release id, as the catalogue lists it.
    pub generation: String,
    /// `depuis`: first day in service (`YYYY-MM-DD` or `DD/MM/YYYY`).
    pub since: String,
    /// `fin_contrat`: end of the current contract (same formats), optional.
    pub contract_end: String,
    /// `postes`: workstations covered, a whole number 0 to 100,000, optional.
    pub workstations: String,
}

/// Outcome of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// A valid adoption, recorded (or to be recorded: dry run, or another row has an error).
    Accepted,
    /// Nothing declared, or already recorded: nothing to write.
    Skipped,
    /// Refused: see `field` and `reason`.
    Error,
}

/// The report of one row.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RowReport {
    /// Line number in the file (1 = the header row, so data starts at 2).
    pub row: u32,
    /// The `code_insee` cell, as sent.
    pub code_insee: String,
    /// The `categorie` cell, as sent.
    pub category: String,
    /// Outcome.
    pub status: RowStatus,
    /// Column at fault (`code_insee`, `categorie`, `produit`, `generation`, `depuis`,
    /// `fin_contrat`, `postes`), for an error.
    pub field: Option<String>,
    /// French explanation: what will be recorded, why nothing is, or what is wrong.
    pub reason: String,
    /// Id of the adoption recorded from this row (after a write), or of the one already
    /// recorded (skipped as "déjà enregistrée").
    pub adoption: Option<u64>,
}

/// The answer to an inventory upload.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InventoryReport {
    /// The EPCI.
    pub siren: Siren,
    /// Checked only, nothing written (`?dry_run=true`).
    pub dry_run: bool,
    /// Whether the accepted rows were recorded: only when no row has an error, at least one row
    /// is accepted and it is not a dry run (all or nothing).
    pub written: bool,
    /// Rows read (blank rows left out).
    pub rows: usize,
    /// Rows accepted.
    pub accepted: usize,
    /// Rows skipped.
    pub skipped: usize,
    /// Rows with an error.
    pub errors: usize,
    /// One report per row, in file order.
    pub lines: Vec<RowReport>,
}

/// A checked inventory: the report (not yet written) and, for each accepted row, its index in
/// `report.lines` and the adoption to record.
pub struct CheckedInventory {
    /// The report, `written: false`.
    pub report: InventoryReport,
    /// The adoptions to record (index into `report.lines`, adoption).
    pub adoptions: Vec<(usize, NewAdoption)>,
}

/// A date of the spreadsheet: `YYYY-MM-DD` (ISO 8601, what the template asks for) or
/// `DD/MM/YYYY` (the French way). `None` otherwise.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().or_else(|| NaiveDate::parse_from_str(s, "%d/%m/%Y").ok()).filter(|_| s.len() == 10)
}

/// A row's error: the column at fault and the French reason.
type RowError = (&'static str, String);

/// Checks every row against the territory (a commune member of EPCI `siren`), the catalogue and
/// the adoptions already recorded (`index`), at `today`. Never fails: every problem is a row's.
pub fn check_inventory(
    territory: &Territory,
    catalog: &Catalog,
    index: &AdoptionIndex,
    siren: &Siren,
    rows: &[InventoryRow],
    today: NaiveDate,
) -> CheckedInventory {
    let mut lines = Vec::with_capacity(rows.len());
    let mut adoptions: Vec<(usize, NewAdoption)> = Vec::new();
    // The accepted rows so far, as adoptions whose id is their line number: a second row for
    // the same adoption is found by the store's own duplicate rule.
    let mut in_file = AdoptionIndex::default();
    for r in rows {
        let mut report = RowReport {
            row: r.line,
            code_insee: r.code_insee.clone(),
            category: r.category.clone(),
            status: RowStatus::Error,
            field: None,
            reason: String::new(),
            adoption: None,
        };
        match check_row(territory, catalog, siren, r, today) {
            Err((field, reason)) => {
                report.field = Some(field.into());
                report.reason = reason;
            }
            Ok(None) => {
                report.status = RowStatus::Skipped;
                report.reason = "aucun produit déclaré : ligne ignorée".into();
            }
            Ok(Some(new)) => {
                let label = catalog.label(&new.product, new.generation.as_ref());
                if let Some(a) = new.duplicate_of(&in_file, None) {
                    report.field = Some("produit".into());
                    report.reason = format!("même adoption que la ligne {} ({label}, même période)", a.id);
                } else if let Some(a) = new.duplicate_of(index, None) {
                    if a.since == new.since {
                        report.status = RowStatus::Skipped;
                        report.adoption = Some(a.id);
                        report.reason = format!("déjà enregistrée (adoption {}) : {label} depuis le {}", a.id, crate::core::fr::date(a.since));
                        if a.contract_end != new.contract_end || a.workstations != new.workstations {
                            report.reason.push_str(" ; fin de contrat et postes ne changent pas par l'inventaire : modifier l'adoption");
                        }
                    } else {
                        report.field = Some("depuis".into());
                        report.reason = format!(
                            "{label} est déjà enregistrée pour cette commune depuis le {} (adoption {}), sur une période qui chevauche",
                            crate::core::fr::date(a.since),
                            a.id
                        );
                    }
                } else {
                    report.status = RowStatus::Accepted;
                    report.reason = format!("acceptée : {label} depuis le {}", crate::core::fr::date(new.since));
                    in_file.add_adoption(new.clone().with_id(u64::from(r.line), false));
                    adoptions.push((lines.len(), new));
                }
            }
        }
        lines.push(report);
    }
    let count = |s: RowStatus| lines.iter().filter(|l| l.status == s).count();
    let report = InventoryReport {
        siren: *siren,
        dry_run: false,
        written: false,
        rows: lines.len(),
        accepted: count(RowStatus::Accepted),
        skipped: count(RowStatus::Skipped),
        errors: count(RowStatus::Error),
        lines,
    };
    CheckedInventory { report, adoptions }
}

/// One row: `Ok(None)` when nothing is declared, the adoption it declares, or the column at
/// fault and why.
fn check_row(territory: &Territory, catalog: &Catalog, siren: &Siren, r: &InventoryRow, today: NaiveDate) -> Result<Option<NewAdoption>, RowError> {
    let code = InseeCode::parse(&r.code_insee)
        .map_err(|_| ("code_insee", format!("« {} » n'est pas un code INSEE (5 caractères, par exemple 35238)", clip(&r.code_insee))))?;
    let commune = match territory.idx_of(&code) {
        Some(i) => territory.commune(i),
        None => {
            let reason = match territory.communes().iter().find(|c| c.former_codes.contains(&code)) {
                Some(c) => format!("{code} est une ancienne commune, fusionnée dans {} ({}) : utiliser ce code", c.name, c.code),
                None => format!("aucune commune de code {code} dans le territoire"),
            };
            return Err(("code_insee", reason));
        }
    };
    if commune.epci.as_ref() != Some(siren) {
        let epci = territory.epci(siren).map(|e| e.name.clone()).unwrap_or_else(|_| siren.to_string());
        let theirs = match commune.epci.as_ref().and_then(|s| territory.epci(s).ok()) {
            Some(e) => format!(" (elle est membre de {})", e.name),
            None => " (elle n'est membre d'aucun EPCI)".into(),
        };
        return Err(("code_insee", format!("{} ({code}) n'est pas membre de {epci}{theirs}", commune.name)));
    }
    if r.category.is_empty() {
        return Err(("categorie", "catégorie manquante".into()));
    }
    let category = Slug::parse(&r.category)
        .ok()
        .filter(|c| catalog.category(c).is_ok())
        .ok_or_else(|| ("categorie", format!("la catégorie « {} » n'est pas au catalogue", clip(&r.category))))?;
    let others = [&r.generation, &r.since, &r.contract_end, &r.workstations];
    if r.product.is_empty() {
        if others.iter().all(|s| s.is_empty()) {
            return Ok(None);
        }
        return Err(("produit", "produit manquant, alors que d'autres colonnes de la ligne sont remplies".into()));
    }
    let product = Slug::parse(&r.product).map_err(|_| ("produit", format!("« {} » n'est pas un identifiant de produit du catalogue", clip(&r.product))))?;
    let generation = if r.generation.is_empty() {
        None
    } else {
        Some(GenerationId::parse(&r.generation).map_err(|_| ("generation", format!("« {} » n'est pas un identifiant de génération", clip(&r.generation))))?)
    };
    if r.since.is_empty() {
        return Err(("depuis", "date de mise en service manquante (AAAA-MM-JJ)".into()));
    }
    let since = parse_date(&r.since).ok_or_else(|| ("depuis", format!("« {} » n'est pas une date (AAAA-MM-JJ ou JJ/MM/AAAA)", clip(&r.since))))?;
    let contract_end = match r.contract_end.as_str() {
        "" => None,
        s => Some(parse_date(s).ok_or_else(|| ("fin_contrat", format!("« {} » n'est pas une date (AAAA-MM-JJ ou JJ/MM/AAAA)", clip(s))))?),
    };
    let workstations = match r.workstations.as_str() {
        "" => None,
        s => Some(
            whole_number(s)
                .filter(|&w| w <= MAX_WORKSTATIONS)
                .ok_or_else(|| ("postes", format!("« {} » : un nombre entier de postes, de 0 à 100 000", clip(s))))?,
        ),
    };
    let new = NewAdoption { commune: code, category, product, generation, since, until: None, contract_end, workstations };
    new.check(catalog, today).map_err(|f| (f.field.column(), f.fr))?;
    Ok(Some(new))
}

/// A whole number written as `12`, or `12.0` (a spreadsheet's number).
fn whole_number(s: &str) -> Option<u32> {
    let s = s.strip_suffix(".0").unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
        return None;
    }
    s.parse().ok()
}

/// A cell's text cut to 40 characters for a message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_numbers() {
        let d = NaiveDate::from_ymd_opt(2019, 3, 1);
        assert_eq!(parse_date("2019-03-01"), d);
        assert_eq!(parse_date("01/03/2019"), d);
        assert_eq!(parse_date("2019-3-1"), None);
        assert_eq!(parse_date("1/3/2019"), None);
        assert_eq!(parse_date("mars 2019"), None);
        assert_eq!(whole_number("12"), Some(12));
        assert_eq!(whole_number("12.0"), Some(12));
        assert_eq!(whole_number("12.5"), None);
        assert_eq!(whole_number("-1"), None);
        assert_eq!(whole_number(""), None);
    }
}
