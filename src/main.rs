//! The `sysprof` binary: run the command line, exit with the documented code.

fn main() {
    std::process::exit(sysprof::cli::run(std::env::args_os().collect()));
}
