//! The example config repository end to end: templates, a render command, overrides, static
//! stagings, against local application repositories.

use crate::util::*;

fn apps(tmp: &std::path::Path) -> (GitRepo, GitRepo) {
    // The storefront keeps its kustomize base in its own repository.
    let storefront = tmp.join("storefront");
    let sf = GitRepo::with_files(
        &storefront,
        &root().join("example-repo/app-storefront"),
        &days_ago(5),
        "Kustomize base",
    );
    crate::app_manifests::commit_files(
        &sf,
        "feature/wishlist",
        &[("README", Some("wishlist"))],
        "Wishlist",
    );
    let shop = GitRepo::init(&tmp.join("shop"), &days_ago(40));
    shop.git(&["tag", "v1.4.0", "main"]);
    shop.commit("main", "Release", &days_ago(2));
    shop.commit("feature/checkout", "Checkout", &days_ago(1));
    shop.commit("feature/wip-thing", "excluded", &days_ago(1));
    shop.commit("release/2.0", "RC", &days_ago(1));
    let docs = GitRepo::init(&tmp.join("docs"), &days_ago(3));
    docs.commit("docs/guide", "Guide", &days_ago(1));
    (shop, docs)
}

/// Config `cfg`, its environments pointed at the local `shop` and `docs`, a cache in `tmp`.
fn example_args(
    tmp: &std::path::Path,
    cfg: &std::path::Path,
    shop: &GitRepo,
    docs: &GitRepo,
) -> Vec<String> {
    vec![
        "--config".into(),
        cfg.display().to_string(),
        "--repository".into(),
        format!("shop={}", shop.path.display()),
        "--repository".into(),
        format!("docs={}", docs.path.display()),
        "--repository".into(),
        format!("storefront={}", tmp.join("storefront").display()),
        "--cache-dir".into(),
        tmp.join("cache").display().to_string(),
    ]
}

#[test]
fn the_example_converges_into_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (shop, docs) = apps(tmp.path());
    let out = tmp.path().join("out");
    let target = format!("dir:{}", out.display());
    let common = example_args(tmp.path(), &root().join("example-repo"), &shop, &docs);
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let mut args = vec!["run", "--once", "--target", &target];
    args.extend_from_slice(&common);
    octostage_ok(&args, 0);
    let mut dirs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        [
            "docs-docs-guide",
            "docs-main",
            "shop-demo-acme",
            "shop-feature-checkout",
            "shop-main",
            "shop-rc",
            "shop-release-2-0",
            "storefront-feature-wishlist",
            "storefront-main"
        ]
    );
    // The kustomize base of the storefront's own repository, per staging: its commit's image
    // and a host of its own.
    let sf = octostage::yaml::document(
        &std::fs::read_to_string(
            out.join("storefront-feature-wishlist/deployment-storefront.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let sha = GitRepo {
        path: tmp.path().join("storefront"),
    }
    .git(&["rev-parse", "feature/wishlist"]);
    assert_eq!(
        sf["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("registry.example.com/acme/storefront:{sha}").as_str()
    );
    let ing =
        std::fs::read_to_string(out.join("storefront-feature-wishlist/ingress-storefront.yaml"))
            .unwrap();
    assert!(
        ing.contains("storefront-feature-wishlist.storefront.staging.example.com"),
        "{ing}"
    );
    let shop_main = out.join("shop-main");
    for f in [
        "deployment-web.yaml",
        "deployment-api.yaml",
        "deployment-worker.yaml",
        "statefulset-postgres.yaml",
        "service-web.yaml",
        "ingress-shop.yaml",
        "httproute-shop.yaml",
        "configmap-shop-config.yaml",
        "secret-postgres.yaml",
    ] {
        assert!(shop_main.join(f).is_file(), "{f} missing");
    }
    let web = octostage::yaml::document(
        &std::fs::read_to_string(out.join("shop-release-2-0/deployment-web.yaml")).unwrap(),
    )
    .unwrap();
    // The example sleeps outside Berlin office hours: asleep, the rendered replicas are kept
    // in the annotation.
    let rendered = match web["spec"]["replicas"].as_u64() {
        Some(0) => web["metadata"]["annotations"]["octostage.dev/awake"]
            .as_str()
            .and_then(|a| a.strip_prefix("replicas="))
            .and_then(|n| n.parse().ok()),
        n => n,
    };
    assert_eq!(rendered, Some(2), "the release/* override sets replicas");
    assert_eq!(web["metadata"]["namespace"], "shop-release-2-0");
    assert_eq!(
        web["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "octostage"
    );
    assert_eq!(
        web["metadata"]["labels"]["octostage.dev/staging"],
        "shop-release-2-0"
    );
    let cm =
        std::fs::read_to_string(out.join("shop-demo-acme/configmap-shop-config.yaml")).unwrap();
    assert!(
        cm.contains("DEMO_CUSTOMER: acme")
            && cm.contains("https://acme-demo.shop.staging.example.com"),
        "{cm}"
    );
    let docs_dep =
        std::fs::read_to_string(out.join("docs-docs-guide/deployment-docs.yaml")).unwrap();
    let short = &docs.git(&["rev-parse", "docs/guide"])[..7];
    assert!(
        docs_dep.contains(&format!("docs:{short}")),
        "the render command saw the context: {docs_dep}"
    );
    let listed = octostage_ok(&["status", "--target", &target], 0);
    assert!(
        listed.contains("9 stagings")
            && listed.contains("https://shop-main.shop.staging.example.com"),
        "{listed}"
    );
    let status = std::fs::read_to_string(out.join("shop-rc/octostage-status.yaml")).unwrap();
    assert!(
        status.contains("expires_at: \"2027-01-31T18:00:00Z\"")
            && status.contains("branch: v1.4.0"),
        "{status}"
    );

    // render prints the same objects as the run wrote.
    let mut r = vec![
        "render",
        "--environment",
        "shop",
        "--branch",
        "feature/checkout",
    ];
    r.extend_from_slice(&common);
    let rendered = octostage_ok(&r, 0);
    let docs =
        octostage::yaml::documents(&rendered, &mut octostage::yaml::Budget::default()).unwrap();
    assert_eq!(docs.len(), 11, "{rendered}");
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "shop-feature-checkout", "{d:?}");
        assert_eq!(d["metadata"]["labels"]["octostage.dev/environment"], "shop");
    }
    let written = std::fs::read_dir(out.join("shop-feature-checkout"))
        .unwrap()
        .count();
    assert_eq!(
        written,
        docs.len() + 1,
        "the run wrote the same objects plus the status file"
    );
}

#[test]
fn a_failing_render_command_is_reported_with_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let (shop, docs) = apps(tmp.path());
    let cfg = tmp.path().join("cfg");
    copy_dir(&root().join("example-repo"), &cfg);
    std::fs::write(
        cfg.join("render/docs.sh"),
        "echo 'chart docs not found' >&2\nexit 4\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let target = format!("dir:{}", out.display());
    let mut args = vec![
        "run".to_string(),
        "--once".into(),
        "--target".into(),
        target,
    ];
    args.extend(example_args(tmp.path(), &cfg, &shop, &docs));
    let r = octostage(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.status.code(), Some(1), "failed stagings fail the pass");
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("chart docs not found") || stdout.contains("chart docs not found"),
        "{stdout}\n{stderr}"
    );
    assert!(
        out.join("shop-main").is_dir(),
        "the other stagings converged"
    );
    assert!(!out.join("docs-main").exists());
}

