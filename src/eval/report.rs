//! Reports built from the per-image records: `per_image.json`, `per_image.csv`,
//! `summary.md`, `summary.json`, PNG plots under `plots/` and `report.html`.
//!
//! Everything here is a function of the records and the settings alone, so a merged set of
//! shards yields the same reports as one unsharded run.

use crate::IoContext;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::plots::{self, five_numbers};
use super::{removal_metric_name, shard, slug, write_atomic, MAPS_DIR, RESULTS_DIR};
use crate::explain::report::save_png;
use crate::Result;

/// Every record in `out/results`, sorted by image id.
pub fn load_records(out: &Path) -> Result<Vec<Value>> {
    let mut records = Vec::new();
    for file in shard::record_files(&out.join(RESULTS_DIR))? {
        let text = std::fs::read_to_string(&file).at(&file)?;
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            records.push(v);
        }
    }
    records.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(records)
}

/// The scalar metrics reported per configuration, in table order.
pub fn metric_names(settings: &Value) -> Vec<String> {
    let mut names = vec!["off_box_ratio".to_string(), "map_fraction".to_string()];
    for level in settings["removal_levels"].as_array().into_iter().flatten() {
        names.push(removal_metric_name(level.as_f64().unwrap_or(0.0)));
    }
    names.extend(
        [
            "saliency_metric",
            "crop_prob",
            "prob_with_map",
            "stability_pearson",
            "stability_iou",
        ]
        .map(String::from),
    );
    names
}

fn config_names(settings: &Value) -> Vec<String> {
    settings["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect()
}

/// The values of `metric` for `config` over the scored images.
fn values(records: &[Value], config: &str, metric: &str) -> Vec<f64> {
    records
        .iter()
        .filter(|r| r["status"] == "ok")
        .filter_map(|r| r["configs"][config][metric].as_f64())
        .collect()
}

fn images(n: usize) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}

/// A plot title and a y-axis label for a per-configuration metric.
fn metric_description(metric: &str) -> (String, &'static str) {
    if let Some(level) = metric.strip_prefix("removal_f") {
        return (
            format!("Smallest removed fraction reaching a {level}% score drop (lower is better)"),
            "fraction of pixels removed",
        );
    }
    let (title, y) = match metric {
        "off_box_ratio" => (
            "Off-box ratio of the MAP mask (lower is better)",
            "share of pixels outside the boxes marked important",
        ),
        "map_fraction" => (
            "Share of the image the MAP mask marks important",
            "fraction of pixels",
        ),
        "saliency_metric" => (
            "Dabkowski & Gal saliency metric (lower is better)",
            "log(max(area, 0.05)) - log p(class | tight crop)",
        ),
        "crop_prob" => (
            "True-class probability of the MAP mask's tight crop",
            "probability",
        ),
        "prob_with_map" => (
            "True-class probability with the MAP mask applied (SSR keeps it, SDR drops it)",
            "probability",
        ),
        "stability_pearson" => (
            "Seed stability: Pearson correlation of maps (higher is better)",
            "correlation",
        ),
        "stability_iou" => (
            "Seed stability: IoU of MAP masks (higher is better)",
            "intersection over union",
        ),
        other => return (other.to_string(), "value"),
    };
    (title.to_string(), y)
}

