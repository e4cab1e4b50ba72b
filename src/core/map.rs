//! Commune shapes for maps: parsing the simplified polygons of the seeds, drawing an inline SVG
//! map of EPCI members coloured by status, and the member statuses themselves.
//!
//! Source of the shapes: IGN Admin Express COG 2018 polygons, merged into current communes and
//! simplified by the importer (`seeds/communes.geojson`, coordinates to 4 decimals ≈ 10 m, or
//! finer where needed to stay valid; see `seeds/README.md`).

use std::collections::HashMap;
use std::fmt::Write as _;

use geo::orient::{Direction, Orient};
use geo::{BoundingRect, Coord, InteriorPoint, LineString, MultiPolygon, Polygon};

use crate::core::domain::InseeCode;
use crate::core::packed::{put_varint as put, varint as get};
use crate::core::pooling::Need;
use crate::error::{Error, Result};

/// Simplified polygons of the communes, by INSEE code (WGS84 lon/lat degrees), outer rings
/// counter-clockwise and holes clockwise (RFC 7946 §3.1.6) whatever the file's winding.
///
/// Kept packed ([`PackedShape`]: 2.3 bytes a point for the embedded Breton seeds' 4 decimals,
/// instead of 16 for a `Coord<f64>`; 1.7 million points at national scale) and decoded when a
/// map asks.
#[derive(Debug, Default)]
pub struct Shapes(HashMap<InseeCode, PackedShape>);

/// One commune's polygons as bytes: the number of decimals `k` (0 to 7) that every coordinate
/// has, then the polygons, rings and points as LEB128 varints (counts, then each coordinate
/// × 10^k as a zigzag delta from the point before). Each coordinate is checked as it is written:
/// decoding (the integer divided by 10^k) gives it back bit for bit. A shape where some
/// coordinate has no such `k` (more than 7 decimals, −0.0, NaN, an infinity, or too large) is
/// kept as raw `f64`s (`k` = 255).
#[derive(Debug, Clone)]
pub struct PackedShape(Box<[u8]>);

/// [`PackedShape`]'s mark for raw `f64` coordinates.
const RAW: u8 = 255;

/// 10^k for k decimals, 0 to 7.
const SCALES: [f64; 8] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7];

/// `v` × `scale` as an integer, when dividing it by `scale` gives `v` back bit for bit.
fn quantized(v: f64, scale: f64) -> Option<i64> {
    let q = (v * scale).round();
    // Compared through the integer, as decoding computes it (so −0.0 does not hold).
    (q.abs() < 9e15 && ((q as i64) as f64 / scale).to_bits() == v.to_bits()).then_some(q as i64)
}

impl PackedShape {
    /// Packs `mp` (its coordinates given back bit for bit by [`PackedShape::unpack`]) with the
    /// fewest decimals that hold every coordinate (a try that does not hold stops at the first
    /// coordinate that does not: usually the first), raw when none does.
    pub fn pack(mp: &MultiPolygon<f64>) -> PackedShape {
        let packed = (0..SCALES.len()).find_map(|k| Self::write(mp, Some(k))).or_else(|| Self::write(mp, None)).expect("raw coordinates always write");
        PackedShape(packed.into_boxed_slice())
    }

