//! How plans and passes are shown: a table for people, JSON for programs.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::pass::Report;
use crate::plan::Action;
use crate::text::{printable, rfc3339};

mod status;

pub use status::{failures, status_json, status_text, Failed};

/// One staging in `plan --format json`.
#[derive(Debug, Serialize)]
pub struct JsonStaging<'a> {
    /// Environment.
    pub environment: &'a str,
    /// Branch (full name).
    pub branch: &'a str,
    /// Static staging name, or null.
    #[serde(rename = "static")]
    pub static_name: Option<&'a str>,
    /// Staging name.
    pub name: &'a str,
    /// Namespace.
    pub namespace: Option<&'a str>,
    /// Commit sha.
    pub commit: Option<&'a str>,
    /// create, update, expire, sleep, wake, delete or noop.
    pub action: Action,
    /// Why.
    pub reason: String,
    /// RFC 3339, or null when it never expires.
    pub expires_at: Option<String>,
    /// When it is deleted after its retention (RFC 3339), or null.
    pub delete_at: Option<String>,
    /// When it next goes to sleep or wakes (RFC 3339), or null.
    pub next_change: Option<String>,
    /// State after the pass: `active`, `sleeping:schedule`, `sleeping:manual`, `sleeping:cap`,
    /// `expired`, or null when it will not exist.
    pub state: Option<crate::plan::State>,
    /// Rendered links.
    pub links: Option<&'a indexmap::IndexMap<String, String>>,
    /// Object changes (`create Deployment/web`).
    pub changes: Vec<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// A stable name of the kind of error (`conflict`, `render`, `timeout`, ...), or null.
    pub error_kind: Option<&'static str>,
    /// Whether a safety rule holds back its planned action (see the reason).
    pub held: bool,
    /// What led to the action, machine-readable (`{"code": "new-commit", "commit": ...}`).
    pub why: crate::plan::Why,
    /// The rule that holds a deletion back, machine-readable, or null.
    pub hold: Option<&'a crate::plan::Hold>,
    /// Not converged because the pass was stopped first.
    pub skipped: bool,
    /// Where it is in its life after the pass: pending, running, failing, sleeping:CAUSE,
    /// expired, deleting, conflict; null when it will not exist.
    pub lifecycle: Option<crate::plan::health::Lifecycle>,
    /// How its workloads are doing (`{"is": "failing", "since": ..., "reason": ...}`), or null.
    pub health: Option<&'a crate::plan::Health>,
}

/// A staging's effective action, why, and the reason as text (the plan's own, with its error
/// or hold, unless the pass's outcome changed the story).
fn effective(r: &Report, i: usize) -> (crate::plan::Action, crate::plan::Why, String) {
    let (action, why) = r.effective(i);
    let p = &r.plan.stagings[i];
    let reason = if why == p.why {
        p.reason()
    } else {
        why.to_string()
    };
    (action, why, reason)
}

/// Where a staging is in its life after a pass, when it exists.
pub fn lifecycle(
    s: &crate::plan::Planned,
    outcome: Option<&crate::pass::Outcome>,
) -> Option<crate::plan::health::Lifecycle> {
    use crate::plan::health::Lifecycle;
    if matches!(s.error, Some(crate::plan::PlanError::Conflict { .. })) {
        return Some(Lifecycle::Conflict);
    }
    if s.action == Action::Delete {
        return Some(Lifecycle::Deleting);
    }
    if outcome.is_some_and(|o| o.error.is_some()) {
        return Some(Lifecycle::Failing);
    }
    s.state.map(|st| Lifecycle::of(st, s.health.as_ref()))
}

