//! `postmark`: see `postmark --help`.

fn main() -> std::process::ExitCode {
    postmark_cli::run(std::env::args_os())
}
