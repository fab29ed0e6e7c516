//! `fleetcache`: see `fleetcache --help`.

fn main() -> std::process::ExitCode {
    fleetcache_gateway::cli::main()
}
