//! `maximin`: the server and its administration CLI. Thin: parse, configure,
//! hand over to the crates that do the work.

mod cli;
mod config;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc for Rust's own allocations (C and C++ engines keep their own):
/// per-thread heaps without glibc's arena locks, which took ~15% of the
/// gateway path's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Thread settings candle reads only from the environment, set before any
    // thread exists.
    #[cfg(feature = "bert")]
    maximin_engine_bert::configure_process();
    // `serve` runs the chat engine: re-executed once with libgomp's spin
    // count set. Other commands need no llama.cpp thread team.
    #[cfg(feature = "llama")]
    if matches!(args.command, cli::Command::Serve(_)) {
        maximin_engine_llama::configure_process();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(args))
}
