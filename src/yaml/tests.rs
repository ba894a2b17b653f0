use std::time::Instant;

use super::*;

fn fresh(text: &str) -> Result<Vec<Value>, YamlError> {
    documents(text, &mut Budget::default())
}

#[test]
fn ordinary_yaml_reads_as_before() {
    let docs = fresh(
        "a: 1\nb: [1, 2, {c: d}]\n---\n---\nx: &x {y: !tag 1}\nz: *x\nm:\n  <<: *x\n  w: 2\n",
    )
    .unwrap();
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[0]["b"][2]["c"], "d");
    assert_eq!(docs[1]["z"]["y"], 1);
    // YAML 1.2 booleans, as serde_yaml had them: `yes` is a string, `true` a boolean.
    let v = document("a: yes\nb: true\nc: 010\nd: 0x10\ne: ~\nf: 1.5\n\"1\": k\n2: n\ng: 1_000\n")
        .unwrap();
    assert_eq!(v["a"], "yes");
    assert_eq!(v["b"], true);
    assert_eq!(v["c"], "010");
    assert_eq!(v["d"], 16);
    assert!(v["e"].is_null());
    assert_eq!(v["f"], 1.5);
    assert_eq!(v["2"], "n");
    assert_eq!(v["g"], "1_000");
    // `<<` is an ordinary key, as serde_yaml had it (see `options`).
    assert_eq!(docs[1]["m"]["<<"]["y"], 1);
    assert!(document("").unwrap().is_null());
    // What kubectl accepts: flow collections closed at the key's indent, tabs after a colon.
    document(
        "command: [\n  \"sh\", \"-c\", \"echo hi\"\n]\nlabels: {\n    \"x\": \"y\"\n  }\na:\tb\n",
    )
    .unwrap();
}

#[test]
fn a_key_given_twice_is_refused_in_rendered_documents_and_kept_last_in_a_config() {
    let e = fresh("a: 1\nb: 2\na: 3\n").unwrap_err();
    assert_eq!(e.pos(), Some(Pos { line: 3, column: 1 }), "{e}");
    assert!(e.to_string().contains("duplicate mapping key: a"), "{e}");
    assert!(!e.to_string().contains("DuplicateKeyPolicy"), "{e}");
    assert_eq!(document("a: 1\na: 3\n").unwrap()["a"], 3);
}

