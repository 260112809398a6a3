//! Bar charts drawn on the server as SVG: no script, no external asset,
//! readable by a screen reader (a title and a description naming the
//! figures; each bar has its own title too), and the page shows the same
//! figures in a table beside it.

use std::fmt::Write;

/// Escapes text for SVG (the labels come from the store: model names).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round upper bound for the axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

fn short(v: f64, money: bool) -> String {
    let s = if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if money && v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    };
    if money {
        format!("${s}")
    } else {
        s
    }
}

/// A bar per day (`labels` like `2026-12-07`), with `title` for a screen
/// reader; `money` writes values as USD.
pub fn bars(title: &str, labels: &[String], values: &[f64], money: bool) -> String {
    let (w, h, left, bottom, top) = (640.0, 220.0, 56.0, 28.0, 12.0);
    let n = values.len().max(1) as f64;
    let max = nice_max(values.iter().cloned().fold(0.0, f64::max));
    let plot_w = w - left - 8.0;
    let plot_h = h - bottom - top;
    let slot = plot_w / n;
    let total: f64 = values.iter().sum();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="c-{id}-t c-{id}-d" preserveAspectRatio="xMidYMid meet"><title id="c-{id}-t">{t}</title><desc id="c-{id}-d">{t}: {total} in all over {n} days, at most {peak} in a day.</desc>"#,
        id = title
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>(),
        t = esc(title),
        total = short(total, money),
        n = values.len(),
        peak = short(values.iter().cloned().fold(0.0, f64::max), money),
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = top + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{left}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = w - 8.0,
            tx = left - 6.0,
            ty = y + 4.0,
            label = short(v, money),
        );
    }
    for (i, v) in values.iter().enumerate() {
        let bh = if max > 0.0 { plot_h * v / max } else { 0.0 };
        let x = left + slot * i as f64 + slot * 0.15;
        let y = top + plot_h - bh;
        let label = labels.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}"><title>{l}: {val}</title></rect>"#,
            bw = slot * 0.7,
            l = esc(label),
            val = short(*v, money),
        );
    }
    // Dates under the first, middle and last bars.
    let picks = [0, values.len() / 2, values.len().saturating_sub(1)];
    for (k, &i) in picks.iter().enumerate() {
        if let Some(l) = labels.get(i) {
            let x = left + slot * i as f64 + slot / 2.0;
            let anchor = ["start", "middle", "end"][k];
            let _ = write!(
                svg,
                r#"<text class="axis" x="{x:.1}" y="{y}" text-anchor="{anchor}">{l}</text>"#,
                y = h - 8.0,
                l = esc(l.get(5..).unwrap_or(l)),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_labelled_and_escaped() {
        let labels: Vec<String> = (1..=3).map(|d| format!("2026-12-0{d}")).collect();
        let svg = bars("Requests <by day>", &labels, &[1.0, 4.0, 0.0], false);
        assert!(svg.contains("<title id=\"c-requests--by-day--t\">Requests &lt;by day&gt;</title>"));
        assert!(svg.contains("5 in all over 3 days, at most 4 in a day"));
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("<title>2026-12-02: 4</title>"));
        assert!(svg.contains(">12-01<") && svg.contains(">12-03<"));
        assert_eq!(nice_max(4.0), 5.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert!(bars("Spend", &labels, &[0.5, 0.0, 0.25], true).contains("$0.75 in all"));
    }
}