    /// The bytes of `mp` with `k` decimals (`None`: raw); `None` if a coordinate does not hold.
    fn write(mp: &MultiPolygon<f64>, k: Option<usize>) -> Option<Vec<u8>> {
        let mut out = vec![k.map_or(RAW, |k| k as u8)];
        put(&mut out, mp.0.len() as u64);
        let mut prev = [0i64; 2];
        for p in &mp.0 {
            put(&mut out, 1 + p.interiors().len() as u64);
            for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                put(&mut out, ring.0.len() as u64);
                for c in &ring.0 {
                    for (axis, v) in [c.x, c.y].into_iter().enumerate() {
                        match k {
                            Some(k) => {
                                let q = quantized(v, SCALES[k])?;
                                let d = q.wrapping_sub(prev[axis]);
                                put(&mut out, ((d << 1) ^ (d >> 63)) as u64);
                                prev[axis] = q;
                            }
                            None => out.extend_from_slice(&v.to_le_bytes()),
                        }
                    }
                }
            }
        }
        Some(out)
    }

    /// The polygons, decoded; `None` if the bytes are not a packed shape.
    pub fn unpack(&self) -> Option<MultiPolygon<f64>> {
        let (&k, mut b) = self.0.split_first()?;
        let scale = if k == RAW { None } else { Some(*SCALES.get(usize::from(k))?) };
        let mut prev = [0i64; 2];
        let mut coord = |b: &mut &[u8], axis: usize| -> Option<f64> {
            match scale {
                Some(scale) => {
                    let z = get(b)?;
                    prev[axis] = prev[axis].wrapping_add((z >> 1) as i64 ^ -((z & 1) as i64));
                    Some(prev[axis] as f64 / scale)
                }
                None => {
                    let (head, rest) = b.split_first_chunk::<8>()?;
                    *b = rest;
                    Some(f64::from_le_bytes(*head))
                }
            }
        };
        let polygons = get(&mut b)?;
        let mut mp = Vec::new();
        for _ in 0..polygons {
            let mut rings = Vec::new();
            for _ in 0..get(&mut b)? {
                let mut ring = Vec::new();
                for _ in 0..get(&mut b)? {
                    let x = coord(&mut b, 0)?;
                    ring.push(Coord { x, y: coord(&mut b, 1)? });
                }
                rings.push(LineString(ring));
            }
            let mut rings = rings.into_iter();
            mp.push(Polygon::new(rings.next()?, rings.collect()));
        }
        Some(MultiPolygon(mp))
    }
}

impl Shapes {
    /// Parses a GeoJSON FeatureCollection whose features carry `properties.code` (Polygon or
    /// MultiPolygon geometries; others are skipped) and orients its rings.
    /// Errors: `Error::Data`.
    pub fn from_geojson(text: &str) -> Result<Self> {
        let fc: geojson::FeatureCollection = text.parse().map_err(|e| Error::Data(format!("communes.geojson: {e}")))?;
        let mut m = HashMap::new();
        for f in fc.features {
            let code = f.property("code").and_then(|v| v.as_str()).ok_or_else(|| Error::Data("communes.geojson: a feature has no code".into()))?;
            let code = InseeCode::parse(code).map_err(|e| Error::Data(format!("communes.geojson: {e}")))?;
            let Some(g) = f.geometry else { continue };
            let g: geo::Geometry<f64> = (&g.value).try_into().map_err(|e| Error::Data(format!("communes.geojson: {code}: {e}")))?;
            let mp = match g {
                geo::Geometry::MultiPolygon(mp) => mp,
                geo::Geometry::Polygon(p) => MultiPolygon(vec![p]),
                _ => continue,
            };
            m.insert(code, PackedShape::pack(&mp.orient(Direction::Default)));
        }
        Ok(Shapes(m))
    }

    /// The shape of a commune, decoded.
    pub fn get(&self, code: &InseeCode) -> Option<MultiPolygon<f64>> {
        self.0.get(code).and_then(PackedShape::unpack)
    }

    /// Number of shapes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no shape.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Status of a member for one category, as shown on maps and exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MapStatus {
    /// Runs something supported, with no known problem within the horizon.
    UpToDate,
    /// Support or contract ends within the horizon.
    ToRenew,
    /// Past end of support, or failing a regulatory date.
    Unsupported,
    /// Rates what it runs poorly.
    Unreliable,
    /// Runs nothing declared.
    Nothing,
}

impl MapStatus {
    /// All statuses, in legend order.
    pub const ALL: [MapStatus; 5] = [MapStatus::UpToDate, MapStatus::ToRenew, MapStatus::Unsupported, MapStatus::Unreliable, MapStatus::Nothing];

    /// From a member's need (`None`: nothing needed).
    pub fn of(need: Option<&Need>) -> Self {
        match need {
            None => MapStatus::UpToDate,
            Some(Need::EndsSoon { .. } | Need::ContractEnds { .. }) => MapStatus::ToRenew,
            Some(Need::EndOfSupport { .. } | Need::Regulation { .. }) => MapStatus::Unsupported,
            Some(Need::PoorRating { .. }) => MapStatus::Unreliable,
            Some(Need::NoProduct) => MapStatus::Nothing,
        }
    }

