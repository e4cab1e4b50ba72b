//! A recommendation [`Answer`] written as JSON: the same bytes as `serde_json` gives from its
//! derived `Serialize`, in about 40 % less time (11.3 µs against 18.8 µs for an answer of the
//! national rotation: BENCHMARKS.md, thirteenth slice).
//!
//! `serde_json` writes a struct's field names through its string escaper, byte by byte, on every
//! row: an answer's 100 evidence rows carry about 8 kB of names for 3 kB of values, and that was
//! two thirds of the time spent serialising an answer (issue 17, item 2: evidence rows written
//! once per request from typed structs). Here the names of [`Answer`], [`Recommendation`] and
//! [`Evidence`] are written as the constant bytes they are; every value still goes through
//! `serde_json` (numbers, strings and their escapes, the nested parts written as they were), so
//! the text is the same. The structs are destructured without `..`: a field added to one of them
//! fails to compile here until it is written, and a test compares the two writings on the
//! Breton demo history.

use serde::Serialize;

use crate::core::recommend::{Answer, DECIMAL_SCALE, Evidence, Recommendation, round_half_away};

/// Writes `value` as `serde_json` does.
fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, v)
}

/// Writes `head` (punctuation and a field name, as written: `,"name":`) then `v`. The head's
/// length is a constant, so that copying it is a few moves rather than a call to `memcpy` (2 % of
/// a server under uncached load went to those calls, a dozen bytes each).
fn field<const N: usize, T: Serialize + ?Sized>(out: &mut Vec<u8>, head: &[u8; N], v: &T) -> serde_json::Result<()> {
    out.extend_from_slice(head);
    value(out, v)
}

/// Writes `head` then `v`, a number rounded to `d` decimals (at most 4: `recommend::round`), as
/// `serde_json` writes it (its shortest representation, `null` for `None`), from the number's digits as an
/// integer rather than through the float printer. For `+0 ≤ v < 10^9` such that `m = v · 10^d`
/// rounded gives `v` back as `m / 10^d`, that representation is the decimal `m / 10^d` itself
/// (trailing zeros dropped, at least one decimal): a decimal with fewer digits is at least
/// `10^-d` away, far more than half a unit in the last place of `v`. Any other value goes
/// through `serde_json`.
fn field_rounded<const N: usize>(out: &mut Vec<u8>, head: &[u8; N], v: Option<f64>, d: u32) -> serde_json::Result<()> {
    out.extend_from_slice(head);
    let Some(v) = v else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    let Some(&scale) = DECIMAL_SCALE.get(d as usize) else { return value(out, &v) };
    let m = round_half_away(v * scale);
    // `-0.0` is in the range but written with its sign.
    if !((0.0..1e9).contains(&v) && v.is_sign_positive() && m / scale == v) {
        return value(out, &v);
    }
    // Below 10^13: exact as an integer.
    let (m, unit) = (m as u64, 10u64.pow(d));
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(m / unit).as_bytes());
    out.push(b'.');
    let (mut frac, mut digits) = (m % unit, d);
    if frac == 0 {
        out.push(b'0');
        return Ok(());
    }
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let text = buf.format(frac);
    out.extend(std::iter::repeat_n(b'0', digits as usize - text.len()));
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// Writes `[`, each item with `write`, separated by commas, then `]`.
fn array<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T) -> serde_json::Result<()>) -> serde_json::Result<()> {
    out.push(b'[');
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        write(out, item)?;
    }
    out.push(b']');
    Ok(())
}

impl Answer {
    /// Appends the answer's JSON to `out`: byte for byte what `serde_json::to_writer(out, self)`
    /// writes (compact, fields in declaration order), faster. Errors: those of `serde_json`
    /// (none for these types in practice: no map with non-string keys).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let Answer { commune, category, as_of, params, scope, current, items, excluded } = self;
        field(out, b"{\"commune\":", commune)?;
        field(out, b",\"category\":", category)?;
        field(out, b",\"as_of\":", as_of)?;
        field(out, b",\"params\":", params)?;
        field(out, b",\"scope\":", scope)?;
        field(out, b",\"current\":", current)?;
        out.extend_from_slice(b",\"items\":");
        array(out, items, |out, r| r.write_json(out))?;
        field(out, b",\"excluded\":", excluded)?;
        out.push(b'}');
        Ok(())
    }
}

