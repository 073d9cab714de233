//! The real grpcurl (1.8.6), as operators run it: found through DOCKFLARE_GRPCURL (set by
//! deploy/test.sh) or PATH. Tests that need it fail, naming how to get it, when it does not run:
//! they never skip.

use std::sync::OnceLock;

/// The grpcurl binary: DOCKFLARE_GRPCURL, else `grpcurl` on PATH. Panics when neither runs.
pub fn binary() -> &'static str {
    static BINARY: OnceLock<String> = OnceLock::new();
    BINARY.get_or_init(|| {
        let from_env = std::env::var("DOCKFLARE_GRPCURL").ok().filter(|path| !path.is_empty());
        let candidates: Vec<String> = from_env.into_iter().chain(["grpcurl".to_string()]).collect();
        for candidate in &candidates {
            let Ok(output) = std::process::Command::new(candidate).arg("-version").output() else { continue };
            let version =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            if output.status.success() && version.contains("grpcurl") {
                return candidate.clone();
            }
        }
        panic!(
            "grpcurl does not run (tried {candidates:?}): run deploy/test.sh (it installs grpcurl and exports \
             DOCKFLARE_GRPCURL) or put grpcurl 1.8.6 on PATH"
        )
    })
}
