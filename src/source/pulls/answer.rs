//! One page of a forge's pull request listing, read into only what octostage needs, bounded:
//! at most [`MAX_ITEMS`] pull requests a page and [`MAX_LABELS`] labels each (GitHub allows 100),
//! everything else skipped without being kept, so memory follows the page's size cap rather
//! than its shape. An answer that breaks a bound fails the poll (the environment freezes).

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{PullRequest, PullsError};
use crate::config::Provider;

/// Pull requests one page may hold.
pub const MAX_ITEMS: usize = 200;
/// Labels one pull request may hold.
pub const MAX_LABELS: usize = 100;

/// Label names: strings (GitLab) or objects with a `name` (GitHub, Gitea); others skipped.
#[derive(Debug, Default)]
struct Labels(Vec<String>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of labels")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Labels, E> {
                Ok(Labels::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Labels, A::Error> {
                let mut out = Vec::new();
                while let Some(l) = seq.next_element::<Label>()? {
                    if out.len() == MAX_LABELS {
                        return Err(de::Error::custom(format!("more than {MAX_LABELS} labels")));
                    }
                    out.extend(l.0);
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One label's name, if it has one.
struct Label(Option<String>);

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Label;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Label, E> {
                Ok(Label(Some(s.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Label, A::Error> {
                let mut name = None;
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if k == "name" {
                        name = map.next_value::<Option<String>>().ok().flatten();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Label(name))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Label, E> {
                Ok(Label(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Label, E> {
                Ok(Label(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Label, E> {
                Ok(Label(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Label, E> {
                Ok(Label(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Label, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Label(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
struct Repo {
    full_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Side {
    #[serde(rename = "ref")]
    branch: Option<String>,
    sha: Option<String>,
    repo: Option<Repo>,
    repo_id: Option<u64>,
}

/// What any of the three forges says of one pull request.
#[derive(Debug, Default, Deserialize)]
struct Item {
    number: Option<u64>,
    iid: Option<u64>,
    head: Option<Side>,
    base: Option<Side>,
    #[serde(default)]
    labels: Labels,
    source_branch: Option<String>,
    sha: Option<String>,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
}

/// A page: at most [`MAX_ITEMS`].
struct Page(Vec<Item>);

impl<'de> Deserialize<'de> for Page {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Page;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of pull requests")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Page, A::Error> {
                let mut out = Vec::new();
                while let Some(i) = seq.next_element::<Item>()? {
                    if out.len() == MAX_ITEMS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_ITEMS} pull requests in one page"
                        )));
                    }
                    out.push(i);
                }
                Ok(Page(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Equal and known: an id or name missing on either side is not proof of one repository.
fn same<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

/// Parse one page of `provider`'s answer.
pub fn parse(provider: Provider, body: &[u8]) -> Result<Vec<PullRequest>, PullsError> {
    let page: Page =
        serde_json::from_slice(body).map_err(|e| PullsError::NotAList(std::sync::Arc::new(e)))?;
    page.0.into_iter().map(|i| item(provider, i)).collect()
}

fn item(provider: Provider, i: Item) -> Result<PullRequest, PullsError> {
    let (head, base) = (i.head.unwrap_or_default(), i.base.unwrap_or_default());
    let (number, branch, sha, fork) = match provider {
        Provider::Github => {
            let full = |s: &Side| s.repo.as_ref().and_then(|r| r.full_name.clone());
            // A deleted fork has no head repository: not proof of the same one.
            let fork = !same(full(&head), full(&base));
            (i.number, head.branch, head.sha, fork)
        }
        Provider::Gitea => {
            let fork = !same(head.repo_id, base.repo_id);
            (i.number, head.branch, head.sha, fork)
        }
        Provider::Gitlab => (
            i.iid,
            i.source_branch,
            i.sha,
            !same(i.source_project_id, i.target_project_id),
        ),
    };
    match (number, branch, sha) {
        (Some(number), Some(branch), Some(sha)) => Ok(PullRequest {
            number,
            branch,
            sha,
            labels: i.labels.0,
            fork,
        }),
        _ => Err(PullsError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded_and_unknown_repositories_are_forks() {
        let many = format!("[{}]", vec!["{}"; MAX_ITEMS + 1].join(","));
        assert!(parse(Provider::Github, many.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("more than"));
        let labels = format!(
            "[{{\"number\":1,\"head\":{{\"ref\":\"a\",\"sha\":\"b\"}},\"labels\":[{}]}}]",
            vec!["\"x\""; MAX_LABELS + 1].join(",")
        );
        assert!(parse(Provider::Github, labels.as_bytes()).is_err());
        let odd = br#"[{"iid": 1, "source_branch": "a", "sha": "b", "labels": ["preview", 3, null, {"name": 7}]}]"#;
        let p = parse(Provider::Gitlab, odd).unwrap();
        assert_eq!(p[0].labels, ["preview"]);
        assert!(
            p[0].fork,
            "no project ids: not proof of the same repository"
        );
        let gitea = br#"[{"number": 2, "head": {"ref": "c", "sha": "d"}, "base": {}}]"#;
        assert!(parse(Provider::Gitea, gitea).unwrap()[0].fork);
        assert!(parse(Provider::Github, b"{}").is_err());
        assert!(parse(Provider::Github, b"[0]").is_err());
    }
}
