//! Keeps README.md in step with the code: the exit-code table and the CI test command.

mod common;

use sysprof::error::exit;

fn readme() -> String {
    std::fs::read_to_string(common::repo().join("README.md")).unwrap()
}

#[test]
fn readme_exit_codes_match_the_code() {
    let readme = readme();
    for (code, meaning) in exit::TABLE {
        let row = format!("| {code} | {meaning} |");
        assert!(readme.contains(&row), "README.md lacks the row {row:?}");
    }
    let help = std::process::Command::new(common::bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (code, meaning) in exit::TABLE {
        assert!(
            help.contains(&format!("{code:>3}  {meaning}")),
            "--help lacks exit code {code}"
        );
    }
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let readme = readme();
    let setup = readme.split("```sh").nth(1).unwrap();
    let test_line = setup
        .lines()
        .find(|l| l.starts_with("cargo test"))
        .expect("README setup names a cargo test command");
    let command = test_line.split('#').next().unwrap().trim();
    let ci = std::fs::read_to_string(common::repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not run {command:?}"
    );
    assert!(ci.contains("export SYSPROF_REQUIRE_NETNS=1"));
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run(&["--help"]), Some(0));
    assert_eq!(run(&["frobnicate"]), Some(exit::USAGE));
    assert_eq!(run(&["validate"]), Some(exit::USAGE));
}
