//! A self-contained HTML page: summary table, ratios, and inline SVG charts.

use super::svg::{Chart, PALETTE, Series, esc, quantile_ticks, quantile_x, render as render_svg};
use super::{Report, fmt_num};
use crate::scenario::Plan;
use std::fmt::Write as _;

/// The latency shown in charts and the throughput measure, by scenario.
fn focus(plan: &Plan) -> (&'static str, bool, &'static str) {
    match plan {
        Plan::Idle(_) => ("handshake", true, "connections/s"),
        Plan::ConnectStorm(_) => ("handshake", true, "connections/s"),
        Plan::Upstream(_) => ("rtt", false, "messages/s"),
        Plan::Ready(_) => ("rtt", false, "replies and pushes/s"),
        Plan::Push(_) | Plan::Fanout(_) => ("delivery", false, "deliveries/s"),
    }
}

fn color(i: usize) -> String {
    PALETTE[i % PALETTE.len()].to_owned()
}

/// Renders the page.
pub fn render(r: &Report) -> String {
    let (lat_name, conn_side, tput) = focus(&r.plan);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>wsgate-load {}</title><style>\
body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0 20px}}\
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}\
pre{{background:#f6f6f6;padding:8px;overflow:auto}}.charts svg{{display:block;margin:10px 0}}</style></head><body>",
        esc(&r.scenario)
    );
    let _ = write!(
        h,
        "<h1>wsgate-load: {}</h1><p>version {} · {} CPUs · open-files limit {} · kernel {} · started {} (Unix ms)</p>",
        esc(&r.scenario),
        esc(&r.version),
        r.machine.cpus,
        r.machine.nofile_limit,
        esc(&r.machine.kernel),
        r.started_unix_ms
    );

    // Summary table.
    let mut keys: Vec<&String> = r.targets.iter().flat_map(|t| t.summary.keys()).collect();
    keys.sort();
    keys.dedup();
    h.push_str("<h2>Summary</h2><table><tr><th>metric</th>");
    for t in &r.targets {
        let _ = write!(h, "<th>{}</th>", esc(&t.name));
    }
    for ra in &r.ratios {
        let _ = write!(h, "<th>{} / {}</th>", esc(&ra.target), esc(&ra.baseline));
    }
    h.push_str("</tr>");
    for k in keys {
        let _ = write!(h, "<tr><td>{}</td>", esc(k));
        for t in &r.targets {
            let v = t
                .summary
                .get(k)
                .map_or_else(|| "-".to_owned(), |v| fmt_num(*v));
            let _ = write!(h, "<td>{v}</td>");
        }
        for ra in &r.ratios {
            let v = ra
                .metrics
                .get(k)
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}×"));
            let _ = write!(h, "<td>{v}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    // Charts.
    h.push_str("<h2>Charts</h2><div class=\"charts\">");
    let mut tput_series = Vec::new();
    let mut lat_series = Vec::new();
    let mut open_series = Vec::new();
    let mut curve_series = Vec::new();
    for (i, t) in r.targets.iter().enumerate() {
        let c = color(i);
        tput_series.push(Series {
            label: t.name.clone(),
            points: t
                .timeline
                .iter()
                .map(|p| {
                    (
                        p.t_s,
                        if conn_side {
                            p.conns_per_s
                        } else {
                            p.ops_per_s
                        },
                    )
                })
                .collect(),
            color: c.clone(),
            dashed: false,
        });
        for (q, dashed, f) in [
            (
                "p50",
                true,
                (|l: &crate::hist::LatSummary| l.p50_us) as fn(&crate::hist::LatSummary) -> u64,
            ),
            ("p99", false, |l| l.p99_us),
            ("p99.9", false, |l| l.p999_us),
        ] {
            let pts: Vec<(f64, f64)> = t
                .timeline
                .iter()
                .filter_map(|p| {
                    let l = if conn_side { &p.conn_lat } else { &p.lat };
                    (l.count > 0).then(|| (p.t_s, f(l) as f64 / 1e3))
                })
                .collect();
            lat_series.push(Series {
                label: format!("{} {q}", t.name),
                points: pts,
                color: if q == "p99.9" {
                    format!("{c}99")
                } else {
                    c.clone()
                },
                dashed,
            });
        }
        open_series.push(Series {
            label: t.name.clone(),
            points: t.timeline.iter().map(|p| (p.t_s, p.open as f64)).collect(),
            color: c.clone(),
            dashed: false,
        });
        if let Some(cv) = t.curves.get(lat_name) {
            curve_series.push(Series {
                label: t.name.clone(),
                points: cv
                    .iter()
                    .map(|(q, us)| (quantile_x(*q), *us as f64 / 1e3))
                    .collect(),
                color: c.clone(),
                dashed: false,
            });
        }
    }
    let charts = [
        Chart {
            title: format!("Throughput over time ({tput})"),
            x_label: "seconds since the target's run started".into(),
            y_label: tput.into(),
            series: tput_series,
            x_ticks: None,
        },
        Chart {
            title: format!("{lat_name} latency percentiles over time (ms)"),
            x_label: "seconds since the target's run started".into(),
            y_label: "ms".into(),
            series: lat_series,
            x_ticks: None,
        },
        Chart {
            title: format!("{lat_name} latency by percentile, measurement window (ms)"),
            x_label: "percentile".into(),
            y_label: "ms".into(),
            series: curve_series,
            x_ticks: Some(quantile_ticks()),
        },
        Chart {
            title: "Open connections".into(),
            x_label: "seconds since the target's run started".into(),
            y_label: "connections".into(),
            series: open_series,
            x_ticks: None,
        },
    ];
    for c in &charts {
        h.push_str(&render_svg(c));
    }
    h.push_str("</div>");

    // Details.
    for t in &r.targets {
        let _ = write!(
            h,
            "<h2>{}</h2><p>{} loop · {} worker process(es) · window {:.2} s · nodes: {}</p>",
            esc(&t.name),
            esc(&t.loop_mode),
            t.workers,
            t.window_s,
            esc(&t
                .nodes
                .iter()
                .map(|n| format!("{} (callback {})", n.ws_url, n.callback_url))
                .collect::<Vec<_>>()
                .join(", "))
        );
        h.push_str("<table><tr><th>latency</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>");
        for (k, l) in &t.latency {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                esc(k),
                l.count,
                l.p50_us as f64 / 1e3,
                l.p90_us as f64 / 1e3,
                l.p99_us as f64 / 1e3,
                l.p999_us as f64 / 1e3,
                l.max_us as f64 / 1e3
            );
        }
        h.push_str("</table>");
        let extra = serde_json::json!({
            "counters": t.counters, "errors": t.errors, "backend": t.backend, "server": t.server, "notes": t.notes,
        });
        let _ = write!(
            h,
            "<pre>{}</pre>",
            esc(&serde_json::to_string_pretty(&extra).unwrap_or_default())
        );
    }
    let _ = write!(
        h,
        "<h2>Plan</h2><pre>{}</pre><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(&r.plan).unwrap_or_default()),
        esc(&serde_json::to_string_pretty(&r.settings).unwrap_or_default())
    );
    h
}