/// Write every report into `out` and return the HTML report's path.
pub fn write_reports(out: &Path, settings: &Value) -> Result<PathBuf> {
    let records = load_records(out)?;
    let configs = config_names(settings);
    let metrics = metric_names(settings);
    write_atomic(
        &out.join("per_image.json"),
        &serde_json::to_string_pretty(&records).expect("JSON"),
    )?;
    write_atomic(&out.join("per_image.csv"), &csv(&records, &configs, &metrics))?;

    let count = |s: &str| records.iter().filter(|r| r["status"] == s).count();
    let config_errors = |c: &str| {
        records
            .iter()
            .filter(|r| r["configs"][c]["status"] == "error")
            .count()
    };
    let mut summary = json!({
        "images": records.len(),
        "scored": count("ok"),
        "misclassified": count("misclassified"),
        "failed_images": count("error"),
        "configs": {},
    });
    for c in &configs {
        let mut per = serde_json::Map::new();
        for m in &metrics {
            if let Some(s) = five_numbers(&values(&records, c, m)) {
                per.insert(
                    m.clone(),
                    json!({"n": s.n, "mean": s.mean, "median": s.median, "q1": s.q1, "q3": s.q3, "min": s.min, "max": s.max}),
                );
            }
        }
        per.insert("failures".into(), json!(config_errors(c)));
        if let Some(curve) = mean_curve(&records, c, settings) {
            per.insert("mean_removal_curve".into(), json!(curve));
        }
        summary["configs"][c] = Value::Object(per);
    }
    let quality = infill_quality_summary(&records, settings);
    summary["infill_quality"] = quality.clone();
    write_atomic(
        &out.join("summary.json"),
        &serde_json::to_string_pretty(&summary).expect("JSON"),
    )?;
    let markdown = markdown(&summary, &configs, &metrics, settings);
    write_atomic(&out.join("summary.md"), &markdown)?;

    let plot_dir = out.join("plots");
    std::fs::create_dir_all(&plot_dir).at(&plot_dir)?;
    let mut plot_files = Vec::new();
    let scored = summary["scored"].as_u64().unwrap_or(0) as usize;
    for m in &metrics {
        let samples: Vec<Vec<f64>> = configs.iter().map(|c| values(&records, c, m)).collect();
        if samples.iter().all(|s| s.is_empty()) {
            continue;
        }
        let (title, y) = metric_description(m);
        let title = format!("{title}, {}", images(scored));
        let labels = plots::Labels {
            title: &title,
            x: "configuration",
            y,
        };
        let file = format!("box_{m}.png");
        save_png(
            &plots::box_plot(labels, &configs, &samples),
            &plot_dir.join(&file),
        )?;
        plot_files.push((
            format!("{title} (box: quartiles; line: median; cross: mean; whiskers: range)"),
            file,
        ));
    }
    let curves: Vec<Vec<(f64, f64)>> = configs
        .iter()
        .map(|c| mean_curve(&records, c, settings).unwrap_or_default())
        .collect();
    if curves.iter().any(|c| !c.is_empty()) {
        let title = format!(
            "Pixel removal (the faster the rise, the better), mean of {}",
            images(scored)
        );
        let labels = plots::Labels {
            title: &title,
            x: "fraction of pixels removed, most important first",
            y: "normalised score drop (s(x) - s(x_f)) / (s(x) - s(x_all_removed))",
        };
        save_png(
            &plots::line_plot(labels, &configs, &curves),
            &plot_dir.join("removal_curves.png"),
        )?;
        plot_files.push((title, "removal_curves.png".into()));
    }
    let rates: Vec<f64> = settings["infill_drop_rates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let fillers: Vec<String> = quality
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if !fillers.is_empty() {
        for (k, rate) in rates.iter().enumerate() {
            let samples: Vec<Vec<f64>> = fillers.iter().map(|f| quality_values(&records, f, k)).collect();
            let file = format!("infill_quality_{:02}.png", (rate * 100.0).round() as i64);
            let title = format!(
                "In-filler quality, {:.0}% of pixels dropped at random, {} (higher is better)",
                rate * 100.0,
                images(scored)
            );
            let labels = plots::Labels {
                title: &title,
                x: "in-filler",
                y: "true-class probability after in-filling",
            };
            save_png(
                &plots::box_plot(labels, &fillers, &samples),
                &plot_dir.join(&file),
            )?;
            plot_files.push((title, file));
        }
        // The means are already in the summary.
        let curves: Vec<Vec<(f64, f64)>> = fillers
            .iter()
            .map(|f| {
                rates
                    .iter()
                    .enumerate()
                    .filter_map(|(k, &rate)| Some((rate, quality[f][k]["mean"].as_f64()?)))
                    .collect()
            })
            .collect();
        let title = format!(
            "In-filler quality under random pixel masks, mean of {}",
            images(scored)
        );
        let labels = plots::Labels {
            title: &title,
            x: "fraction of pixels dropped and in-filled",
            y: "true-class probability (higher is better)",
        };
        save_png(
            &plots::line_plot(labels, &fillers, &curves),
            &plot_dir.join("infill_quality.png"),
        )?;
        plot_files.push((title, "infill_quality.png".into()));
    }
    let examples = settings["examples"].as_u64().unwrap_or(8) as usize;
    let rows: Vec<(String, Vec<Option<image::RgbImage>>)> = records
        .iter()
        .filter(|r| r["status"] == "ok")
        .take(examples)
        .map(|r| {
            let stem = r["stem"].as_str().unwrap_or("");
            let label = format!("{}, class {}", r["id"].as_str().unwrap_or(""), r["label"]);
            let pictures = configs
                .iter()
                .map(|c| {
                    let path = out.join(MAPS_DIR).join(slug(c)).join(stem).join("overlay.png");
                    image::open(path).ok().map(|p| p.to_rgb8())
                })
                .collect();
            (label, pictures)
        })
        .collect();
    if !rows.is_empty() {
        save_png(
            &plots::picture_grid(&configs, &rows, 160),
            &plot_dir.join("examples.png"),
        )?;
        plot_files.push((
            format!(
                "Maps over the input (red: important), first {} scored images",
                rows.len()
            ),
            "examples.png".into(),
        ));
    }
    let html = html(
        out,
        &records,
        &configs,
        &fillers,
        &markdown,
        &plot_files,
        settings,
    );
    let path = out.join("report.html");
    write_atomic(&path, &html)?;
    Ok(path)
}

/// Mean normalised drop at each removal fraction over the images where it is defined.
fn mean_curve(records: &[Value], config: &str, settings: &Value) -> Option<Vec<(f64, f64)>> {
    let fractions: Vec<f64> = settings["removal_fractions"]
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let curves: Vec<Vec<f64>> = records
        .iter()
        .filter(|r| r["status"] == "ok")
        .filter_map(|r| r["configs"][config]["removal_drops"].as_array().cloned())
        .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
        .filter(|v: &Vec<f64>| v.len() == fractions.len())
        .collect();
    if curves.is_empty() {
        return None;
    }
    // Removing nothing drops nothing: the curve starts at the origin.
    let mut curve = vec![(0.0, 0.0)];
    curve.extend(
        fractions
            .iter()
            .enumerate()
            .filter(|(_, &f)| f > 0.0)
            .map(|(k, &f)| (f, curves.iter().map(|c| c[k]).sum::<f64>() / curves.len() as f64)),
    );
    Some(curve)
}

/// The true-class probabilities of `filler` at the `k`-th drop rate over the scored images.
fn quality_values(records: &[Value], filler: &str, k: usize) -> Vec<f64> {
    records
        .iter()
        .filter(|r| r["status"] == "ok")
        .filter_map(|r| r["infill_quality"][filler][k].as_f64())
        .collect()
}

fn infill_quality_summary(records: &[Value], settings: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for f in settings["infill_quality"].as_array().into_iter().flatten() {
        let Some(f) = f.as_str() else { continue };
        let rates = settings["infill_drop_rates"].as_array().map_or(0, |a| a.len());
        let per_rate: Vec<Value> = (0..rates)
            .map(|k| match five_numbers(&quality_values(records, f, k)) {
                Some(s) => json!({"n": s.n, "mean": s.mean, "median": s.median, "q1": s.q1, "q3": s.q3}),
                None => Value::Null,
            })
            .collect();
        out.insert(f.to_string(), json!(per_rate));
    }
    Value::Object(out)
}

fn csv(records: &[Value], configs: &[String], metrics: &[String]) -> String {
    let mut text = format!(
        "id,label,status,predicted,prob,config,config_status,{}\n",
        metrics.join(",")
    );
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.replace([',', '\n'], " "),
        other => other.to_string(),
    };
    for r in records {
        let head = format!(
            "{},{},{},{},{}",
            cell(&r["id"]),
            cell(&r["label"]),
            cell(&r["status"]),
            cell(&r["predicted"]),
            cell(&r["prob"])
        );
        if r["status"] != "ok" {
            text.push_str(&format!(
                "{head},,,{}\n",
                ",".repeat(metrics.len().saturating_sub(1))
            ));
            continue;
        }
        for c in configs {
            let e = &r["configs"][c];
            let cells: Vec<String> = metrics.iter().map(|m| cell(&e[m])).collect();
            text.push_str(&format!(
                "{head},{c},{},{}\n",
                cell(&e["status"]),
                cells.join(",")
            ));
        }
    }
    text
}

