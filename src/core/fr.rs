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
    format!("{x:.digits$}").replace('.', ",")
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
    }
}
