//! `hpxrun`: starts the localities of an hpx program. See the `hpx_launcher` crate.

fn main() -> std::process::ExitCode {
    hpx_launcher::main()
}