impl Recommendation {
    /// Appends the item's JSON to `out`, as `serde_json` writes it (`to_check` left out when
    /// empty, as its `skip_serializing_if` says).
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let Recommendation {
            product,
            product_name,
            generation,
            generation_label,
            release,
            release_label,
            to_check,
            score,
            parts,
            reliability,
            maturity,
            status,
            support,
            adopters,
            evidence,
            reason,
        } = self;
        field(out, b"{\"product\":", product)?;
        field(out, b",\"product_name\":", product_name)?;
        field(out, b",\"generation\":", generation)?;
        field(out, b",\"generation_label\":", generation_label)?;
        field(out, b",\"release\":", release)?;
        field(out, b",\"release_label\":", release_label)?;
        if !to_check.is_empty() {
            field(out, b",\"to_check\":", to_check)?;
        }
        field_rounded(out, b",\"score\":", Some(*score), 4)?;
        field(out, b",\"parts\":", parts)?;
        field(out, b",\"reliability\":", reliability)?;
        field(out, b",\"maturity\":", maturity)?;
        field(out, b",\"status\":", status)?;
        field(out, b",\"support\":", support)?;
        field(out, b",\"adopters\":", adopters)?;
        out.extend_from_slice(b",\"evidence\":");
        array(out, evidence, |out, e| e.write_json(out))?;
        field(out, b",\"reason\":", reason)?;
        out.push(b'}');
        Ok(())
    }
}