#[test]
fn syntax_errors_name_their_line_and_column() {
    let e = document("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
    assert!(matches!(e, YamlError::Syntax { .. }), "{e}");
    assert!(e.pos().is_some_and(|p| p.line >= 2), "{e:?}");
    assert!(document("a: 1\n---\nb: 2\n").is_err());
}

#[test]
fn aliases_are_charged_what_they_copy() {
    // One list of 1,000 items used 1,000 times: a million values from 10 KB.
    let items = vec!["1"; 1000].join(",");
    let uses = vec!["*a"; 1000].join(",");
    let flat = format!("x: &a [{items}]\ny: [{uses}]\n");
    assert!(flat.len() < 12_000);
    assert_eq!(fresh(&flat), Err(YamlError::TooLarge));
    // A 10 KB string used 10,000 times: 100 MB of text from 60 KB.
    let big = format!(
        "a: &a \"{}\"\nb: [{}]\n",
        "x".repeat(10_000),
        vec!["*a"; 10_000].join(",")
    );
    assert_eq!(fresh(&big), Err(YamlError::TooLarge));
    // A redefined anchor resolves to its latest definition, and is charged so.
    let redefined = format!(
        "x1: &a s\nx2: &b s\nx3: &a [{items}]\nitems: [{}]\n",
        vec!["*a"; 1000].join(",")
    );
    assert_eq!(fresh(&redefined), Err(YamlError::TooLarge));
    assert_eq!(document(&flat), Err(YamlError::TooLarge));
}

#[test]
fn the_budget_is_shared_and_exact() {
    let mut left = Budget {
        nodes: 5,
        text: 100,
    };
    // A mapping with two pairs: 1 + 4 nodes, the keys' 2 bytes (numbers cost no text).
    documents("a: 1\nb: 2\n", &mut left).unwrap();
    assert_eq!(left, Budget { nodes: 0, text: 98 });
    assert_eq!(documents("a", &mut left), Err(YamlError::TooLarge));
    let mut left = Budget {
        nodes: 100,
        text: 3,
    };
    assert_eq!(documents("abcd", &mut left), Err(YamlError::TooLarge));
}

/// The attacks that took serde_yaml seconds to minutes, or gigabytes, each refused here in a
/// small fraction of a second (a generous bound: the CI machine is shared).
#[test]
fn yaml_built_to_be_slow_or_large_is_refused_at_once() {
    let mut hidden = String::from("x: ");
    for _ in 0..700 {
        hidden += &"[".repeat(120);
        hidden += &format!("\"{}\",", "]".repeat(120));
    }
    let cases = [
        (
            "brackets",
            format!("x: {}{}\n", "[".repeat(200_000), "]".repeat(200_000)),
            YamlError::TooDeep,
        ),
        ("brackets hidden in strings", hidden, YamlError::TooDeep),
        (
            "indented blocks",
            (0..10_000)
                .map(|i| format!("{}- \n", " ".repeat(i * 2)))
                .collect::<String>(),
            YamlError::TooDeep,
        ),
        (
            "a 1 MB number at each of 20,000 aliases",
            format!(
                "x: &a 0x{}1\nitems: [{}1]\n",
                "0".repeat(1 << 20),
                "*a,".repeat(20_000)
            ),
            YamlError::TooLarge,
        ),
        (
            "a million empty lists",
            format!("x: [{}]", "[],".repeat(1_000_000)),
            YamlError::TooLarge,
        ),
        (
            "20,000 anchors of a kilobyte, each used",
            format!(
                "a: [{}]\nb: [{}]",
                (0..20_000)
                    .map(|i| format!("&a{i} {}", "x".repeat(1000)))
                    .collect::<Vec<_>>()
                    .join(","),
                (0..20_000)
                    .map(|i| format!("*a{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            YamlError::TooLarge,
        ),
    ];
    for (what, text, want) in cases {
        let start = Instant::now();
        assert_eq!(fresh(&text), Err(want), "{what}");
        let took = start.elapsed();
        assert!(took.as_secs() < 5, "{what}: {took:?}");
    }
    // Just inside the bound.
    fresh(&format!("x: {}{}\n", "[".repeat(100), "]".repeat(100))).unwrap();
}

#[test]
fn values_write_as_yaml_that_reads_back_the_same() {
    let v = serde_json::json!({
        "a": "yes", "b": "1", "c": "", "d": "x: y", "e": "line\nbreak", "f": [1, 2.5, null, true],
        "g": {"h": "# not a comment", "i": "  padded  ", "j": "~", "k": "0x10", "l": "-"},
    });
    let text = to_string(&v).unwrap();
    assert_eq!(document(&text).unwrap(), v, "{text}");
}

/// Found moving to serde-saphyr: 128 levels take about 400 KB of stack in a release build and
/// 3 MB in a debug one, past a 2 MiB thread (tokio's blocking threads, the tests'). Deep
/// levels run on a fresh stack segment, so any thread reads what the bound lets through.
#[test]
fn nesting_up_to_the_bound_reads_on_a_small_thread() {
    let depth = MAX_DEPTH - 2;
    let flow = format!("x: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let block = (0..depth)
        .map(|i| format!("{}- \n", " ".repeat(i * 2)))
        .collect::<String>();
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            fresh(&flow).unwrap();
            fresh(&block).unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_kustomization_must_be_plain_yaml() {
    assert!(plain("resources: [cm.yaml]\npatches:\n  - path: p.yaml\n").is_ok());
    assert!(plain("data:\n  a: \"<<\"\n").is_ok());
    for (text, why) in [
        ("<<: {resources: [../../x]}\n", "merge key"),
        ("a: &x [../x]\nresources: *x\n", "anchor"),
        ("resources: !!seq [../x]\n", "tag"),
        ("resources: !custom [../x]\n", "tag"),
        ("a: [b\n", "cannot read"),
    ] {
        let e = plain(text).unwrap_err().to_string();
        assert!(e.contains(why), "{text}: {e}");
    }
}

/// Found by a hostile review of the move to serde-saphyr: each of these broke a bound or
/// refused what it should read.
#[test]
fn what_the_review_of_the_parser_found() {
    // One anchor used 150 times is a manifest, not a bomb: the parser's ratio heuristic
    // refused it.
    let uses = vec!["*x"; 150].join(", ");
    let v = document(&format!("a: &x 1\nb: [{uses}]\n")).unwrap();
    assert_eq!(v["b"].as_array().map(Vec::len), Some(150));
    // Merge values nested 126 deep were copied again at every level (gigabytes from 1.5 MB):
    // merges are not followed, so this is 126 plain mappings.
    let nested = format!(
        "x: {}{{{}}}{}\n",
        "{<<: ".repeat(126),
        (0..20_000)
            .map(|i| format!("k{i}: 0"))
            .collect::<Vec<_>>()
            .join(", "),
        "}".repeat(126)
    );
    let start = Instant::now();
    let docs = fresh(&nested).unwrap();
    assert!(docs[0]["x"]["<<"]["<<"].is_object());
    assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    // Anchors nested 120 deep around 8,000 items keep a copy of every event per open anchor.
    let mut anchored = String::from("a: ");
    for i in 0..120 {
        anchored += &format!("&a{i} [");
    }
    anchored += &vec!["0"; 8000].join(",");
    anchored += &"]".repeat(120);
    assert_eq!(fresh(&anchored), Err(YamlError::TooLarge));
    // A syntax error whose text reads like the depth limit is still a syntax error.
    let e =
        fresh("\"recursion limit exceeded\": 1\n\"recursion limit exceeded\": 2\n").unwrap_err();
    assert!(matches!(e, YamlError::Syntax { .. }), "{e:?}");
    // A second document in a file that is one: our words, not the library's advice.
    let e = document("a: 1\n---\nb: 2\n").unwrap_err();
    assert!(e.to_string().contains("more than one YAML document"), "{e}");
    assert!(!e.to_string().contains("from_str_multiple"), "{e}");
    // Keys the Kubernetes API has no name for.
    for text in ["~: v\n", "? [a]\n: v\n", "? {a: b}\n: v\n"] {
        assert!(fresh(text).is_err(), "{text}");
    }
    assert_eq!(document("1: a\ntrue: b\n").unwrap()["true"], "b");
}

/// The parser recurses inside one level of values too (a key made of nested brackets): a
/// whole read runs on a large enough stack, on any thread.
#[test]
fn a_key_of_nested_brackets_reads_on_a_small_thread() {
    let text = format!("x:\n  ? {}{}\n  : 1\n", "[".repeat(125), "]".repeat(125));
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            assert!(fresh(&text).is_err());
            assert!(document(&text).is_err());
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Found reviewing the change: every read took a fresh 16 MiB stack segment on a 2 MiB thread
/// (about 12 µs each), a dir target's thousand small records included. The stack a read may
/// need follows from what can open a level in its text.
#[test]
fn a_small_file_needs_little_stack_and_deep_text_gets_enough() {
    let record = "managed-by: octostage\nname: shop-main\nenvironment: shop\nbranch: main\nlinks:\n- https://x\n";
    assert!(
        budget::stack_needed(record) <= 16 * budget::stack_needed(""),
        "{record}"
    );
    let deep = format!("x: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(budget::stack_needed(&deep) >= 2 * MAX_DEPTH * budget::stack_needed("") / 8);
    assert_eq!(
        budget::stack_needed(&deep),
        budget::stack_needed(&"[".repeat(1_000_000))
    );
}
