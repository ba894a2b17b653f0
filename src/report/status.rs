//! `octostage status`: the stagings the target holds, and those that fail before they are
//! created, as a table or JSON.

use chrono::{DateTime, Utc};

use super::{branch_label, expiry, first_line, next_change, table, when};
use crate::pass::Report;
use crate::text::{printable, rfc3339};

/// `status --format json`: `{"stagings": [...], "left_alone": [...]}`, times in RFC 3339.
pub fn status_json(
    st: &crate::targets::Status,
    failed: &[Failed],
    now: DateTime<Utc>,
) -> serde_json::Value {
    let mut stagings: Vec<serde_json::Value> = st
        .stagings
        .iter()
        .map(|r| {
            let s = &r.staging;
            let failure = failed.iter().find(|f| f.name == s.name);
            serde_json::json!({
                "name": s.name,
                "environment": s.environment,
                "branch": s.branch,
                "static": s.static_name,
                "namespace": s.namespace,
                "commit": s.commit,
                "state": failure.map(|_| "FAILED".to_string()).unwrap_or_else(|| status_state(r)),
                "error": failure.map(|f| f.error.clone()),
                "health": s.health,
                "created_at": r.created.map(rfc3339),
                "age_seconds": r.created.map(|c| (now - c).num_seconds()),
                "expires_at": s.expires_at.map(rfc3339),
                "delete_at": s.delete_at.map(rfc3339),
                "sleeps_at": s.next_change.filter(|_| !s.state.asleep()).map(rfc3339),
                "wakes_at": s.next_change.filter(|_| s.state.asleep() && s.state != crate::plan::State::Expired).map(rfc3339),
                "requests": s.requests,
                "links": s.links,
                "delete_reason": r.deleting,
            })
        })
        .collect();
    for f in never_created(st, failed) {
        stagings.push(serde_json::json!({
            "name": f.name,
            "environment": f.environment,
            "branch": f.branch,
            "static": f.static_name,
            "state": "FAILED",
            "error": f.error,
            "created_at": null,
        }));
    }
    let left: Vec<serde_json::Value> = st
        .foreign
        .iter()
        .map(|(what, why)| serde_json::json!({"what": what, "why": why}))
        .collect();
    serde_json::json!({ "stagings": stagings, "left_alone": left })
}

/// `status` as a table.
pub fn status_text(st: &crate::targets::Status, failed: &[Failed], now: DateTime<Utc>) -> String {
    let rows = &st.stagings;
    let mut out = String::new();
    let mut table_rows = vec![[
        "STAGING",
        "ENVIRONMENT",
        "BRANCH",
        "COMMIT",
        "STATE",
        "AGE",
        "NEXT",
        "EXPIRES",
        "DELETED",
        "LINKS",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        let s = &r.staging;
        let state = match failed.iter().find(|f| f.name == s.name) {
            Some(f) => failed_state(f),
            None => status_state(r),
        };
        table_rows.push(vec![
            s.name.clone(),
            s.environment.clone(),
            branch_label(&s.branch, s.static_name.as_deref()),
            s.commit.chars().take(7).collect(),
            state,
            r.created
                .map(|c| crate::text::human(now - c))
                .unwrap_or_else(|| "-".into()),
            next_change(s),
            expiry(s.expires_at),
            s.delete_at.map(when).unwrap_or_else(|| "-".into()),
            s.links.values().cloned().collect::<Vec<_>>().join(" "),
        ]);
    }
    let never = never_created(st, failed);
    for f in &never {
        let mut row = vec!["-".to_string(); 10];
        row[0] = f.name.clone();
        row[1] = f.environment.clone();
        row[2] = branch_label(&f.branch, f.static_name.as_deref());
        row[4] = failed_state(f);
        table_rows.push(row);
    }
    out.push_str(&table(&table_rows));
    out.push_str(&format!("{} stagings", rows.len()));
    if !never.is_empty() {
        out.push_str(&format!(
            ", and {} that failed before it was created",
            never.len()
        ));
    }
    out.push('\n');
    for (what, why) in &st.foreign {
        out.push_str(&format!(
            "left alone: {} {}\n",
            printable(what),
            printable(why)
        ));
    }
    out
}

/// A staging a plan of the configuration says fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Its name.
    pub name: String,
    /// Its environment.
    pub environment: String,
    /// Its branch.
    pub branch: String,
    /// Its static name, if it is one.
    pub static_name: Option<String>,
    /// Why.
    pub error: String,
}

/// The stagings of `r` that failed, in the planner or in their pass.
pub fn failures(r: &Report) -> Vec<Failed> {
    r.plan
        .stagings
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let error = r
                .outcome(i)
                .and_then(|o| o.error.as_ref().map(|e| e.to_string()))
                .or_else(|| s.error.as_ref().map(|e| e.to_string()))?;
            Some(Failed {
                name: s.name.clone(),
                environment: s.environment.clone(),
                branch: s.branch.clone(),
                static_name: s.static_name.clone(),
                error,
            })
        })
        .collect()
}

fn never_created<'a>(st: &crate::targets::Status, failed: &'a [Failed]) -> Vec<&'a Failed> {
    failed
        .iter()
        .filter(|f| !st.stagings.iter().any(|r| r.staging.name == f.name))
        .collect()
}

fn failed_state(f: &Failed) -> String {
    format!("FAILED ({})", printable(first_line(&f.error)))
}

fn status_state(r: &crate::targets::StagingStatus) -> String {
    use crate::plan::health::Lifecycle;
    let s = &r.staging;
    if r.deleting.is_some() {
        return Lifecycle::Deleting.to_string();
    }
    match (Lifecycle::of(s.state, s.health.as_ref()), &s.health) {
        (Lifecycle::Failing, Some(crate::plan::Health::Failing { reason, .. })) => {
            format!("failing ({reason})")
        }
        (l, _) => l.to_string(),
    }
}
