//! French number formatting for the pages and the French sentences of the answers.

/// An integer with French digit grouping: groups of three digits separated by a narrow
/// no-break space (U+202F), no decimals. `1234567` → `"1 234 567"` (with U+202F), `999` →
/// `"999"`, `0` → `"0"`.
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    out
}

/// A decimal number rounded to `digits` decimals (Rust's `{:.digits$}` rounding) with a
/// decimal comma and no digit grouping: `decimal(3.14159, 1)` → `"3,1"`, `decimal(12.0, 0)` →
/// `"12"`, `decimal(1234.5, 1)` → `"1234,5"`.
pub fn decimal(x: f64, digits: usize) -> String {
    Decimal(x, digits).to_string()
}

/// [`decimal`] as a value to write (`write!(out, "{}", Decimal(x, 1))`): the same text, with no
/// string of its own.
pub struct Decimal(pub f64, pub usize);

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Writes through to the formatter, each `.` as `,`.
        struct Comma<'a, 'b>(&'a mut std::fmt::Formatter<'b>);
        impl std::fmt::Write for Comma<'_, '_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                let mut parts = s.split('.');
                self.0.write_str(parts.next().unwrap_or(""))?;
                for part in parts {
                    self.0.write_char(',')?;
                    self.0.write_str(part)?;
                }
                Ok(())
            }
        }
        let Decimal(x, digits) = *self;
        std::fmt::Write::write_fmt(&mut Comma(f), format_args!("{x:.digits$}"))
    }
}

/// A duration in whole months as a mairie says it: under a year in months (`"8 mois"`), then
/// in years and months (`"1 an"`, `"2 ans et 3 mois"`). Negative durations read as 0.
pub fn months(m: i64) -> String {
    Months(m).to_string()
}

/// [`months`] as a value to write: the same text, with no string of its own.
pub struct Months(pub i64);

impl std::fmt::Display for Months {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0.max(0);
        let (y, r) = (m / 12, m % 12);
        match y {
            0 => return write!(f, "{r} mois"),
            1 => f.write_str("1 an")?,
            y => write!(f, "{y} ans")?,
        }
        if r > 0 { write!(f, " et {r} mois") } else { Ok(()) }
    }
}

/// A distance in whole km: `12.4` → `"12 km"`.
pub fn km(x: f64) -> String {
    Km(x).to_string()
}

/// [`km`] as a value to write: the same text, with no string of its own.
pub struct Km(pub f64);

impl std::fmt::Display for Km {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} km", self.0.max(0.0).round() as u64)
    }
}

/// The months' names in French, January first.
const MONTHS: [&str; 12] = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"];

/// A date as written in French: `8 octobre 2024`, `1er janvier 2026` (the first of a month
/// is "1er").
pub fn date(d: chrono::NaiveDate) -> String {
    Date(d).to_string()
}

/// [`date`] written where it is formatted (`format!("le {}", Date(d))`), without a string of
/// its own.
#[derive(Clone, Copy, Debug)]
pub struct Date(pub chrono::NaiveDate);

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::Datelike;
        let (day, month, year) = (self.0.day(), MONTHS[self.0.month0() as usize], self.0.year());
        if day == 1 { write!(f, "1er {month} {year}") } else { write!(f, "{day} {month} {year}") }
    }
}

/// A month as written in French: `octobre 2024`.
pub fn month(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    format!("{} {}", MONTHS[d.month0() as usize], d.year())
}

/// A count with its noun, singular for 0 and 1 as French does: `count(1, "commune",
/// "communes")` → `"1 commune"`, `count(0, ..)` → `"0 commune"`, `count(1234, ..)` →
/// `"1 234 communes"` (narrow no-break space).
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", int(n), if n <= 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_numbers() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1000), "1\u{202f}000");
        assert_eq!(int(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(decimal(3.16, 1), "3,2");
        assert_eq!(decimal(12.0, 0), "12");
        assert_eq!(decimal(1234.5, 1), "1234,5");
        assert_eq!(decimal(2.25, 2), "2,25");
        assert_eq!(
            (months(8), months(12), months(27), months(24), months(-3)),
            ("8 mois".into(), "1 an".into(), "2 ans et 3 mois".into(), "2 ans".into(), "0 mois".into())
        );
        assert_eq!(km(12.4), "12 km");
        assert_eq!((decimal(-0.25, 1), decimal(-3.0, 0), decimal(f64::NAN, 1)), ("-0,2".into(), "-3".into(), "NaN".into()));
        assert_eq!((months(13), months(25)), ("1 an et 1 mois".into(), "2 ans et 1 mois".into()));
        assert_eq!(format!("{} ; {}", Decimal(4.06, 1), Months(14)), "4,1 ; 1 an et 2 mois");
    }

    #[test]
    fn decimals_written_are_the_formatted_number_with_a_comma() {
        for i in -2000..=2000 {
            let x = f64::from(i) * 0.0137;
            for d in 0..4 {
                assert_eq!(Decimal(x, d).to_string(), format!("{x:.d$}").replace('.', ","), "{x} at {d}");
            }
        }
        let d = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(date(d(2024, 10, 8)), "8 octobre 2024");
        assert_eq!(date(d(2026, 1, 1)), "1er janvier 2026");
        assert_eq!(date(d(2026, 8, 31)), "31 août 2026");
        assert_eq!(month(d(2024, 2, 9)), "février 2024");
        assert_eq!((month(d(2026, 1, 1)), month(d(2025, 12, 31))), ("janvier 2026".into(), "décembre 2025".into()));
        assert_eq!(format!("le {} ; le {}", Date(d(2026, 1, 1)), Date(d(2027, 6, 30))), "le 1er janvier 2026 ; le 30 juin 2027");
        assert_eq!((count(0, "commune", "communes"), count(1, "commune", "communes")), ("0 commune".into(), "1 commune".into()));
        assert_eq!(count(2, "commune", "communes"), "2 communes");
        assert_eq!(count(1234, "retour", "retours"), "1\u{202f}234 retours");
        let ds = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            (date(ds("2026-10-08")), date(ds("2026-04-01")), date(ds("2025-02-28"))),
            ("8 octobre 2026".into(), "1er avril 2026".into(), "28 février 2025".into())
        );
    }
}

/// "of" a place name in French: `de Brest`, `d'Auray`, `d'Île-de-Bréhat`, `du Relecq-Kerhuon`
/// (`Le` contracted), `des Forges` (`Les`), `de La Roche-Derrien`, `de L'Hôpital-Camfrout`.
pub fn de(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("Le ") {
        return format!("du {rest}");
    }
    if let Some(rest) = name.strip_prefix("Les ") {
        return format!("des {rest}");
    }
    let first = name.chars().next().unwrap_or(' ');
    let vowel = "AEIOUYÂÊÎÔÛÉÈËÏÜŒaeiouyâêîôûéèëïüœ".contains(first);
    if vowel && !name.starts_with("L'") { format!("d'{name}") } else { format!("de {name}") }
}

#[cfg(test)]
mod de_tests {
    #[test]
    fn of_a_place() {
        assert_eq!(super::de("Brest"), "de Brest");
        assert_eq!(super::de("Auray"), "d'Auray");
        assert_eq!(super::de("Île-de-Bréhat"), "d'Île-de-Bréhat");
        assert_eq!(super::de("Le Relecq-Kerhuon"), "du Relecq-Kerhuon");
        assert_eq!(super::de("Les Forges"), "des Forges");
        assert_eq!(super::de("La Roche-Derrien"), "de La Roche-Derrien");
    }
}