    /// French label for legends.
    pub fn label(self) -> &'static str {
        match self {
            MapStatus::UpToDate => "À jour",
            MapStatus::ToRenew => "À renouveler dans l'horizon",
            MapStatus::Unsupported => "Hors support ou non conforme",
            MapStatus::Unreliable => "Jugé peu fiable",
            MapStatus::Nothing => "Aucun produit déclaré",
        }
    }

    /// Fill colour (ColorBrewer PuOr/RdYlGn-like, distinguishable with a legend; text labels
    /// carry the same information for screen readers).
    pub fn colour(self) -> &'static str {
        match self {
            MapStatus::UpToDate => "#1b7837",
            MapStatus::ToRenew => "#e08214",
            MapStatus::Unsupported => "#b2182b",
            MapStatus::Unreliable => "#762a83",
            MapStatus::Nothing => "#bdbdbd",
        }
    }

    /// The SVG pattern drawn over the colour, so that the statuses stay apart in greyscale and
    /// for colour-blind readers: plain, hatched, crossed, dotted, plain light grey.
    fn motif(self) -> &'static str {
        match self {
            MapStatus::UpToDate => "",
            MapStatus::ToRenew => r##"<path d="M0 6L6 0M-1 1L1 -1M5 7L7 5" stroke="#ffffff" stroke-width="1.4"/>"##,
            MapStatus::Unsupported => r##"<path d="M0 0L6 6M6 0L0 6" stroke="#ffffff" stroke-width="1.2"/>"##,
            MapStatus::Unreliable => r##"<circle cx="3" cy="3" r="1.4" fill="#ffffff"/>"##,
            MapStatus::Nothing => "",
        }
    }

    /// A legend swatch: a 16-px inline SVG filled with the status's pattern (decorative: the
    /// legend's text names the status).
    pub fn swatch(self) -> String {
        format!(
            r##"<svg class="pastille" width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" focusable="false"><rect width="16" height="16" fill="url(#motif-{})" stroke="#333333"/></svg>"##,
            self.id()
        )
    }

    /// Identifier used in CSS classes and exports.
    pub fn id(self) -> &'static str {
        match self {
            MapStatus::UpToDate => "up_to_date",
            MapStatus::ToRenew => "to_renew",
            MapStatus::Unsupported => "unsupported",
            MapStatus::Unreliable => "unreliable",
            MapStatus::Nothing => "nothing",
        }
    }
}

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One commune to draw.
pub struct MapItem<'a> {
    /// INSEE code.
    pub code: InseeCode,
    /// Name (escaped when drawn).
    pub name: &'a str,
    /// Status (colour).
    pub status: MapStatus,
    /// Short French detail for the tooltip (escaped when drawn).
    pub detail: String,
    /// Whether its name is written on the map (the caller picks the larger members, so that
    /// names do not overlap; every name stays in the link's label and tooltip).
    pub labelled: bool,
}

/// Margin around the communes on the SVG map, px: wider than half a border's stroke and than a
/// [marker](MARKER_RADIUS_PX), so that nothing drawn at the edge is cut by the viewBox.
pub const MAP_MARGIN_PX: f64 = 8.0;

/// A commune whose shape spans less than this on the SVG map, px, on both axes (the sides of its
/// projected bounding box), is too small to see under its border and gets a marker.
pub const MIN_SHAPE_PX: f64 = 6.0;

/// Radius of the marker drawn over a commune too small to see ([`MIN_SHAPE_PX`]), px: a
/// circle 10 px across, filled with the status's pattern.
pub const MARKER_RADIUS_PX: f64 = 5.0;