impl Evidence {
    /// Appends the row's JSON to `out`, as `serde_json` writes it.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let Evidence { code, name, hops, same_epci, distance_km, weight, months_in_service, mean_rating, n_ratings, simulated } = self;
        field(out, b"{\"code\":", code)?;
        field(out, b",\"name\":", name)?;
        field(out, b",\"hops\":", hops)?;
        if *same_epci {
            out.extend_from_slice(b",\"same_epci\":true");
        } else {
            out.extend_from_slice(b",\"same_epci\":false");
        }
        field_rounded(out, b",\"distance_km\":", *distance_km, 1)?;
        field_rounded(out, b",\"weight\":", Some(*weight), 3)?;
        field(out, b",\"months_in_service\":", months_in_service)?;
        field_rounded(out, b",\"mean_rating\":", *mean_rating, 2)?;
        field(out, b",\"n_ratings\":", n_ratings)?;
        if *simulated {
            out.extend_from_slice(b",\"simulated\":true}");
        } else {
            out.extend_from_slice(b",\"simulated\":false}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{InseeCode, Slug};
    use crate::core::recommend::golden::demo;
    use crate::core::recommend::{Ctx, Params, recommend};

    fn written(a: &Answer) -> Vec<u8> {
        let mut out = Vec::new();
        a.write_json(&mut out).unwrap();
        out
    }

    /// On every 5th Breton commune × every category of the demo history (seed 2026), with the
    /// default parameters and with overrides (another hop decay, the exact path of another
    /// half-life, 12 items), the answer written here is `serde_json`'s, byte for byte; the cases
    /// include items with compliance checks to make, evidence without ratings and the widened
    /// steps.
    #[test]
    fn the_answer_written_is_serde_jsons_byte_for_byte() {
        let (t, c, mut h, today) = demo();
        h.keep_feedback_sums(Params::default().sums_basis(today));
        let ctx = Ctx::new(&t, &c, &h, today);
        let mut overrides = Params::default();
        overrides.set("hop_decay", "0.5000001").unwrap();
        overrides.set("half_life_months", "30").unwrap();
        overrides.set("limit", "12").unwrap();
        let (mut compared, mut with_checks, mut unrated, mut widened) = (0, 0, 0, 0);
        for commune in t.communes().iter().step_by(5) {
            for category in &c.categories {
                for params in [Params::default(), overrides] {
                    let a = recommend(&ctx, &commune.code, &category.slug, &params).unwrap();
                    let want = serde_json::to_vec(&a).unwrap();
                    assert!(written(&a) == want, "{} {}: {}", commune.code, category.slug, String::from_utf8_lossy(&written(&a)));
                    compared += 1;
                    with_checks += usize::from(a.items.iter().any(|i| !i.to_check.is_empty()));
                    unrated += usize::from(a.items.iter().flat_map(|i| &i.evidence).any(|e| e.mean_rating.is_none()));
                    widened += usize::from(a.scope.note.is_some());
                }
            }
        }
        assert!(compared > 2 * 240 * 20, "{compared} answers compared");
        assert!(with_checks > 0 && unrated > 0 && widened > 0, "checks {with_checks}, unrated {unrated}, widened {widened}");
    }

    /// Numbers rounded to 0 to 4 decimals are written as `serde_json` writes them: every
    /// multiple of `10^-d` from 0 to 2,000 and a sample up to 10^9, and values that are not
    /// rounded (written by `serde_json` itself).
    #[test]
    fn rounded_numbers_are_written_as_serde_json_does() {
        let check = |v: f64, d: u32| {
            let mut out = Vec::new();
            field_rounded(&mut out, b":", Some(v), d).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!(":{}", serde_json::to_string(&v).unwrap()), "{v} to {d} decimals");
        };
        for d in 0..=4u32 {
            let scale = 10f64.powi(d as i32);
            for m in (0..=2_000 * 10u64.pow(d)).chain((0..1_000_000u64).map(|k| k * 99_999_989 % (1_000_000_000 * 10u64.pow(d)))) {
                check(m as f64 / scale, d);
            }
        }
        for v in [0.123456789, 1e-7, 2.5e-5, 1e9, 1e12 + 0.5, 3.0e20, -0.0, -1.5, f64::NAN, f64::INFINITY, 0.1 + 0.2] {
            for d in 0..=5 {
                check(v, d);
            }
        }
        let mut out = Vec::new();
        field_rounded(&mut out, b":", None, 2).unwrap();
        assert_eq!(out, b":null");
    }

    /// Values `serde_json` escapes or writes specially come out the same: quotes, backslashes and
    /// control characters in a name or a reason, a non-finite score (`null`), missing distances
    /// and ratings, an item without evidence, an answer without items.
    #[test]
    fn escapes_and_edge_values_are_written_as_serde_json_does() {
        let (t, c, h, today) = demo();
        let ctx = Ctx::new(&t, &c, &h, today);
        let code = InseeCode::parse("29232").unwrap();
        let mut a = recommend(&ctx, &code, &Slug::parse("etat-civil").unwrap(), &Params::default()).unwrap();
        assert!(!a.items.is_empty() && !a.items[0].evidence.is_empty());
        let item = &mut a.items[0];
        item.reason = "dit « \"oui\" » \\ puis\u{1}\n\t fin".to_string();
        item.score = f64::NAN;
        item.evidence[0].name = "Saint-\"Quote\"\\\u{7f}\u{1f}é".into();
        item.evidence[0].distance_km = None;
        item.evidence[0].mean_rating = None;
        item.evidence[0].same_epci = !item.evidence[0].same_epci;
        item.evidence[0].simulated = !item.evidence[0].simulated;
        let mut empty = item.clone();
        empty.evidence.clear();
        a.items.push(empty);
        assert_eq!(String::from_utf8(written(&a)).unwrap(), serde_json::to_string(&a).unwrap());
        a.items.clear();
        assert_eq!(String::from_utf8(written(&a)).unwrap(), serde_json::to_string(&a).unwrap());
    }
}
