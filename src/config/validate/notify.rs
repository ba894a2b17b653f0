//! Notification settings: webhooks, a command, which events, the warning's lead.

use super::super::model::*;
use super::super::raw::*;
use super::Validator;
use crate::consts;

fn env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Validator<'_> {
    pub(super) fn notify(&mut self, raw: &RawNotify, ptr: &str) -> Option<Notify> {
        let before = self.problems.len();
        let mut webhooks = Vec::new();
        for (i, w) in raw.webhooks.iter().enumerate() {
            if let Some(h) = self.webhook(w, &format!("{ptr}/webhooks/{i}")) {
                webhooks.push(h);
            }
        }
        if raw.command.as_ref().is_some_and(Vec::is_empty) {
            self.err(
                &format!("{ptr}/command"),
                "command is empty: give the program and its arguments",
            );
        }
        let events = match &raw.events {
            None => EventKind::ALL.to_vec(),
            Some(names) => {
                let mut out = Vec::new();
                for (i, n) in names.iter().enumerate() {
                    match EventKind::ALL.iter().find(|k| k.name() == n) {
                        Some(k) => out.push(*k),
                        None => self.err(
                            &format!("{ptr}/events/{i}"),
                            format!(
                                "unknown event {n:?}; known: {}",
                                EventKind::ALL.map(EventKind::name).join(", ")
                            ),
                        ),
                    }
                }
                out
            }
        };
        let warn_before = raw
            .warn_before
            .as_deref()
            .and_then(|d| self.duration(d, &format!("{ptr}/warn_before")))
            .unwrap_or(consts::DEFAULT_WARN_BEFORE);
        if webhooks.is_empty() && raw.command.is_none() && self.problems.len() == before {
            self.warn(
                ptr,
                "notify has no webhooks and no command, so nothing is sent (a notify block replaces the inherited one as a whole)",
            );
        }
        (self.problems.len() == before).then(|| Notify {
            webhooks,
            command: raw.command.clone(),
            events,
            warn_before,
        })
    }

    fn webhook(&mut self, raw: &RawWebhook, ptr: &str) -> Option<Webhook> {
        if let Some(name) = raw.secret_env.as_deref().filter(|n| !env_name(n)) {
            self.err(
                &format!("{ptr}/secret_env"),
                format!("{name:?} is not an environment variable name"),
            );
        }
        let url = match (&raw.url, &raw.url_env) {
            (Some(_), Some(_)) | (None, None) => {
                self.err(ptr, "give exactly one of `url` and `url_env`");
                return None;
            }
            (None, Some(name)) if !env_name(name) => {
                self.err(
                    &format!("{ptr}/url_env"),
                    format!("{name:?} is not an environment variable name"),
                );
                return None;
            }
            (None, Some(name)) => UrlSource::Env(name.clone()),
            (Some(url), None) => {
                if let Err(why) = check_url(url) {
                    self.err(&format!("{ptr}/url"), why);
                    return None;
                }
                UrlSource::Literal(url.clone())
            }
        };
        Some(Webhook {
            url,
            secret_env: raw.secret_env.clone(),
        })
    }
}

/// Names of environment variables holding notification secrets (webhook URLs and HMAC keys)
/// anywhere in the file: never handed to render commands.
pub(super) fn secret_envs(raw: &RawFile) -> Vec<String> {
    let mut layers: Vec<&RawSettings> = vec![&raw.defaults];
    for e in raw.environments.values() {
        layers.push(&e.settings);
        layers.extend(e.overrides.values());
        layers.extend(e.statics.values().map(|s| &s.settings));
    }
    let mut out = Vec::new();
    for n in layers.into_iter().filter_map(|l| l.notify.as_ref()) {
        for w in &n.webhooks {
            out.extend(w.url_env.iter().chain(&w.secret_env).cloned());
        }
    }
    out
}

/// An `http(s)://` URL without credentials in it (those belong in `url_env`).
pub fn check_url(url: &str) -> Result<(), String> {
    let shown = crate::redact::url(url);
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("webhook URL {shown:?} must start with https:// or http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("webhook URL {shown:?} names no host"));
    }
    if authority.contains('@') {
        return Err(format!("webhook URL {shown:?} carries credentials; put the whole URL in an environment variable and name it in `url_env`"));
    }
    Ok(())
}
