//! Parsing the command line while building only the subcommand that runs.
//!
//! clap copies every `global` option into every subcommand when it builds the command tree:
//! with 13 global options and 20 subcommands that is 260 clones of a 640-byte `Arg` (~300 KB of
//! heap, ~60 page faults) on every run, a third of `sysprof --version`'s time. [`parse`] finds
//! the subcommand in argv first and lets the tree hold only that one (none for `--version`);
//! [`Only`] is the subcommand field's type that does the leaving out. Help, `help`, and a missing or unknown
//! subcommand (for clap's suggestions) get the whole tree, and so does everything that renders
//! the tree (completions, man page, `--help`), because the selection is made only here.

use std::cell::RefCell;
use std::ffi::OsString;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Subcommand};

thread_local! {
    /// The subcommand [`Only`] adds (`Some("")`: none), or `None` for all of them.
    static SELECTED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A subcommand enum whose augmentation can be limited to the subcommand being run.
#[derive(Debug)]
pub struct Only<T>(pub T);

impl<T: FromArgMatches> FromArgMatches for Only<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Only)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl<T: Subcommand> Subcommand for Only<T> {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        match SELECTED.with(|s| s.borrow().clone()) {
            None => T::augment_subcommands(cmd),
            Some(name) if name.is_empty() => cmd,
            Some(name) => {
                let all = T::augment_subcommands(clap::Command::new("all"));
                match all.find_subcommand(&name) {
                    Some(one) => cmd.subcommand(one.clone()),
                    None => T::augment_subcommands(cmd),
                }
            }
        }
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        T::augment_subcommands_for_update(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

/// Parses `args` (argv, program name first) into `P`, building only the subcommand named
/// there. `G` are `P`'s global options and `C` its subcommands (whose field is an [`Only`]).
pub fn parse<P, G, C>(args: Vec<OsString>) -> Result<P, clap::Error>
where
    P: CommandFactory + FromArgMatches,
    G: clap::Args,
    C: Subcommand,
{
    let mut matches = command_for::<P, G, C>(&args).try_get_matches_from(args)?;
    P::from_arg_matches_mut(&mut matches)
}

/// The command tree for parsing `args`: the top level with the invoked subcommand only, or
/// everything.
fn command_for<P: CommandFactory, G: clap::Args, C: Subcommand>(
    args: &[OsString],
) -> clap::Command {
    SELECTED.with(|s| *s.borrow_mut() = invoked::<G, C>(args));
    let cmd = P::command();
    SELECTED.with(|s| *s.borrow_mut() = None);
    cmd
}

/// The name of the subcommand in `args`, if there is one and nothing asks for help: the first
/// word that is neither an option nor the value of a top-level option that takes one. `--version`
/// without a subcommand needs none (`Some("")`).
fn invoked<G: clap::Args, C: Subcommand>(args: &[OsString]) -> Option<String> {
    let top = G::augment_args(clap::Command::new("top"));
    let takes_value = |long: &str| {
        top.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .is_some_and(|a| a.get_action().takes_values())
    };
    let mut words = args.iter().skip(1).map(|a| a.to_str());
    while let Some(word) = words.next() {
        let word = word?;
        match word {
            "-h" | "--help" | "help" | "--" => return None,
            "-V" | "--version" => return Some(String::new()),
            _ if word.starts_with("--") => {
                if !word.contains('=') && takes_value(&word[2..]) {
                    words.next();
                }
            }
            _ if word.starts_with('-') => {}
            _ => {
                let asks_help = args.iter().any(|a| a == "-h" || a == "--help");
                let known = C::has_subcommand(word);
                return (known && !asks_help).then(|| word.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::flags::{Cli, Command, Global};
    use clap::Parser;

    fn parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        super::parse::<Cli, Global, Command>(args)
    }

    fn command_for(args: &[OsString]) -> clap::Command {
        super::command_for::<Cli, Global, Command>(args)
    }

    fn argv(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn the_lean_parse_agrees_with_the_full_one() {
        let lines = [
            "sysprof apply p.yaml",
            "sysprof --netns apply apply --dry-run p.yaml",
            "sysprof --root=/tmp/x --format json diff --exit-code p.yaml",
            "sysprof validate --kernel 4.9 a.yaml b.yaml",
            "sysprof rollout plan p.yaml",
            "sysprof history extra",
            "sysprof apply --no-such-flag p.yaml",
            "sysprof aply p.yaml",
            "sysprof --version",
            "sysprof -V apply",
            "sysprof",
            "sysprof apply",
            "sysprof -- apply p.yaml",
            "sysprof explain tcp_tw_recycle",
        ];
        for line in lines {
            let lean = parse(argv(line)).map(|cli| format!("{cli:?}"));
            let full = Cli::try_parse_from(argv(line)).map(|cli| format!("{cli:?}"));
            match (lean, full) {
                (Ok(lean), Ok(full)) => assert_eq!(lean, full, "{line}"),
                (Err(lean), Err(full)) => {
                    assert_eq!(lean.kind(), full.kind(), "{line}");
                    assert_eq!(lean.to_string(), full.to_string(), "{line}");
                }
                (lean, full) => panic!("{line}: lean {lean:?}, full {full:?}"),
            }
        }
    }

    #[test]
    fn only_the_invoked_subcommand_is_built_unless_help_is_asked_for() {
        let all = Cli::command().get_subcommands().count();
        assert!(all >= 20, "{all}");
        let count = |line: &str| command_for(&argv(line)).get_subcommands().count();
        assert_eq!(count("sysprof --state-dir /tmp/s diff p.yaml"), 1);
        assert_eq!(count("sysprof --netns diff apply p.yaml"), 1);
        assert_eq!(count("sysprof --version"), 0);
        for line in [
            "sysprof --help",
            "sysprof help apply",
            "sysprof apply --help",
            "sysprof aply",
        ] {
            assert_eq!(count(line), all, "{line}");
        }
        assert_eq!(
            Cli::command().get_subcommands().count(),
            all,
            "selection is reset"
        );
    }
}