/// The JSON document of a plan or pass.
pub fn json(r: &Report) -> serde_json::Value {
    let stagings: Vec<JsonStaging<'_>> = r
        .plan
        .stagings
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (action, why, reason) = effective(r, i);
            let outcome = r.outcome(i);
            let error = r.error(i);
            JsonStaging {
                environment: &s.environment,
                branch: &s.branch,
                static_name: s.static_name.as_deref(),
                name: &s.name,
                namespace: s.namespace.as_deref(),
                commit: s.commit.as_ref().map(|c| c.sha.as_str()),
                action,
                reason,
                expires_at: s.expires_at.map(rfc3339),
                delete_at: s.delete_at.map(rfc3339),
                next_change: s.next_change.map(rfc3339),
                state: s.state,
                links: s.context.as_ref().map(|c| &c.links),
                changes: outcome
                    .map(|o| o.changes.iter().map(|c| c.to_string()).collect())
                    .unwrap_or_default(),
                held: s.held(),
                why,
                hold: s.hold.as_ref(),
                error: error.as_ref().map(|(_, m)| m.clone()),
                error_kind: error.as_ref().map(|(k, _)| *k),
                skipped: outcome.is_some_and(|o| o.skipped),
                lifecycle: lifecycle(s, outcome),
                health: s.health.as_ref(),
            }
        })
        .collect();
    serde_json::json!({
        "stagings": stagings,
        "failed_sources": r.plan.failed_sources.iter().map(|(e, m)| serde_json::json!({"environment": e, "error": m})).collect::<Vec<_>>(),
        "hints": r.plan.hints,
        "held_digest": r.plan.held().map(|(_, d)| d),
    })
}

