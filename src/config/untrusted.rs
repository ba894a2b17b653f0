//! Values from git in places where they would be read as code or as YAML structure.
//!
//! Branch names, commit subjects and authors are chosen by whoever can push. In a render
//! command they may not appear in an argument at all: a program may read any argument as code
//! (`sh -c`, but also `timeout 5 sh -c`, `xargs`, `find -exec`, `python -c`, ...), and no check of
//! program names can know them all. The one exception is the script of a shell run directly
//! (`sh -c SCRIPT`, `bash -euc SCRIPT`, `env X=1 sh -c SCRIPT`), where such a value may stand
//! through `shell_quote`, outside double quotes and backticks, in a script without `eval`.
//! Everywhere else the values travel in the `OCTOSTAGE_*` environment variables.
//!
//! The names every context offers that cannot carry such text are safe anywhere: `staging`,
//! `namespace`, `environment` (DNS labels), `branch.slug`, `commit.sha`, `commit.short_sha`,
//! `commit.time`, `config_commit`. `values` and `links` are the configuration's own, unless one
//! of them is itself a template that uses an untrusted name.

/// Programs that read `-c SCRIPT` as shell code.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "rbash", "busybox",
];

/// Context names whose text anyone who can push chooses, and the variable that carries each.
const UNTRUSTED: &[(&str, &str)] = &[
    ("branch.name", "OCTOSTAGE_BRANCH"),
    ("commit.subject", "OCTOSTAGE_COMMIT_SUBJECT"),
    ("commit.author", "OCTOSTAGE_COMMIT_AUTHOR"),
];

/// Filters (last in an expression) whose result cannot carry YAML syntax.
const YAML_SAFE: &[&str] = &["|slug", "|length", "|int", "|tojson"];
/// Filters (last in an expression) whose result cannot carry shell syntax.
const SHELL_SAFE: &[&str] = &["|slug", "|length", "|int"];

/// Places in a YAML template where a value from git is written without `tojson`: (line,
/// expression). Unquoted, `commit.subject` can add keys to a flow mapping or anchors and tags;
/// in quotes, a `"` in it ends the string. (A guard at render time catches what this misses:
/// see `render::guard`.)
pub fn yaml_template(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        for e in expressions(line) {
            if untrusted_name(e.inner, false).is_some() && !ends_with_any(e.inner, YAML_SAFE) {
                out.push((i + 1, e.inner.trim().to_string()));
            }
        }
    }
    out
}

/// Whether a settings value (a `values` or `links` template) uses an untrusted name.
pub fn uses_untrusted(template: &str) -> bool {
    expressions(template)
        .iter()
        .any(|e| untrusted_name(e.inner, false).is_some())
}

/// The problems of a render command: (argument index, message). `tainted` says whether the
/// configuration's `values` or `links` carry untrusted names.
pub fn command(argv: &[String], tainted: bool) -> Vec<(usize, String)> {
    let script = shell_script(argv);
    let mut out = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        for e in expressions(arg) {
            let Some((name, var)) = untrusted_name(e.inner, tainted) else {
                continue;
            };
            if ends_with_any(e.inner, SHELL_SAFE) {
                continue;
            }
            let inner = e.inner.trim();
            let message = if Some(i) == script {
                match script_problem(arg, &e) {
                    None => continue,
                    Some(why) => format!(
                        "the shell script interpolates `{{{{ {inner} }}}}` {why}: anyone who can push a branch could run code here; write `{{{{ {name} | shell_quote }}}}` on its own, outside double quotes (or use \"${var}\")"
                    ),
                }
            } else {
                format!(
                    "`{{{{ {inner} }}}}` puts {name}, which anyone who can push chooses, into a command argument, where the program may run it as code; read it from its environment variable {var} instead"
                )
            };
            out.push((i, message));
        }
    }
    out
}

/// Why a shell script's use of an untrusted expression is unsafe, if it is.
fn script_problem(script: &str, e: &Expr<'_>) -> Option<&'static str> {
    let compact: String = e.inner.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.ends_with("|shell_quote") {
        return Some("unquoted");
    }
    let before = &script[..e.start];
    if before.chars().filter(|&c| c == '"').count() % 2 == 1 {
        return Some("inside double quotes, where shell_quote's quotes do not count");
    }
    if before.chars().filter(|&c| c == '`').count() % 2 == 1 {
        return Some("inside backticks");
    }
    if script
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w == "eval")
    {
        return Some("in a script that uses eval, which runs it again");
    }
    None
}

/// The untrusted name an expression uses, with its variable: `branch.name`, the whole
/// `branch` or `commit`, or (when `tainted`) `values` and `links`.
fn untrusted_name(inner: &str, tainted: bool) -> Option<(&'static str, &'static str)> {
    let words = names(inner);
    for w in &words {
        for (name, var) in UNTRUSTED {
            if w == name || w.starts_with(&format!("{name}.")) {
                return Some((name, var));
            }
        }
        if w == "branch" {
            return Some(("branch.name", "OCTOSTAGE_BRANCH"));
        }
        if w == "commit" {
            return Some(("commit.subject", "OCTOSTAGE_COMMIT_SUBJECT"));
        }
        if tainted && (w == "values" || w.starts_with("values.")) {
            return Some(("values", "OCTOSTAGE_VALUES"));
        }
        if tainted && (w == "links" || w.starts_with("links.")) {
            return Some(("links", "OCTOSTAGE_CONTEXT"));
        }
    }
    None
}

