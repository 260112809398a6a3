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

/// A round step for four grid lines over `max`: 1, 2 or 5 times a power
/// of ten (whole numbers for counts), and the axis' top, four steps up.
fn axis(max: f64, money: bool) -> (f64, f64) {
    let raw = (max / 4.0).max(if money { 1e-6 } else { 1.0 });
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= raw * 0.999_999)
        .unwrap_or(10.0 * p);
    (step, step * 4.0)
}

fn short(v: f64, money: bool) -> String {
    let s = if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if money && v > 0.0 && v < 0.01 {
        // Small spends read as what they are, not as $0.00.
        format!("{:.4}", v).trim_end_matches('0').to_owned()
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
    let (w, h, left, bottom, top) = (560.0, 240.0, 76.0, 32.0, 12.0);
    let n = values.len().max(1) as f64;
    let (step, max) = axis(values.iter().cloned().fold(0.0, f64::max), money);
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
        let v = step * f64::from(i);
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
                y = h - 6.0,
                // A day without its year (12-07); a month as it is (2026-12).
                l = esc(if l.len() == 10 { &l[5..] } else { l }),
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
        // Whole steps for counts, a round top.
        assert_eq!(axis(4.0, false), (1.0, 4.0));
        assert_eq!(axis(5.0, false), (2.0, 8.0));
        assert_eq!(axis(0.0, false), (1.0, 4.0));
        assert_eq!(axis(130.0, false), (50.0, 200.0));
        assert_eq!(short(0.000_42, true), "$0.0004");
        assert!(svg.contains(">3<") && !svg.contains(">2.5<"));
        assert!(bars("Spend", &labels, &[0.5, 0.0, 0.25], true).contains("$0.75 in all"));
    }
}