fn markdown(summary: &Value, configs: &[String], metrics: &[String], settings: &Value) -> String {
    let mut md = format!(
        "# Evaluation of {}\n\n{} images: {} scored, {} skipped because the classifier got them wrong, {} failed.\n\n",
        settings["model"].as_str().unwrap_or("model"),
        summary["images"],
        summary["scored"],
        summary["misclassified"],
        summary["failed_images"]
    );
    // At a glance: one row per configuration, "mean (median)" per metric.
    let shown: Vec<&String> = metrics
        .iter()
        .filter(|m| {
            configs
                .iter()
                .any(|c| !summary["configs"][c][m.as_str()].is_null())
        })
        .collect();
    if !shown.is_empty() {
        md.push_str("Mean (median) per configuration:\n\n| configuration | images |");
        for m in &shown {
            md.push_str(&format!(" {m} |"));
        }
        md.push_str(&format!("\n|---|---|{}\n", "---|".repeat(shown.len())));
        for c in configs {
            let n = shown
                .iter()
                .filter_map(|m| summary["configs"][c][m.as_str()]["n"].as_u64())
                .max()
                .unwrap_or(0);
            md.push_str(&format!("| {c} | {n} |"));
            for m in &shown {
                let s = &summary["configs"][c][m.as_str()];
                match (s["mean"].as_f64(), s["median"].as_f64()) {
                    (Some(mean), Some(median)) => md.push_str(&format!(" {mean:.3} ({median:.3}) |")),
                    _ => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
        md.push_str("\nIn full:\n\n");
    }
    md.push_str("| configuration | metric | n | mean | median | q1 | q3 |\n|---|---|---|---|---|---|---|\n");
    for c in configs {
        for m in metrics {
            let s = &summary["configs"][c][m];
            if s.is_null() {
                continue;
            }
            let f = |k: &str| s[k].as_f64().map_or("".into(), |v| format!("{v:.4}"));
            md.push_str(&format!(
                "| {c} | {m} | {} | {} | {} | {} | {} |\n",
                s["n"],
                f("mean"),
                f("median"),
                f("q1"),
                f("q3")
            ));
        }
        let failures = summary["configs"][c]["failures"].as_u64().unwrap_or(0);
        if failures > 0 {
            md.push_str(&format!("| {c} | failures | {failures} | | | | |\n"));
        }
    }
    if let Some(q) = summary["infill_quality"].as_object().filter(|q| !q.is_empty()) {
        let rates: Vec<String> = settings["infill_drop_rates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{:.0}% dropped", r.as_f64().unwrap_or(0.0) * 100.0))
            .collect();
        md.push_str(&format!(
            "\n## In-filler quality (mean true-class probability)\n\n| in-filler | {} |\n|---|{}\n",
            rates.join(" | "),
            "---|".repeat(rates.len())
        ));
        for (f, per) in q {
            let cells: Vec<String> = per
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["mean"].as_f64().map_or("".into(), |v| format!("{v:.4}")))
                .collect();
            md.push_str(&format!("| {f} | {} |\n", cells.join(" | ")));
        }
    }
    md.push_str(
        "\nLower is better for off_box_ratio, removal_f* and saliency_metric; higher for \
         stability and in-filler quality.\n",
    );
    md
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(
    out: &Path,
    records: &[Value],
    configs: &[String],
    fillers: &[String],
    markdown: &str,
    plot_files: &[(String, String)],
    settings: &Value,
) -> String {
    let legend = |names: &[String]| {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "<span style=\"color:{}\">■</span> {} {}",
                    plots::colour_hex(i),
                    i + 1,
                    esc(n)
                )
            })
            .collect::<Vec<_>>()
            .join(" &nbsp; ")
    };
    let mut body = format!(
        "<h1>Evaluation of {}</h1>\n<h2>Summary</h2>\n<pre>{}</pre>\n<h2>Plots</h2>\n<p>configurations: {}</p>\n",
        esc(settings["model"].as_str().unwrap_or("model")),
        esc(markdown),
        legend(configs)
    );
    if !fillers.is_empty() {
        body.push_str(&format!("<p>in-fillers: {}</p>\n", legend(fillers)));
    }
    for (caption, file) in plot_files {
        body.push_str(&format!(
            "<figure><img src=\"plots/{file}\"><figcaption>{}</figcaption></figure>\n",
            esc(caption)
        ));
    }
    body.push_str("<h2>Examples</h2>\n<table><tr><th>image</th>");
    for c in configs {
        body.push_str(&format!("<th>{}</th>", esc(c)));
    }
    body.push_str("</tr>\n");
    let examples = settings["examples"].as_u64().unwrap_or(8) as usize;
    for r in records.iter().filter(|r| r["status"] == "ok").take(examples) {
        let stem = r["stem"].as_str().unwrap_or("");
        body.push_str(&format!(
            "<tr><td>{}<br>label {}</td>",
            esc(r["id"].as_str().unwrap_or("")),
            r["label"]
        ));
        for c in configs {
            let rel = format!("{MAPS_DIR}/{}/{stem}/overlay.png", slug(c));
            let e = &r["configs"][c];
            let cell = if out.join(&rel).exists() {
                format!(
                    "<img src=\"{rel}\"><br>off-box {}",
                    e["off_box_ratio"]
                        .as_f64()
                        .map_or("–".into(), |v| format!("{v:.3}"))
                )
            } else {
                "–".into()
            };
            body.push_str(&format!("<td>{cell}</td>"));
        }
        body.push_str("</tr>\n");
    }
    body.push_str("</table>\n");
    format!(
        "<!doctype html><meta charset=utf-8><title>fido evaluation</title>\n<style>body{{font-family:sans-serif;margin:2em}}\
         td{{padding:6px;vertical-align:top;font-size:small}}td img{{width:160px;height:160px;image-rendering:pixelated}}\
         figure{{display:inline-block;margin:1em}}</style>\n{body}"
    )
}