/// The dotted names in an expression (`values.a.b`, `branch.name`).
fn names(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_ascii_alphanumeric() || c == '_' || c == '.' => cur.push(c),
            None => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .map(|w| w.trim_matches('.').to_string())
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .collect()
}

fn ends_with_any(inner: &str, filters: &[&str]) -> bool {
    let compact: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    filters.iter().any(|f| compact.ends_with(f))
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The index of the script of a shell run directly: `sh [options] -c SCRIPT`, after at most an
/// `env [VAR=x]...` or `busybox` prefix. Wrappers (`timeout`, `xargs`, `nice`, ...) are not
/// followed: behind one, a value is just a command argument.
fn shell_script(argv: &[String]) -> Option<usize> {
    let mut p = 0;
    if argv.first().map(|a| basename(a)) == Some("env") {
        p = 1;
        while argv
            .get(p)
            .is_some_and(|a| a.contains('=') && !a.starts_with('-'))
        {
            p += 1;
        }
    }
    if argv.get(p).map(|a| basename(a)) == Some("busybox") {
        p += 1;
    }
    if !SHELLS.contains(&basename(argv.get(p)?)) {
        return None;
    }
    let mut seen_c = false;
    let mut i = p + 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a == "-o" || a == "+o" {
            i += 2;
            continue;
        }
        if a.starts_with("--") {
            // Long options (`--norc`) take no value; `--` ends the options.
            i += 1;
            if a == "--" {
                break;
            }
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            seen_c |= a[1..].contains('c');
            i += 1;
            continue;
        }
        break;
    }
    (seen_c && i < argv.len()).then_some(i)
}

/// One `{{ ... }}` of a text: where it starts and its inner text (whitespace control removed).
pub struct Expr<'a> {
    /// Byte offset of `{{`.
    pub start: usize,
    /// The expression.
    pub inner: &'a str,
}

/// Every `{{ ... }}` of `text`.
fn expressions(text: &str) -> Vec<Expr<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(start) = text[offset..].find("{{") {
        let open = offset + start;
        let after = &text[open + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end]
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+']);
        out.push(Expr { start: open, inner });
        offset = open + 2 + end + 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn problems(a: &[&str]) -> usize {
        command(&args(a), false).len()
    }

    #[test]
    fn a_shell_script_may_use_a_git_value_only_shell_quoted_and_outside_double_quotes() {
        let bad = command(&args(&["sh", "-c", "echo {{ branch.name }} >> log"]), false);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 2);
        assert!(
            bad[0].1.contains("{{ branch.name | shell_quote }}"),
            "{}",
            bad[0].1
        );
        for ok in [
            &["sh", "-c", "echo {{ branch.name | shell_quote }} >> log"][..],
            &["sh", "-c", "echo {{- branch.name|shell_quote -}}"],
            &[
                "env",
                "A=1",
                "sh",
                "-c",
                "echo {{ commit.subject | shell_quote }}",
            ],
            &["sh", "-c", "echo \"$OCTOSTAGE_BRANCH\""],
            &[
                "sh",
                "render.sh",
                "{{ staging }}",
                "{{ branch.slug }}",
                "{{ commit.sha }}",
            ],
            &[
                "helm",
                "template",
                "{{ staging }}",
                "charts/app",
                "--set",
                "tag={{ commit.short_sha }}",
            ],
            &["helm", "template", "{{ values.release }}"],
        ] {
            assert_eq!(problems(ok), 0, "{ok:?}");
        }
        for bad in [
            &["/bin/bash", "-euc", "x {{ commit.subject }}"][..],
            &["bash", "-o", "pipefail", "-c", "x {{ branch.name }}"],
            &["sh", "-c", "echo \"{{ branch.name | shell_quote }}\""],
            &["sh", "-c", "echo `echo {{ branch.name | shell_quote }}`"],
            &["sh", "-c", "eval echo {{ branch.name | shell_quote }}"],
            &["sh", "-c", "echo {{ commit }}"],
        ] {
            assert_eq!(problems(bad), 1, "{bad:?}");
        }
    }

    #[test]
    fn behind_any_other_program_a_git_value_is_refused_outright() {
        for bad in [
            &[
                "timeout",
                "30",
                "sh",
                "-c",
                "echo {{ branch.name | shell_quote }}",
            ][..],
            &["xargs", "sh", "-c", "{{ branch.name }}"],
            &[
                "find",
                ".",
                "-exec",
                "sh",
                "-c",
                "{{ branch.name | shell_quote }}",
                ";",
            ],
            &["python3", "-c", "print('{{ branch.name }}')"],
            &["helm", "template", "{{ branch.name }}"],
            &["nice", "sh", "-c", "{{ commit.author | shell_quote }}"],
        ] {
            assert_eq!(problems(bad), 1, "{bad:?}");
        }
        // Values that carry a git value count as one.
        assert_eq!(
            command(&args(&["helm", "template", "{{ values.x }}"]), true).len(),
            1
        );
    }

    #[test]
    fn git_values_in_yaml_need_tojson() {
        let found = yaml_template(
            "a: {{ branch.name }}\nb: \"{{ commit.subject }}\"\nc: {{ commit.subject | tojson }}\nd: {{ branch.slug }}\ne: {{ commit.sha }}\n",
        );
        assert_eq!(
            found,
            [
                (1, "branch.name".to_string()),
                (2, "commit.subject".to_string())
            ]
        );
        assert!(uses_untrusted("https://{{ branch.name }}.example.com"));
        assert!(!uses_untrusted("https://{{ staging }}.example.com"));
    }
}
