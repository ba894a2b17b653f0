//! `validate` finds before any pass what a pass would fail on: it renders one sample staging
//! of each environment that runs kustomize or helm or reads the application repository, and
//! warns about hosts no staging could be reached at.

use crate::app_manifests::commit_files;
use crate::util::*;

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: b\n";

fn environments(d: &DirRun, body: &str) {
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n{body}",
            d.repo.path.display()
        ),
    )
    .unwrap();
}

#[test]
fn an_overlay_outside_the_exported_paths_and_an_undefined_variable_in_a_patch_fail_validate_with_the_fix(
) {
    let d = DirRun::new(&days_ago(1));
    commit_files(
        &d.repo,
        "main",
        &[
            ("base/kustomization.yaml", Some("resources: [cm.yaml]\n")),
            ("base/cm.yaml", Some(CM)),
            (
                "deploy/overlay/kustomization.yaml",
                Some("resources: [../../base]\n"),
            ),
        ],
        "An overlay over a base outside deploy/",
    );
    environments(
        &d,
        "    app_paths: [deploy]\n    kustomize: {from: app, path: deploy/overlay}\n",
    );
    let v = d.validate();
    let (out, err) = texts(&v);
    assert!(!v.status.success(), "{out}\n{err}");
    assert!(err.contains("rendered as branch \"main\""), "{err}");
    assert!(err.contains("not inside the exported paths"), "{err}");
    assert!(err.contains("add the path to `app_paths`"), "{err}");
    // The fix it names works.
    environments(
        &d,
        "    app_paths: [deploy, base]\n    kustomize: {from: app, path: deploy/overlay}\n",
    );
    let v = d.validate();
    assert!(v.status.success(), "{:?}", texts(&v));

    environments(
        &d,
        "    app_paths: [deploy, base]\n    kustomize:\n      from: app\n      path: deploy/overlay\n      patches:\n        - patch: |\n            apiVersion: v1\n            kind: ConfigMap\n            metadata: {name: web}\n            data: {tier: {{ values.tier | tojson }}}\n",
    );
    let v = d.validate();
    let (out, err) = texts(&v);
    assert!(!v.status.success(), "{out}\n{err}");
    // Where it is, what is wrong, once (the configuration's check and the sample render
    // find the same).
    assert!(err.contains("environments.yaml:15:"), "{err}");
    assert_eq!(
        err.matches("`values` has no key `tier`").count(),
        1,
        "{err}"
    );
    // Offline, the patch's templates are still rendered: they are the configuration's.
    let cache = d.tmp.path().join("cache");
    let o = octostage(&[
        "validate",
        "--offline",
        "--config",
        d.cfg.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "{:?}", texts(&o));
    assert!(
        texts(&o).1.contains("`values` has no key `tier`"),
        "{:?}",
        texts(&o)
    );
}

#[test]
fn a_missing_chart_fails_validate_and_an_unreachable_repository_is_a_warning() {
    let d = DirRun::new(&days_ago(1));
    commit_files(&d.repo, "main", &[("deploy/x.txt", Some("x"))], "No chart");
    environments(
        &d,
        "    app_paths: [deploy]\n    helm: {from: app, chart: deploy/chart}\n",
    );
    let v = d.validate();
    let (out, err) = texts(&v);
    assert!(!v.status.success(), "{out}\n{err}");
    assert!(err.contains("deploy/chart"), "{err}");
    std::fs::write(
        d.cfg.join("environments.yaml"),
        format!(
            "version: 1\nenvironments:\n  app:\n    repository: {}\n    always: [main]\n    app_paths: [deploy]\n    helm: {{from: app, chart: deploy/chart}}\n",
            d.tmp.path().join("gone").display()
        ),
    )
    .unwrap();
    let v = d.validate();
    let (out, err) = texts(&v);
    assert!(v.status.success(), "{out}\n{err}");
    assert!(
        err.contains("warning: environment app: not rendered against the application repository"),
        "{err}"
    );
}

#[test]
fn hosts_with_a_label_over_63_characters_or_deeper_than_a_wildcard_are_warned_about() {
    let d = DirRun::new(&days_ago(1));
    d.config(
        "    links:\n      web: \"https://{{ branch.slug }}-storefront.preview.example.com/\"\n      api: \"https://api.{{ branch.slug }}.preview.example.com/\"\n      docs: \"https://docs.example.com/{{ branch.slug }}\"\n      ok: \"https://{{ branch.slug }}.preview.example.com/\"\n",
        "",
    );
    d.template(
        "ingress.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n    - host: {{ (branch.slug ~ '-admin.preview.example.com') | tojson }}\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend: {service: {name: web, port: {number: 80}}}\n",
    );
    let v = d.validate();
    let (out, err) = texts(&v);
    assert!(v.status.success(), "warnings do not fail: {out}\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    let about = |at: &str| lines.iter().filter(|l| l.contains(at)).count();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("links.web") && l.contains("characters")),
        "{err}"
    );
    assert!(
        lines.iter().any(
            |l| l.contains("links.api") && l.contains("2 labels under \"preview.example.com\"")
        ),
        "{err}"
    );
    // One host for every branch, told apart by path, is fine.
    assert_eq!(about("links.docs"), 0, "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Ingress/web spec.rules[0].host") && l.contains("characters")),
        "{err}"
    );
    assert_eq!(about("links.ok"), 0, "{err}");
}