#[test]
fn the_demo_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = octostage_ok(&["demo", "--dir", tmp.path().to_str().unwrap()], 0);
    assert!(
        out.contains("Pass 2: nothing changed, so nothing is written")
            && out.contains("0 files written"),
        "{out}"
    );
    assert!(
        out.contains("branch deleted") && out.contains("no activity for"),
        "{out}"
    );
    assert!(out.contains("shop-main"), "{out}");
}

#[test]
fn the_example_converges_on_the_cluster_with_its_gateway_api_routes() {
    let kc = crate::cluster::kubeconfig();
    let tmp = tempfile::tempdir().unwrap();
    let (shop, docs) = apps(tmp.path());
    let env = crate::cluster::Env::new(&kc);
    // The example's namespaces have fixed names: this instance's go when the test ends.
    struct Cleanup<'a>(&'a std::path::Path, String);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let sel = format!("octostage.dev/instance={}", self.1);
            let _ = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(self.0)
                .args(["delete", "namespaces", "-l", &sel, "--wait=false"])
                .output();
        }
    }
    let _cleanup = Cleanup(&kc, env.name.clone());
    // Under the RBAC the chart and deploy/ ship: every kind the example renders is granted.
    let sa =
        crate::cluster::service_account_kubeconfig(&kc, &format!("{}-sa", env.name), tmp.path());
    let target = format!("kube:{}", sa.display());
    let common = example_args(tmp.path(), &root().join("example-repo"), &shop, &docs);
    let mut args = vec![
        "run",
        "--once",
        "--instance",
        &env.name,
        "--target",
        &target,
    ];
    args.extend(common.iter().map(String::as_str));
    // Its lease lives in the service account's namespace, as in a pod.
    let pod_namespace = format!("{}-sa-rbac", env.name);
    let out = octostage_env(&args, None, &[("POD_NAMESPACE", &pod_namespace)]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("forbidden"), "{stderr}");
    for ns in ["shop-main", "shop-feature-checkout", "shop-release-2-0"] {
        let route = crate::cluster::json(&kc, &["get", "httproute", "shop", "-n", ns]);
        assert_eq!(
            route["spec"]["hostnames"][0],
            format!("{ns}.shop.staging.example.com").as_str(),
            "{route}"
        );
        assert_eq!(route["spec"]["parentRefs"][0]["namespace"], "gateways");
        assert_eq!(
            route["metadata"]["labels"]["octostage.dev/instance"],
            env.name.as_str()
        );
    }
}
