//! The `sysprof` binary: parse the command line, run, exit with the documented code.

fn main() {
    let cli = match sysprof::cli::lean::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            std::process::exit(sysprof::cli::usage_exit_code(&err));
        }
    };
    std::process::exit(sysprof::cli::commands::run(cli));
}