/// An inline SVG map of the items, `width` pixels wide (a margin of [`MAP_MARGIN_PX`] on every
/// side included), equirectangular projection around the items' mean latitude, scaled down to
/// the width of the screen; one `<path class="commune">` per item that has a shape, with a
/// `<title>` tooltip, inside a link to the commune's page (`/communes/{code}`, labelled with the
/// name and the status), filled with the status's colour and pattern (`<pattern
/// id="motif-{status}">`, see [`MapStatus::swatch`]), and the names of the items marked
/// `labelled` written on it (`<text class="nom">`). A commune smaller than [`MIN_SHAPE_PX`] on
/// both axes also gets a marker in its link, `<circle class="repere">` of
/// [`MARKER_RADIUS_PX`] at an interior point of its shape, with the same pattern and tooltip;
/// those communes are drawn last, so that their marker stays on top. `title` labels the map (an
/// SVG group of links) for screen readers.
pub fn svg(shapes: &Shapes, items: &[MapItem], title: &str, width: f64) -> String {
    let mut drawn: Vec<(&MapItem, MultiPolygon<f64>)> = items.iter().filter_map(|i| shapes.get(&i.code).map(|s| (i, s))).collect();
    let rects: Vec<_> = drawn.iter().filter_map(|(_, s)| s.bounding_rect()).collect();
    if rects.is_empty() {
        return format!("<p>{}</p>", escape("Pas de contour disponible pour ces communes."));
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for r in &rects {
        x0 = x0.min(r.min().x);
        y0 = y0.min(r.min().y);
        x1 = x1.max(r.max().x);
        y1 = y1.max(r.max().y);
    }
    let k = ((y0 + y1) / 2.0).to_radians().cos();
    let span_x = ((x1 - x0) * k).max(1e-6);
    let span_y = (y1 - y0).max(1e-6);
    let m = MAP_MARGIN_PX;
    let scale = (width - 2.0 * m).max(1.0) / span_x;
    let height = (span_y * scale).ceil() + 2.0 * m;
    // Lon/lat degrees to SVG px, the margin included.
    let px = |c: Coord<f64>| ((c.x - x0) * k * scale + m, (y1 - c.y) * scale + m);
    let tiny = |s: &MultiPolygon<f64>| s.bounding_rect().is_some_and(|r| r.width() * k * scale < MIN_SHAPE_PX && r.height() * scale < MIN_SHAPE_PX);
    // The communes too small to see last (stable: the others keep the callers' order).
    drawn.sort_by_key(|(_, s)| tiny(s));
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="carte" role="group" aria-labelledby="carte-titre" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}"><title id="carte-titre">{}</title><defs>"#,
        escape(title)
    );
    for st in MapStatus::ALL {
        let _ = write!(
            out,
            r#"<pattern id="motif-{}" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="{}"/>{}</pattern>"#,
            st.id(),
            st.colour(),
            st.motif()
        );
    }
    out.push_str("</defs>");
    for (item, shape) in &drawn {
        let mut d = String::new();
        for poly in &shape.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for (j, c) in ring.0.iter().enumerate() {
                    let (x, y) = px(*c);
                    let _ = write!(d, "{}{x:.1} {y:.1}", if j == 0 { "M" } else { "L" });
                }
                d.push('Z');
            }
        }
        let tooltip = format!("<title>{} : {} — {}</title>", escape(item.name), escape(item.status.label()), escape(&item.detail));
        let _ = write!(
            out,
            r##"<a href="/communes/{}" aria-label="{} : {}"><path class="commune {}" data-code="{}" fill="url(#motif-{})" stroke="#ffffff" stroke-width="0.8" fill-rule="evenodd" d="{d}">{tooltip}</path>"##,
            item.code,
            escape(item.name),
            escape(item.status.label()),
            item.status.id(),
            item.code,
            item.status.id(),
        );
        if tiny(shape)
            && let Some(p) = shape.interior_point()
        {
            let (x, y) = px(p.0);
            let _ = write!(
                out,
                r##"<circle class="repere" data-code="{}" cx="{x:.1}" cy="{y:.1}" r="{MARKER_RADIUS_PX}" fill="url(#motif-{})" stroke="#1a1a1a" stroke-width="1">{tooltip}</circle>"##,
                item.code,
                item.status.id(),
            );
        }
        out.push_str("</a>");
    }
    // Names on top of the labelled shapes, at a point inside each (geo's interior point), so
    // that the map reads without hovering.
    for (item, shape) in drawn.iter().filter(|(i, _)| i.labelled) {
        if let Some(p) = shape.interior_point() {
            let (x, y) = px(p.0);
            let _ = write!(
                out,
                r##"<text class="nom" x="{x:.1}" y="{y:.1}" text-anchor="middle" font-size="9" fill="#1a1a1a" stroke="#ffffff" stroke-width="2" paint-order="stroke" pointer-events="none" aria-hidden="true">{}</text>"##,
                escape(item.name)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every coordinate of `mp`, as bits, ring by ring.
    fn bits(mp: &MultiPolygon<f64>) -> Vec<Vec<(u64, u64)>> {
        mp.0.iter()
            .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
            .map(|r| r.0.iter().map(|c| (c.x.to_bits(), c.y.to_bits())).collect())
            .collect()
    }

    #[test]
    fn every_embedded_shape_comes_back_bit_for_bit_in_a_fifth_of_the_memory() {
        let fc: geojson::FeatureCollection = crate::seeds::SHAPES.parse().unwrap();
        let (mut points, mut bytes, mut n) = (0usize, 0usize, 0usize);
        let shapes = crate::seeds::shapes().unwrap();
        for f in fc.features {
            let code = InseeCode::parse(f.property("code").unwrap().as_str().unwrap()).unwrap();
            let g: geo::Geometry<f64> = (&f.geometry.unwrap().value).try_into().unwrap();
            let mp = match g {
                geo::Geometry::MultiPolygon(mp) => mp,
                geo::Geometry::Polygon(p) => MultiPolygon(vec![p]),
                _ => continue,
            }
            .orient(Direction::Default);
            let packed = PackedShape::pack(&mp);
            // 4 decimals, or finer where the importer needed it to stay valid: never raw.
            assert!((4..=7).contains(&packed.0[0]), "{code}: {} decimals", packed.0[0]);
            assert_eq!(bits(&packed.unpack().unwrap()), bits(&mp), "{code}");
            assert_eq!(bits(&shapes.get(&code).unwrap()), bits(&mp), "{code}");
            points += bits(&mp).iter().map(Vec::len).sum::<usize>();
            bytes += packed.0.len();
            n += 1;
        }
        assert_eq!(n, shapes.len());
        // 16 bytes a point as `Coord<f64>`s; packed, 2.3 (187,105 bytes for 83,141 points).
        assert!(bytes * 5 < points * 16, "{bytes} bytes for {points} points");
    }

    #[test]
    fn odd_coordinates_come_back_exactly_too() {
        let ring = |pts: &[(f64, f64)]| LineString(pts.iter().map(|&(x, y)| Coord { x, y }).collect());
        let square = |x: f64, y: f64, d: f64| ring(&[(x, y), (x + d, y), (x + d, y + d), (x, y + d), (x, y)]);
        // Whole degrees (0 decimals), a hole, far apart polygons (large deltas), negative
        // values, 7 decimals; then one coordinate of 9 decimals: the shape is kept raw.
        let cases = [
            (MultiPolygon(vec![Polygon::new(square(-5.0, 48.0, 2.0), vec![]), Polygon::new(square(55.0, -21.0, 1.0), vec![])]), 0),
            (MultiPolygon(vec![Polygon::new(square(-1.5, 47.25, 0.5), vec![square(-1.25, 47.5, 0.125)])]), 3),
            (MultiPolygon(vec![Polygon::new(square(2.1234567, 41.3333333, 0.0000001), vec![])]), 7),
            (MultiPolygon(vec![Polygon::new(ring(&[(0.123456789, 1.0), (1.0, 1.0), (1.0, 0.0), (0.123456789, 1.0)]), vec![])]), RAW),
            (MultiPolygon(vec![Polygon::new(ring(&[(f64::MAX, -0.0), (1e300, 1e-300), (f64::MIN_POSITIVE, 0.0), (f64::MAX, -0.0)]), vec![])]), RAW),
            // −0.0 would come back as 0.0 through an integer.
            (MultiPolygon(vec![Polygon::new(ring(&[(-0.0, 1.5), (1.0, 1.5), (1.0, 0.0), (-0.0, 1.5)]), vec![])]), RAW),
        ];
        for (mp, k) in cases {
            let packed = PackedShape::pack(&mp);
            assert_eq!(packed.0[0], k, "{mp:?}");
            assert_eq!(bits(&packed.unpack().unwrap()), bits(&mp), "{mp:?}");
        }
        // Bytes that are not a packed shape give nothing, not a panic.
        assert!(PackedShape(Box::new([4, 1, 1, 200])).unpack().is_none());
        assert!(PackedShape(Box::new([])).unpack().is_none());
    }

    #[test]
    fn escapes_and_draws_one_path_per_shape() {
        assert_eq!(escape("<a href=\"x\">L'Île & co</a>"), "&lt;a href=&quot;x&quot;&gt;L&#39;Île &amp; co&lt;/a&gt;");
        let shapes = Shapes::from_geojson(
            r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"code":"35001"},"geometry":{"type":"Polygon","coordinates":[[[-1.6,48.1],[-1.5,48.1],[-1.5,48.2],[-1.6,48.1]]]}},
            {"type":"Feature","properties":{"code":"35002"},"geometry":{"type":"Polygon","coordinates":[[[-1.5,48.1],[-1.4,48.1],[-1.4,48.2],[-1.5,48.1]]]}}]}"#,
        )
        .unwrap();
        let items = [
            MapItem { code: InseeCode::parse("35001").unwrap(), name: "A<script>", status: MapStatus::UpToDate, detail: "x".into(), labelled: true },
            MapItem { code: InseeCode::parse("35002").unwrap(), name: "B", status: MapStatus::Nothing, detail: "y".into(), labelled: false },
            MapItem { code: InseeCode::parse("35003").unwrap(), name: "C (no shape)", status: MapStatus::Nothing, detail: "z".into(), labelled: true },
        ];
        let s = svg(&shapes, &items, "Carte", 400.0);
        assert_eq!(s.matches("<path class=\"commune").count(), 2);
        assert_eq!(s.matches("<text class=\"nom\"").count(), 1, "the labelled shape named");
        assert!(s.contains(">A&lt;script&gt;</text>") && !s.contains("<script>") && !s.contains(">B</text>"));
        assert!(s.contains("<a href=\"/communes/35002\" aria-label=\"B : Aucun produit déclaré\">"));
        assert!(s.contains("#1b7837") && s.contains("#bdbdbd"));
        assert!(s.contains("fill=\"url(#motif-up_to_date)\"") && s.contains("<pattern id=\"motif-unsupported\""));
    }

    /// The numbers of the `d` attributes of the commune paths of `svg`, as (x, y) px, with the
    /// code of each path.
    fn path_points(svg: &str) -> Vec<(String, f64, f64)> {
        let mut out = Vec::new();
        for part in svg.split("<path class=\"commune").skip(1) {
            let code = part.split("data-code=\"").nth(1).unwrap()[..5].to_string();
            let d = part.split(" d=\"").nth(1).unwrap();
            let d = &d[..d.find('"').unwrap()];
            for seg in d.split(['M', 'L', 'Z']).filter(|t| !t.is_empty()) {
                let (x, y) = seg.split_once(' ').unwrap();
                out.push((code.clone(), x.parse().unwrap(), y.parse().unwrap()));
            }
        }
        out
    }

    fn view_box(svg: &str) -> Vec<f64> {
        let v = svg.split("viewBox=\"").nth(1).unwrap();
        v[..v.find('"').unwrap()].split(' ').map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn a_tiny_commune_gets_a_marker_drawn_last_and_a_margin_keeps_borders_inside() {
        // A commune 0.5° × 0.3° and one 0.0002° across (about 15 m, 0.01 px at this scale).
        let shapes = Shapes::from_geojson(
            r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"code":"29001"},"geometry":{"type":"Polygon","coordinates":[[[-4.5,48.0],[-4.0,48.0],[-4.0,48.3],[-4.5,48.3],[-4.5,48.0]]]}},
            {"type":"Feature","properties":{"code":"29002"},"geometry":{"type":"Polygon","coordinates":[[[-4.0,48.1],[-3.9998,48.1],[-3.9998,48.1002],[-4.0,48.1]]]}}]}"#,
        )
        .unwrap();
        let items = [
            MapItem { code: InseeCode::parse("29002").unwrap(), name: "Petite", status: MapStatus::ToRenew, detail: "x".into(), labelled: false },
            MapItem { code: InseeCode::parse("29001").unwrap(), name: "Grande", status: MapStatus::UpToDate, detail: "y".into(), labelled: true },
        ];
        let s = svg(&shapes, &items, "Carte", 400.0);
        // Shapes span 400 - 2 × 8 px across; the viewBox is 8 px larger on every side.
        let vb = view_box(&s);
        let pts = path_points(&s);
        let (min_x, max_x) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (min_y, max_y) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.2), b.max(p.2)));
        let k = 48.15f64.to_radians().cos();
        let h = (0.3 * 384.0 / (0.5 * k)).ceil() + 16.0;
        assert_eq!(vb, vec![0.0, 0.0, 400.0, h]);
        assert_eq!((min_x, max_x, min_y), (8.0, 392.0, 8.0));
        assert!((vb[3] - 9.0..=vb[3] - 8.0).contains(&max_y), "{max_y} in a viewBox {h} high");
        // The tiny commune keeps its path and link, and gets a circle 10 px across with its
        // status's pattern and tooltip, drawn after the large one (on top).
        let tiny = &s[s.find("<a href=\"/communes/29002\"").unwrap()..];
        let tiny = &tiny[..tiny.find("</a>").unwrap()];
        assert!(tiny.contains("<path class=\"commune to_renew\" data-code=\"29002\""));
        assert!(tiny.contains(&format!("r=\"{MARKER_RADIUS_PX}\" fill=\"url(#motif-to_renew)\"")) && MARKER_RADIUS_PX >= 5.0);
        assert_eq!(tiny.matches("<title>Petite : À renouveler dans l&#39;horizon — x</title>").count(), 2, "path and marker");
        assert_eq!(s.matches("<circle class=\"repere\"").count(), 1, "no marker on the large commune");
        assert!(s.find("/communes/29001").unwrap() < s.find("/communes/29002").unwrap(), "the tiny one drawn last");
    }

    #[test]
    fn the_margin_keeps_hoedic_at_the_edge_of_its_epci_map_inside() {
        // Auray Quiberon Terre Atlantique (200043123): Hœdic (56085) is its southernmost commune.
        let shapes = crate::seeds::shapes().unwrap();
        let members: Vec<InseeCode> =
            crate::seeds::SEEDS[2].lines().filter_map(|l| l.strip_prefix("200043123,")).map(|l| InseeCode::parse(&l[..5]).unwrap()).collect();
        assert_eq!(members.len(), 24);
        let items: Vec<MapItem> =
            members.iter().map(|&code| MapItem { code, name: "x", status: MapStatus::Nothing, detail: String::new(), labelled: false }).collect();
        let s = svg(&shapes, &items, "AQTA", 720.0);
        let vb = view_box(&s);
        let pts = path_points(&s);
        let lowest = pts.iter().max_by(|a, b| a.2.total_cmp(&b.2)).unwrap();
        assert_eq!(lowest.0, "56085", "Hœdic is the lowest on the map");
        assert!(lowest.2 <= vb[3] - MAP_MARGIN_PX && lowest.2 >= vb[3] - MAP_MARGIN_PX - 1.0, "{} in {vb:?}", lowest.2);
        assert_eq!(pts.iter().map(|p| p.1).fold(f64::MAX, f64::min), MAP_MARGIN_PX);
        assert_eq!(pts.iter().map(|p| p.1).fold(f64::MIN, f64::max), 720.0 - MAP_MARGIN_PX);
        assert_eq!(pts.iter().map(|p| p.2).fold(f64::MAX, f64::min), MAP_MARGIN_PX);
        let markers: Vec<&str> = s.split("<circle class=\"repere\" data-code=\"").skip(1).map(|r| &r[..5]).collect();
        assert_eq!(markers, Vec::<&str>::new());
    }
}