/// A table of a plan or pass, with a summary line. `verbose` lists unchanged stagings too.
pub fn text(r: &Report, verbose: bool) -> String {
    let mut rows = vec![
        ["ACTION", "STAGING", "BRANCH", "COMMIT", "EXPIRES", "REASON"]
            .map(String::from)
            .to_vec(),
    ];
    let mut counts = std::collections::BTreeMap::new();
    for (i, s) in r.plan.stagings.iter().enumerate() {
        let (action, _, mut reason) = effective(r, i);
        let outcome = r.outcome(i);
        let failed = s.error.is_some() || outcome.is_some_and(|o| o.error.is_some());
        let key = if failed {
            "failed".to_string()
        } else {
            action.to_string()
        };
        *counts.entry(key).or_insert(0) += 1;
        if let Some(e) = outcome.and_then(|o| o.error.as_ref()) {
            reason = format!("FAILED: {}", first_line(&e.to_string()));
        } else if let Some(e) = &s.error {
            reason = format!("FAILED: {}", first_line(&e.to_string()));
        } else if outcome.is_some_and(|o| o.skipped) {
            reason = format!("not started (octostage is stopping): {reason}");
        }
        let waiting = outcome.and_then(|o| {
            o.changes
                .iter()
                .find(|c| c.kind == crate::targets::ChangeKind::Wait)
        });
        if let Some(w) = waiting {
            reason = format!("{reason}; {}", first_line(&w.to_string()));
        }
        if action == Action::Noop && !verbose && !failed && !s.held() && waiting.is_none() {
            continue;
        }
        rows.push(vec![
            action.to_string(),
            s.name.clone(),
            branch_label(&s.branch, s.static_name.as_deref()),
            s.commit
                .as_ref()
                .map(|c| c.sha.chars().take(7).collect())
                .unwrap_or_default(),
            expiry(s.expires_at),
            reason,
        ]);
    }
    let mut out = table(&rows);
    for (env, err) in &r.plan.failed_sources {
        out.push_str(&format!(
            "source of {env} failed (its stagings are kept as they are): {}\n",
            printable(err)
        ));
    }
    for h in &r.plan.hints {
        out.push_str(&format!("hint: {}\n", printable(h)));
    }
    if let Some((names, digest)) = r.plan.held() {
        out.push_str(&format!(
            "held back: {} deletions (set {digest}); a running octostage carries them out when this set is approved: POST /api/v1/approve {{\"held\": \"{digest}\"}}, or the dashboard's button\n",
            names.len()
        ));
    }
    let summary: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    out.push_str(&format!(
        "{} stagings: {}\n",
        r.plan.stagings.len(),
        if summary.is_empty() {
            "none".into()
        } else {
            summary.join(", ")
        }
    ));
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Rows as aligned columns; the last column is left as it is (reasons run long).
fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count().min(48))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i + 1 == columns {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `feature/a`, or `main (static demo)` for a static staging.
fn branch_label(branch: &str, static_name: Option<&str>) -> String {
    match static_name {
        Some(n) => format!("{branch} (static {n})"),
        None => branch.to_string(),
    }
}

/// A time in a table: always saying its zone (UTC), whatever zone a schedule is written in.
fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn expiry(t: Option<DateTime<Utc>>) -> String {
    t.map(when).unwrap_or_else(|| "never".into())
}

/// `sleeps 2026-11-26 20:00 UTC` or `wakes ...`.
fn next_change(s: &crate::plan::StagingRecord) -> String {
    match s.next_change {
        Some(t) if s.state.asleep() => format!("wakes {}", when(t)),
        Some(t) => format!("sleeps {}", when(t)),
        None => "-".into(),
    }
}

/// `plan --diff`: per staging that changes, its links and its objects (`+` created, `~`
/// updated or restored, `-` pruned), each updated object's changed fields under it.
pub fn diff_text(r: &Report) -> String {
    use crate::targets::ChangeKind;
    let mut out = String::new();
    for (i, s) in r.plan.stagings.iter().enumerate() {
        let (action, _, reason) = effective(r, i);
        let changes = r.outcome(i).map(|o| o.changes.as_slice()).unwrap_or(&[]);
        if action == Action::Noop && changes.is_empty() {
            continue;
        }
        // A staging that failed is FAILED with its error, here as everywhere, not `+ create`.
        let failed = r
            .outcome(i)
            .and_then(|o| o.error.as_ref().map(|e| e.to_string()))
            .or_else(|| s.error.as_ref().map(|e| e.to_string()));
        if let Some(e) = failed {
            out.push_str(&format!(
                "! {} (FAILED: {})\n",
                printable(&s.name),
                printable(first_line(&e))
            ));
            continue;
        }
        let sign = match action {
            Action::Create => "+",
            Action::Delete => "-",
            _ => "~",
        };
        out.push_str(&format!(
            "{sign} {} ({action}: {})\n",
            printable(&s.name),
            printable(&reason)
        ));
        if let Some(c) = &s.context {
            for (name, url) in &c.links {
                out.push_str(&format!(
                    "    link {}: {}\n",
                    printable(name),
                    printable(&crate::redact::url(url))
                ));
            }
        }
        for c in changes {
            let sign = match c.kind {
                ChangeKind::Create => "+",
                ChangeKind::Update | ChangeKind::Restore => "~",
                ChangeKind::Prune => "-",
                ChangeKind::Wait => "…",
            };
            let mut lines = c.detail.as_deref().unwrap_or_default().lines();
            let drift = match (c.kind, lines.clone().next()) {
                (ChangeKind::Restore, Some(first)) if !first.starts_with(['~', '+', '-']) => {
                    lines.next();
                    format!(" (drift: {})", printable(first))
                }
                _ => String::new(),
            };
            out.push_str(&format!("    {sign} {}{drift}\n", printable(&c.object)));
            for l in lines {
                out.push_str(&format!("        {}\n", printable(l)));
            }
        }
    }
    if out.is_empty() {
        out.push_str("no changes\n");
    }
    out
}

/// The table of [`text`] with its actions colored for a terminal: green create, yellow
/// update, wake and sleep, red expire and delete.
pub fn colorize(table: &str) -> String {
    let mut out = String::with_capacity(table.len());
    for line in table.split_inclusive('\n') {
        let word = line.split(' ').next().unwrap_or_default();
        let color = match word {
            "create" => "32",
            "update" | "wake" | "sleep" => "33",
            "expire" | "delete" | "failed" => "31",
            _ => "",
        };
        if color.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(&format!(
                "\x1b[{color}m{word}\x1b[0m{}",
                &line[word.len()..]
            ));
        }
    }
    out
}
