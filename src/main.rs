//! The `segscore` binary: the command line of [`segscore::cli`].

fn main() -> std::process::ExitCode {
    segscore::cli::main()
}
