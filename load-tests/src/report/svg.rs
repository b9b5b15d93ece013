//! A small line-chart renderer producing standalone SVG (no scripts, no external resources).

use std::fmt::Write as _;

/// Colours of successive targets.
pub const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One line.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
    /// Stroke colour.
    pub color: String,
    /// Dashed stroke.
    pub dashed: bool,
}

/// A chart.
pub struct Chart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub series: Vec<Series>,
    /// Fixed x ticks `(x, label)`; automatic when `None`.
    pub x_ticks: Option<Vec<(f64, String)>>,
}

const W: f64 = 760.0;
const H: f64 = 330.0;
const L: f64 = 72.0;
const R: f64 = 34.0;
const T: f64 = 34.0;
const B: f64 = 46.0;

/// Escapes text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_step(range: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let n = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

fn tick_label(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders `c` as an `<svg>` element.
pub fn render(c: &Chart) -> String {
    let pts = c
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let ystep = nice_step(if y1 > 0.0 { y1 } else { 1.0 });
    let ymax = ((y1 / ystep).ceil() * ystep).max(ystep);
    let pw = W - L - R;
    let ph = H - T - B;
    let sx = |x: f64| L + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| T + ph - (y / ymax) * ph;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>"##
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="18" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(&c.title)
    );
    // Y grid and ticks.
    let mut v = 0.0;
    while v <= ymax + ystep * 0.01 {
        let y = sy(v);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0,
            tick_label(v)
        );
        v += ystep;
    }
    // X ticks.
    let xt: Vec<(f64, String)> = match &c.x_ticks {
        Some(t) => t.clone(),
        None => {
            let step = nice_step(x1 - x0);
            let mut out = Vec::new();
            let mut x = (x0 / step).ceil() * step;
            while x <= x1 + step * 0.01 {
                out.push((x, tick_label(x)));
                x += step;
            }
            out
        }
    };
    for (x, label) in xt
        .iter()
        .filter(|(x, _)| *x >= x0 - 1e-9 && *x <= x1 + 1e-9)
    {
        let px = sx(*x);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" y1="{T}" x2="{px:.1}" y2="{:.1}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            T + ph,
            T + ph + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        L + pw / 2.0,
        H - 8.0,
        esc(&c.x_label)
    );
    let _ = write!(
        s,
        r#"<text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
        T + ph / 2.0,
        T + ph / 2.0,
        esc(&c.y_label)
    );
    for ser in &c.series {
        let path: Vec<String> = ser
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        if path.is_empty() {
            continue;
        }
        let dash = if ser.dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.8"{dash} points="{}"/>"#,
            esc(&ser.color),
            path.join(" ")
        );
        if path.len() == 1 {
            let (x, y) = ser.points[0];
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                sx(x),
                sy(y),
                esc(&ser.color)
            );
        }
    }
    // Legend.
    for (i, ser) in c.series.iter().enumerate() {
        let y = T + 12.0 + i as f64 * 15.0;
        let x = L + 10.0;
        let dash = if ser.dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            x + 22.0,
            esc(&ser.color),
            x + 27.0,
            y + 4.0,
            esc(&ser.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// X position of quantile `q` in a percentile-distribution chart: `log10(1 / (1 − q))`.
pub fn quantile_x(q: f64) -> f64 {
    -(1.0 - q.min(0.999_999)).log10()
}

/// Ticks for a percentile-distribution chart.
pub fn quantile_ticks() -> Vec<(f64, String)> {
    [
        (0.0, "0%"),
        (0.5, "50%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ]
    .iter()
    .map(|(q, l)| (quantile_x(*q), (*l).to_owned()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_well_formed_svg() {
        let c = Chart {
            title: "a < b".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                label: "raw".into(),
                points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN)],
                color: PALETTE[0].into(),
                dashed: false,
            }],
            x_ticks: None,
        };
        let s = render(&c);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("a &lt; b"));
        assert!(s.contains("<polyline"));
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn quantile_axis_is_logarithmic() {
        assert!((quantile_x(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(quantile_ticks().len(), 7);
    }
}
