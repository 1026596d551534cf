//! The `fido` command line.

use std::process::ExitCode;

mod cli;

use cli::{Cli, Command};

fn main() -> ExitCode {
    cli::LAUNCHED.get_or_init(std::time::Instant::now);
    // Mesa warns on every device creation when this is unset; the warning is harmless.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let result = match Cli::parse_args().command {
        Command::Info(args) => cli::info::run(&args),
        Command::Classify(args) => cli::classify::run(&args),
        Command::Explain(args) => cli::explain::run(&args),
        Command::Eval(args) => cli::eval::run(args),
        Command::View(args) => cli::view::run(&args),
        Command::Infill(args) => cli::infill::run(&args),
        Command::Convert(args) => cli::convert::run(&args),
        Command::Check(args) => cli::check::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
