//! The `segscore` binary: the command line of [`segscore::cli`].

fn main() {
    segscore::cli::main()
}
