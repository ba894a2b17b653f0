//! What stagings cost and what sleep and expiry saved, from what each staging records: the
//! resources its workloads request awake (as last rendered) and its hours awake and asleep
//! since it was created. Saved = requests × hours asleep: what running always would have
//! requested on top.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::plan::StagingRecord;

/// Figures of one staging or a sum of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    /// CPU requested awake, cores.
    pub cpu_cores: f64,
    /// Memory requested awake, GiB.
    pub memory_gib: f64,
    /// Hours awake.
    pub hours_awake: f64,
    /// Hours asleep (sleeping or expired).
    pub hours_asleep: f64,
    /// CPU-hours requested while awake.
    pub cpu_hours: f64,
    /// GiB-hours requested while awake.
    pub gib_hours: f64,
    /// CPU-hours sleep and expiry avoided.
    pub cpu_hours_saved: f64,
    /// GiB-hours sleep and expiry avoided.
    pub gib_hours_saved: f64,
}

impl Cost {
    /// The figures of `s` at `now`.
    pub fn of(s: &StagingRecord, now: DateTime<Utc>) -> Cost {
        let usage = s.usage.unwrap_or_default();
        let (awake, asleep) = s
            .clock
            .map(|c| c.totals(s.state.asleep(), now))
            .unwrap_or((0, 0));
        let cpu = usage.cpu_millis as f64 / 1000.0;
        let gib = usage.memory_bytes as f64 / (1u64 << 30) as f64;
        let (ha, hs) = (awake as f64 / 3600.0, asleep as f64 / 3600.0);
        Cost {
            cpu_cores: cpu,
            memory_gib: gib,
            hours_awake: ha,
            hours_asleep: hs,
            cpu_hours: cpu * ha,
            gib_hours: gib * ha,
            cpu_hours_saved: cpu * hs,
            gib_hours_saved: gib * hs,
        }
    }

    fn add(&mut self, o: &Cost) {
        self.cpu_cores += o.cpu_cores;
        self.memory_gib += o.memory_gib;
        self.hours_awake += o.hours_awake;
        self.hours_asleep += o.hours_asleep;
        self.cpu_hours += o.cpu_hours;
        self.gib_hours += o.gib_hours;
        self.cpu_hours_saved += o.cpu_hours_saved;
        self.gib_hours_saved += o.gib_hours_saved;
    }
}

/// The report: per staging, per environment, and in all.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// By staging name.
    pub stagings: BTreeMap<String, Cost>,
    /// By environment.
    pub environments: BTreeMap<String, Cost>,
    /// Everything.
    pub total: Cost,
}

/// The cost report of `stagings` at `now`.
pub fn report<'a>(
    stagings: impl IntoIterator<Item = &'a StagingRecord>,
    now: DateTime<Utc>,
) -> Report {
    let mut r = Report::default();
    for s in stagings {
        let c = Cost::of(s, now);
        r.environments
            .entry(s.environment.clone())
            .or_default()
            .add(&c);
        r.total.add(&c);
        r.stagings.insert(s.name.clone(), c);
    }
    r
}

/// The report as a table.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "{:<40} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>10}\n",
        "STAGING",
        "CPU",
        "MEM GiB",
        "H AWAKE",
        "H ASLEEP",
        "CPU·H",
        "GiB·H",
        "CPU·H SAVED",
        "GiB·H SAVED"
    );
    let row = |name: &str, c: &Cost| {
        format!(
            "{:<40} {:>7.2} {:>8.2} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>10.1} {:>10.1}\n",
            crate::text::printable(name),
            c.cpu_cores,
            c.memory_gib,
            c.hours_awake,
            c.hours_asleep,
            c.cpu_hours,
            c.gib_hours,
            c.cpu_hours_saved,
            c.gib_hours_saved
        )
    };
    for (name, c) in &r.stagings {
        out.push_str(&row(name, c));
    }
    for (env, c) in &r.environments {
        out.push_str(&row(&format!("environment {env}"), c));
    }
    out.push_str(&row("all", &r.total));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Clock, SleepCause, State, Usage};

    #[test]
    fn saved_is_requests_times_hours_asleep() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let mut s: StagingRecord = serde_json::from_value(serde_json::json!({
            "name": "shop-a", "environment": "shop", "branch": "a", "namespace": "shop-a",
            "commit": "0", "first_seen": "2026-11-20T00:00:00Z", "state": "active",
        }))
        .unwrap();
        s.usage = Some(Usage {
            cpu_millis: 1500,
            memory_bytes: 2 << 30,
        });
        // 10 h awake, 20 h asleep before; asleep again for the last 6 h.
        s.clock = Some(Clock {
            since: "2026-11-26T06:00:00Z".parse().unwrap(),
            awake_seconds: 10 * 3600,
            asleep_seconds: 20 * 3600,
        });
        s.state = State::Sleeping(SleepCause::Schedule);
        let c = Cost::of(&s, now);
        assert_eq!((c.hours_awake, c.hours_asleep), (10.0, 26.0));
        assert_eq!((c.cpu_hours, c.gib_hours), (15.0, 20.0));
        assert_eq!((c.cpu_hours_saved, c.gib_hours_saved), (39.0, 52.0));
        let r = report([&s, &s], now);
        assert_eq!(r.environments["shop"].cpu_hours_saved, 78.0);
    }
}
