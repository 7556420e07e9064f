//! `p2ptop completions SHELL` and `p2ptop man`: both made from the clap definitions in
//! `cli.rs`, so they list exactly the options the binary has.

use super::Failure;
use crate::cli::{Cli, Shell};
use crate::exit;
use clap::CommandFactory;
use std::path::Path;

/// Prints the completion script for `shell`.
pub fn completions(shell: Shell) -> u8 {
    let target = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(target, &mut Cli::command(), "p2ptop", &mut out);
    print_bytes(&out)
}

/// Prints p2ptop(1), or writes it and p2ptop-COMMAND(1) for every command into `dir`.
pub fn man(dir: Option<&Path>) -> u8 {
    let result = match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map(|()| out)
        }
        Some(dir) => clap_mangen::generate_to(Cli::command(), dir)
            .map(|()| Vec::new())
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    match result {
        Ok(page) => print_bytes(&page),
        Err(e) => Failure::new(exit::USAGE, format!("cannot write the manual pages: {e}")).report(),
    }
}

fn print_bytes(bytes: &[u8]) -> u8 {
    super::print(bytes).map_or_else(Failure::report, |()| exit::OK)
}
