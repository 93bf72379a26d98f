//! The budget burn-down chart, drawn by the server as inline SVG: the
//! remaining error budget from the start of the SLO's window to now, on the
//! window's whole width, so the part still to come stays visible.

use maud::{html, Markup};

use crate::model::time::Millis;

const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 110.0;
const LEFT: f64 = 38.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 18.0;
/// Budgets far overspent are drawn at this floor (the table has the value).
const FLOOR: f64 = -2.0;

/// One point: the instant and the remaining budget over [window start, it).
pub type Point = (Millis, f64);

/// Sample instants over [from, min(to, now)]: `steps` equal steps of the
/// window, cut at now, and now itself.
pub fn sample_instants(from: Millis, to: Millis, now: Millis, steps: i64) -> Vec<Millis> {
    let end = to.min(now);
    if end <= from || steps <= 0 {
        return Vec::new();
    }
    let mut out: Vec<Millis> = (1..=steps)
        .map(|i| from + (to - from) * i / steps)
        .filter(|t| *t < end)
        .collect();
    out.push(end);
    out
}

/// The chart of `points` (remaining budget, 1 = untouched) over [from, to).
pub fn burn_down(label: &str, from: Millis, to: Millis, points: &[Point]) -> Markup {
    let lowest = points
        .iter()
        .map(|p| p.1)
        .fold(0.0_f64, f64::min)
        .max(FLOOR);
    let y_min = if lowest < 0.0 { lowest.floor() } else { 0.0 };
    let span = (to - from).max(1) as f64;
    let x = |t: Millis| LEFT + (t - from) as f64 / span * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| {
        let v = v.clamp(y_min, 1.0);
        TOP + (1.0 - v) / (1.0 - y_min) * (HEIGHT - TOP - BOTTOM)
    };
    let line: String = std::iter::once((from, 1.0))
        .chain(points.iter().copied())
        .map(|(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect::<Vec<_>>()
        .join(" ");
    let last = points.last().map(|p| p.1);
    let colour = match last {
        Some(v) if v < 0.0 => "#c62828",
        Some(v) if v < 0.25 => "#b26a00",
        _ => "#1a7f37",
    };
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
            viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) }
            rect x=(LEFT) y=(TOP) width=(WIDTH - LEFT - RIGHT) height=(HEIGHT - TOP - BOTTOM)
                fill="#f5f7f9" {}
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(0.0)) y2=(y(0.0)) stroke="#9aa4ae"
                stroke-dasharray="3 3" {}
            text x="2" y=(y(1.0) + 4.0) { "100%" }
            text x="14" y=(y(0.0) + 4.0) { "0%" }
            @if y_min < 0.0 {
                text x="2" y=(y(y_min) + 4.0) { (format!("{:.0}%", y_min * 100.0)) }
            }
            text x=(LEFT) y=(HEIGHT - 4.0) { "window start" }
            text x=(WIDTH - RIGHT) y=(HEIGHT - 4.0) text-anchor="end" { "end" }
            @if !points.is_empty() {
                polyline points=(line) fill="none" stroke=(colour) stroke-width="2" {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stop_at_now_and_end_on_it() {
        assert_eq!(sample_instants(0, 100, 35, 10), vec![10, 20, 30, 35]);
        assert_eq!(sample_instants(0, 100, 500, 4), vec![25, 50, 75, 100]);
        assert!(sample_instants(0, 100, 0, 4).is_empty());
    }

    #[test]
    fn an_overspent_budget_is_drawn_below_zero_within_the_frame() {
        let svg = burn_down("b", 0, 100, &[(50, 0.5), (100, -7.0)]).into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("-200%"), "floor label: {svg}");
        assert!(svg.contains("#c62828"));
        let empty = burn_down("b", 0, 100, &[]).into_string();
        assert!(!empty.contains("polyline"));
    }
}
