//! `meshplug`: run, check and render meshplug filter compositions. The command table and each command
//! group's arguments are in `cli/`; every command is a thin call into the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshplug: {e:#}");
            ExitCode::FAILURE
        }
    }
}
